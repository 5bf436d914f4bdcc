import csv
import random
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from diemthi import store
from diemthi.importer import ImportRefused, import_files, parse_score
from diemthi.reference import SUBJECTS
from diemthi.synthetic import write_csv
from tests.conftest import CAO_BANG, DA_NANG, need, reference_rows, write

HEADER = "sbd,toan,ngu_van,ngoai_ngu,vat_li,hoa_hoc,sinh_hoc,lich_su,dia_li,ma_ngoai_ngu\n"


def body(data_dir: Path, sbd: str, year: int = 2026) -> dict | None:
    info = store.get_snapshot(data_dir, store.active_ids(data_dir)[year])
    raw = store.lookup(info, sbd)
    return orjson.loads(raw) if raw else None


@pytest.mark.parametrize("raw,expected", [
    ("7.75", 775), ("7,5", 750), ("10", 1000), ("0", 0), (" 5.83 ", 583), ("7.50", 750),
    ("7.500", 750), ("", None), ("   ", None),
    ("10.25", "điểm phải từ 0 đến 10"), ("11", "điểm phải từ 0 đến 10"),
    ("-1", "điểm phải từ 0 đến 10"), ("7.555", "điểm có quá hai chữ số thập phân"),
    ("abc", "điểm không phải là số"), ("7.5.1", "điểm không phải là số"),
    ("1e1", "điểm không phải là số"), ("٧", "điểm không phải là số"),
])
def test_parse_score(raw, expected):
    assert parse_score(raw) == expected


@pytest.mark.parametrize("path,delimiter,encoding,rows", [
    (DA_NANG, ",", "utf-8", 35525), (CAO_BANG, ";", "utf-8-sig", 5607)])
def test_real_files_every_score_matches_an_independent_reading(data_dir, path, delimiter,
                                                               encoding, rows):
    result = import_files(data_dir, 2026, [need(path)], activate=True)
    assert result.imported == rows and result.bad_rows == 0
    expected = reference_rows(path, delimiter, encoding)
    info = store.get_snapshot(data_dir, result.snapshot_id)
    db = store.connect_readonly(info.path)
    env = store.envelope(info)
    got = {f"{n:08d}": orjson.loads(env.body(f"{n:08d}", b)) for n, b in
           db.execute("SELECT sbd, body FROM candidates")}
    assert len(got) == rows
    with open(path, encoding=encoding) as fh:
        headers = next(csv.reader(fh, delimiter=delimiter))[1:]
    keys = dict(zip(headers, [h if h in SUBJECTS else None for h in headers]))
    if delimiter == ";":  # Vietnamese headers: take the keys from the importer's own reading
        from diemthi.dialects import recognise
        keys = {h: recognise(h, {}) for h in headers}
    for sbd, scores in expected.items():
        doc = got[sbd]
        assert doc["sbd"] == sbd and doc["year"] == 2026
        assert {keys[h]: Decimal(str(v)) for h, v in scores.items()} == \
            {k: Decimal(str(v)) for k, v in doc["scores"].items()}
        # combination totals: exact sums of the candidate's three subjects
        for code in doc["combinations"]:
            assert code in ("A00", "A02", "B00", "C00", "C01")  # no language column here
        have = {keys[h] for h in scores}
        for code, subjects in (("A00", ("toan", "vat_li", "hoa_hoc")),
                               ("C00", ("ngu_van", "lich_su", "dia_li"))):
            if have.issuperset(subjects):
                want = sum(Decimal(str(doc["scores"][s])) for s in subjects)
                assert Decimal(str(doc["combinations"][code])) == want
            else:
                assert code not in doc["combinations"]


def test_candidate_body_with_language_and_combinations(data_dir, tmp_path):
    f = write(tmp_path / "a.csv", HEADER + "01000001,7.75,6.5,8.25,9,8.5,,,,N1\n"
                                           "01000002,7.75,6.5,8.25,,,,,,N6\n"
                                           "01000003,5,6,,,,,7,8,\n")
    import_files(data_dir, 2026, [f], activate=True)
    assert body(data_dir, "01000001") == {
        "sbd": "01000001", "year": 2026,
        "province": {"code": "01", "name": "Thành phố Hà Nội"},
        "scores": {"toan": 7.75, "ngu_van": 6.5, "ngoai_ngu": 8.25, "vat_li": 9.0,
                   "hoa_hoc": 8.5},
        "foreign_language": {"code": "N1", "name": "Tiếng Anh"},
        "combinations": {"A00": 25.25, "A01": 25.0, "C01": 23.25, "D01": 22.5, "D07": 24.5},
    }
    assert body(data_dir, "01000002")["combinations"] == {"D06": 22.5}
    assert body(data_dir, "01000002")["foreign_language"]["name"] == "Tiếng Nhật"
    doc = body(data_dir, "01000003")
    assert "foreign_language" not in doc and doc["combinations"] == {"C00": 21.0}


def test_every_bad_row_reported_and_nothing_built(data_dir, tmp_path):
    f = write(tmp_path / "bad.csv", HEADER +
              "01000001,7,8,,,,,,,\n"
              "0100002,7,8,,,,,,,\n"          # 7 digits
              "01000003,11,8,,,,,,,\n"        # > 10
              "01000004,7.125,abc,,,,,,,\n"   # two bad cells
              "01000005,7,8,5,,,,,,N9\n"      # language code
              "01000001,7,8,,,,,,,\n"         # duplicate of line 2
              "99000007,7,8,,,,,,,\n"         # no such province
              "01000008,7,8\n")               # short row
    with pytest.raises(ImportRefused) as info:
        import_files(data_dir, 2026, [f], activate=True)
    result = info.value.result
    got = [(e.line, e.column, e.reason) for e in result.errors]
    assert got == [
        (3, "sbd", "SBD phải gồm đúng 8 chữ số"),
        (4, "toan", "điểm phải từ 0 đến 10"),
        (5, "toan", "điểm có quá hai chữ số thập phân"),
        (5, "ngu_van", "điểm không phải là số"),
        (6, "ma_ngoai_ngu", "mã ngoại ngữ phải là một trong N1..N7"),
        (7, "sbd", "SBD trùng với một dòng trước đó trong lần nhập này"),
        (8, "sbd", "mã tỉnh '99' không có trong danh mục năm 2026"),
        (9, "(cả dòng)", "dòng có 3 ô, tiêu đề có 10 ô"),
    ]
    assert result.bad_rows == 7
    report = list(csv.reader(open(result.report_path, encoding="utf-8-sig")))
    assert report[0] == ["tệp", "dòng", "cột", "giá trị", "lý do"]
    assert report[1] == ["bad.csv", "3", "sbd", "0100002", "SBD phải gồm đúng 8 chữ số"]
    assert len(report) == 1 + 8
    assert store.list_snapshots(data_dir) == [] and store.active_ids(data_dir) == {}
    assert not list((data_dir / "snapshots").iterdir())  # no partial file either


def test_max_errors_builds_from_the_good_rows(data_dir, tmp_path):
    f = write(tmp_path / "bad.csv", HEADER + "01000001,7,8,,,,,,,\n01000002,70,8,,,,,,,\n"
                                             "01000001,1,1,,,,,,,\n01000004,5,5,,,,,,,\n")
    with pytest.raises(ImportRefused):
        import_files(data_dir, 2026, [f], max_errors=1)
    result = import_files(data_dir, 2026, [f], max_errors=2, activate=True)
    assert result.imported == 2 and result.bad_rows == 2
    assert body(data_dir, "01000001")["scores"] == {"toan": 7.0, "ngu_van": 8.0}  # first kept
    assert body(data_dir, "01000002") is None
    assert result.subjects["toan"].count == 2 and result.subjects["toan"].max == 7.0
    manifest = store.get_snapshot(data_dir, result.snapshot_id).manifest
    assert manifest["rows"] == 2 and manifest["bad_rows"] == 2


def test_summary_for_cross_checking(data_dir, tmp_path):
    f = write(tmp_path / "s.csv", "STT;SBD;Toán;Ngữ văn;Tổng\r\n1;01000001;7,5;8;15,5\r\n"
                                  "2;01000002;8,5;;8,5\r\n3;79000001;6;9;15\r\n")
    result = import_files(data_dir, 2026, [f])
    assert result.files[0].ignored == ["STT", "Tổng"]
    assert result.provinces == {"01": 2, "79": 1}
    toan = result.subjects["toan"]
    assert (toan.count, toan.mean, toan.min, toan.max) == (3, 7.33, 6.0, 8.5)
    assert result.subjects["ngu_van"].count == 2
    assert "ngoai_ngu" not in result.subjects


def test_several_files_one_snapshot_and_duplicates_across_files(data_dir, tmp_path):
    a = write(tmp_path / "a.csv", HEADER + "01000001,7,8,,,,,,,\n")
    b = write(tmp_path / "b.csv", "SBD;Toán\n01000002;5\n01000001;6\n")
    with pytest.raises(ImportRefused) as info:
        import_files(data_dir, 2026, [a, b])
    (err,) = info.value.result.errors
    assert (err.file, err.line) == ("b.csv", 3)
    result = import_files(data_dir, 2026, [a, b], max_errors=1, activate=True)
    assert [f.imported for f in result.files] == [1, 1]
    assert body(data_dir, "01000002")["scores"] == {"toan": 5.0}


def test_unreadable_file_refuses_the_whole_import(data_dir, tmp_path):
    good = write(tmp_path / "a.csv", HEADER + "01000001,7,8,,,,,,,\n")
    bad = write(tmp_path / "b.csv", "x,y\n1,2\n")
    with pytest.raises(ImportRefused, match="b.csv"):
        import_files(data_dir, 2026, [good, bad], activate=True)
    assert store.list_snapshots(data_dir) == []


def test_years_side_by_side_and_old_province_codes(data_dir, tmp_path):
    old = write(tmp_path / "2024.csv", "sbd,toan,gdcd\n04000001,7,8\n")  # 04 = Đà Nẵng then
    new = write(tmp_path / "2026.csv", "sbd,toan\n04000001,5\n")  # 04 = Cao Bằng now
    r24 = import_files(data_dir, 2024, [old], activate=True)
    import_files(data_dir, 2026, [new], activate=True)
    assert body(data_dir, "04000001", 2024)["province"]["name"] == "Thành phố Đà Nẵng"
    assert body(data_dir, "04000001", 2026)["province"]["name"] == "Tỉnh Cao Bằng"
    assert body(data_dir, "04000001", 2024)["scores"] == {"toan": 7.0, "gdcd": 8.0}
    assert store.active_ids(data_dir)[2024] == r24.snapshot_id


def test_parallel_and_inline_build_identical_snapshots(data_dir, tmp_path):
    path = write_csv(tmp_path / "big.csv", 150_000, seed=7)  # > 4 MiB: worker processes
    assert path.stat().st_size > 4 << 20
    one = import_files(data_dir, 2026, [path], jobs=1)
    two = import_files(data_dir, 2026, [path], jobs=2)
    rows = [list(store.connect_readonly(r.snapshot_path).execute(
        "SELECT sbd, body FROM candidates ORDER BY sbd")) for r in (one, two)]
    assert len(rows[0]) == 150_000 and rows[0] == rows[1]
    assert one.subjects == two.subjects and one.provinces == two.provinces
    sample = random.Random(1).sample(rows[0], 50)
    for _, stored in sample:  # every stored body is valid JSON once enveloped
        assert orjson.loads(b'{"sbd":"x",' + stored)["scores"]


def test_manifest(data_dir, tmp_path):
    f = write(tmp_path / "a.csv", HEADER + "01000001,7,8,,,,,,,\n")
    result = import_files(data_dir, 2026, [f])
    m = store.get_snapshot(data_dir, result.snapshot_id).manifest
    import hashlib
    assert m["year"] == 2026 and m["rows"] == 1 and m["importer_version"]
    assert m["files"][0]["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert m["created_at"].startswith("20")


def test_bad_bytes_further_down_refuse_the_import_naming_the_line(data_dir, tmp_path):
    f = tmp_path / "mixed.csv"  # valid UTF-8 for the first 64 KiB that are sniffed
    rows = b"".join(b"01%06d,5\n" % i for i in range(1, 10001))
    f.write_bytes(b"sbd,toan\n" + rows + b"01999999,7\xff\n")
    with pytest.raises(ImportRefused, match=r"mixed.csv: dòng 10002: không đọc được theo bảng mã utf-8"):
        import_files(data_dir, 2026, [f], activate=True)
    assert store.list_snapshots(data_dir) == []
    assert not list((data_dir / "snapshots").iterdir())
