import csv
import os
import random
import re
import signal
import subprocess
import sys
import time
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
# The Cao Bằng file's headers, mapped by hand (the test must not ask the code under test)
CAO_BANG_KEYS = {"Toán": "toan", "Ngữ văn": "ngu_van", "Ngoại ngữ": "ngoai_ngu",
                 "Vật lí": "vat_li", "Hóa học": "hoa_hoc", "Sinh học": "sinh_hoc",
                 "Lịch sử": "lich_su", "Địa lí": "dia_li",
                 "Giáo dục kinh tế và pháp luật": "gdktpl", "Tin học": "tin_hoc",
                 "Công nghệ công nghiệp": "cn_cong_nghiep",
                 "Công nghệ nông nghiệp": "cn_nong_nghiep"}


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
    ("-0", "điểm phải từ 0 đến 10"), ("-0.00", "điểm phải từ 0 đến 10"),
    ("9" * 5000, "điểm phải từ 0 đến 10"), ("0" * 5000 + "7", 700), ("1." + "0" * 5000, 100),
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
    if delimiter == ";":  # Vietnamese headers: our own mapping, not the importer's reading
        keys = {h: CAO_BANG_KEYS[h] for h in headers}
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


def test_rows_the_fast_way_takes_for_others_are_read_cell_by_cell(data_dir, tmp_path,
                                                                   monkeypatch):
    """The converter recognises a row by which cells are filled; a row filled the same
    way but with a status, padding, an unseen cell or a language to tidy must still come
    out as its own cells say, with a memo too small to remember anything past a chunk."""
    from diemthi import importer

    monkeypatch.setattr(importer, "_MEMO_LIMIT", 1)
    f = write(tmp_path / "a.csv", HEADER
              + "01000001,7,8,,,,,,,N1\n"  # teaches the fast way this pattern
              + "01000002,Vắng,8,,,,,,,N1\n"  # filled alike, a status
              + "01000003, 7 ,8,,,,,,,N1\n"  # filled alike, padding
              + "01000004,7.25,8,,,,,,, n1\n"  # an unseen score, a language to tidy
              + "01000005,7,8,,,,,,,N1\n")  # the fast way again
    import_files(data_dir, 2026, [f], activate=True)
    assert body(data_dir, "01000002")["statuses"] == {"toan": "absent"}
    assert body(data_dir, "01000002")["scores"] == {"ngu_van": 8.0}
    assert body(data_dir, "01000003")["scores"] == {"toan": 7.0, "ngu_van": 8.0}
    assert body(data_dir, "01000004")["scores"] == {"toan": 7.25, "ngu_van": 8.0}
    assert body(data_dir, "01000004")["foreign_language"]["code"] == "N1"
    assert body(data_dir, "01000005") == {**body(data_dir, "01000001"), "sbd": "01000005"}


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


# --- hostile and awkward input (issue 12) ----------------------------------------------

def test_delimiter_only_rows_are_skipped(data_dir, tmp_path):
    f = write(tmp_path / "x.csv", "SBD;Toán\n01000001;5\n;\n;;;\n  ; \n01000002;6\n")
    result = import_files(data_dir, 2026, [f])
    assert result.imported == 2 and result.bad_rows == 0 and result.files[0].rows == 2


def test_a_bad_row_still_claims_its_sbd(data_dir, tmp_path):
    f = write(tmp_path / "x.csv", "sbd,toan\n01000001,70\n01000001,5\n01000002,5\n")
    with pytest.raises(ImportRefused) as info:
        import_files(data_dir, 2026, [f], max_errors=1)
    got = [(e.line, e.reason) for e in info.value.result.errors]
    assert got == [(2, "điểm phải từ 0 đến 10"),
                   (3, "SBD trùng với một dòng trước đó trong lần nhập này")]
    result = import_files(data_dir, 2026, [f], max_errors=2, activate=True)
    assert result.imported == 1 and body(data_dir, "01000001") is None


@pytest.mark.parametrize("few", [None, 1], ids=["as a set", "as bits"])
def test_every_duplicate_of_a_bad_row_is_reported_whatever_max_errors(data_dir, tmp_path,
                                                                      few, monkeypatch):
    """The report is the same with --max-errors 0 as with a large one: a bad row's SBD
    taken again, later in the chunk, in a later chunk (the file is over 1 MB) or in the
    next file, is reported; a good row before a bad one with its SBD stays good. Past a
    number of bad rows, their SBDs are kept as bits: the same answers."""
    from diemthi import importer

    if few is not None:
        monkeypatch.setattr(importer._Claimed, "FEW", few)
    rows = "".join(f"01{i:06d},5\n" for i in range(100_000, 250_000))
    first = write(tmp_path / "a.csv", "sbd,toan\n01000001,70\n01000001,5\n01000003,6\n"
                  "01000003,80\n" + rows + "01000001,6\n")
    second = write(tmp_path / "b.csv", "sbd,toan\n01000001,7\n01000009,7\n")
    reports = []
    for max_errors in (0, 1, 4):  # five bad rows: refused each time
        with pytest.raises(ImportRefused) as info:
            import_files(data_dir, 2026, [first, second], max_errors=max_errors)
        got = [(e.file, e.line, e.reason[:15]) for e in info.value.result.errors]
        assert got == [("a.csv", 2, "điểm phải từ 0 "), ("a.csv", 3, "SBD trùng với m"),
                       ("a.csv", 5, "điểm phải từ 0 "), ("a.csv", 150_006, "SBD trùng với m"),
                       ("b.csv", 2, "SBD trùng với m")], max_errors
        reports.append(info.value.result.report_path.read_text(encoding="utf-8-sig"))
    assert reports[0] == reports[1] == reports[2]
    result = import_files(data_dir, 2026, [first, second], max_errors=5, activate=True)
    assert result.imported == 150_002 and body(data_dir, "01000001") is None
    assert body(data_dir, "01000003") is not None and body(data_dir, "01000009") is not None


def test_report_is_formula_safe_and_errors_in_memory_are_bounded(data_dir, tmp_path):
    rows = "".join(f"0100{i:04d},=HYPERLINK(\"http://x\")\n" for i in range(1, 2501))
    f = write(tmp_path / "=evil.csv", "sbd,toan\n" + rows)
    with pytest.raises(ImportRefused) as info:
        import_files(data_dir, 2026, [f])
    result = info.value.result
    assert len(result.errors) == 1000 and result.error_count == 2500
    report = list(csv.reader(open(result.report_path, encoding="utf-8-sig")))
    assert len(report) == 1 + 2500
    assert report[1] == ["'=evil.csv", "2", "toan", "'=HYPERLINK(\"http://x\")",
                         "điểm không phải là số"]
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in report for cell in row)


def test_every_hostile_input_ends_in_a_refusal_naming_file_and_line(data_dir, tmp_path):
    cases = {
        "field.csv": ("sbd,toan,x\n01000001,5," + "z" * 140_000 + "\n", r"field.csv: dòng 2"),
        "digits.csv": ("sbd,toan\n01000001," + "9" * 5000 + "\n", r"digits.csv:2: cột 'toan'"),
        "minus.csv": ("sbd,toan\n01000001,-0\n", r"minus.csv:2: cột 'toan' = '-0'"),
    }
    for name, (text, where) in cases.items():
        with pytest.raises(ImportRefused) as info:
            import_files(data_dir, 2026, [write(tmp_path / name, text)])
        message = str(info.value) + "".join(map(str, info.value.result.errors
                                                if info.value.result else []))
        assert re.search(where, message), (name, message[:300])
    assert store.list_snapshots(data_dir) == []


def test_control_characters_are_never_echoed(data_dir, tmp_path):
    f = write(tmp_path / "c.csv", "sbd,toan\n01000001,\x1b[2J\x07bad\n")
    with pytest.raises(ImportRefused) as info:
        import_files(data_dir, 2026, [f])
    text = str(info.value.result.errors[0])
    assert "\x1b" not in text and "\x07" not in text and "\\x1b[2J\\x07bad" in text
    with pytest.raises(ImportRefused) as info:
        import_files(data_dir, 2026, [write(tmp_path / "h.csv", "\x1b]0;pwned\x07,x\n1,2\n")])
    assert "\x1b" not in str(info.value)


def test_the_snapshot_carries_its_province_table(data_dir, tmp_path, monkeypatch):
    f = write(tmp_path / "a.csv", "sbd,toan\n04000001,5\n")
    result = import_files(data_dir, 2026, [f], activate=True)
    info = store.get_snapshot(data_dir, result.snapshot_id)
    assert info.manifest["province_names"]["04"] == "Tỉnh Cao Bằng"
    monkeypatch.setattr(store, "provinces", lambda year: {})  # a package without the code
    assert orjson.loads(store.lookup(info, "04000001"))["province"]["name"] == "Tỉnh Cao Bằng"


def test_same_files_same_second_build_two_snapshots(data_dir, tmp_path):
    from datetime import datetime, timezone

    from diemthi.importer import new_snapshot_id
    now = datetime.now(timezone.utc)
    assert new_snapshot_id(2026, now, ["ab"]) != new_snapshot_id(2026, now, ["ab"])
    f = write_csv(tmp_path / "big.csv", 30_000, seed=5)
    procs = [subprocess.Popen([sys.executable, "-m", "diemthi", "import", "--data-dir",
                               str(data_dir), "--year", "2026", str(f)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    assert len(store.list_snapshots(data_dir)) == 3
    assert not list(store.snapshots_dir(data_dir).glob(".*"))


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def _paused_mid_import(data_dir: Path, tmp_path: Path, *flags: str
                       ) -> tuple[subprocess.Popen, list[int]]:
    """An import stopped (SIGSTOP) while its partial snapshot exists (and, given
    ``--jobs``, its workers run), and those workers: a signal sent now lands mid-import however fast or loaded the
    machine is. An import that ends before it can be paused proves nothing, so it is run
    again on a file twice as big (a bounded number of times)."""
    folder = store.snapshots_dir(data_dir)
    rows = 200_000
    for attempt in range(6):
        big = write_csv(tmp_path / f"big{attempt}.csv", rows, seed=6)
        proc = subprocess.Popen([sys.executable, "-m", "diemthi", "import", "--data-dir",
                                 str(data_dir), "--year", "2026", *flags, str(big)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        workers: list[int] = []
        while proc.poll() is None and not ((workers or "--jobs" not in flags)
                                           and list(folder.glob(".*.partial"))):
            workers = _children(proc.pid)
            time.sleep(0.005)
        proc.send_signal(signal.SIGSTOP)
        if proc.poll() is None and list(folder.glob(".*.partial")) \
                and not list(folder.glob("*.sqlite")):
            return proc, workers  # stopped before it could finish: truly mid-import
        proc.send_signal(signal.SIGCONT)
        proc.wait()
        for path in folder.iterdir():
            path.unlink()
        rows *= 2
    pytest.fail("every import ended before it could be paused")


def test_sigkill_takes_the_workers_and_the_next_import_cleans_up(data_dir, tmp_path):
    proc, workers = _paused_mid_import(data_dir, tmp_path, "--jobs", "2")
    assert workers, "the import never started its workers"
    proc.kill()  # a stopped process dies of SIGKILL all the same
    proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(map(_gone, workers)):
        time.sleep(0.05)
    assert all(map(_gone, workers)), "workers outlived their parent"
    assert list(store.snapshots_dir(data_dir).glob(".*.partial"))  # stranded by SIGKILL
    import_files(data_dir, 2026, [write(tmp_path / "a.csv", "sbd,toan\n01000001,5\n")])
    assert not list(store.snapshots_dir(data_dir).glob(".*.partial"))


def test_workers_leave_ctrl_c_to_the_parent():
    """A worker killed by the terminal's SIGINT mid-queue is what hung the parent."""
    from diemthi.importer import _pool

    pool = _pool(1)
    try:
        worker = pool.submit(os.getpid).result(timeout=30)
        os.kill(worker, signal.SIGINT)
        assert pool.submit(os.getpid).result(timeout=30) == worker  # alive, pool whole
    finally:
        pool.shutdown()


def test_sigterm_mid_import_leaves_no_partial(data_dir, tmp_path):
    proc, _ = _paused_mid_import(data_dir, tmp_path)
    proc.terminate()  # delivered when it runs again, mid-import
    proc.send_signal(signal.SIGCONT)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert list(store.snapshots_dir(data_dir).iterdir()) == []


# --- workbooks of several sheets (issue 16) ----------------------------------------------

def test_two_sheet_workbook_rows_per_sheet_and_errors_naming_the_sheet(data_dir, tmp_path):
    from tests.test_xlsx import write_book

    sheet2 = [["SBD", "Toán", "Ngữ văn"]] + [[f"010{i:05d}", 5, 6] for i in range(100, 115)]
    sheet2.append(["01000001", 9, 9])  # row 17: already on Sheet1
    path = write_book(tmp_path / "quoc-gia.xlsx", {
        "Sheet1": [["KẾT QUẢ THI"], ["SBD", "Toán", "Ngữ văn"], ["01000001", 7, 8],
                   [1000002, "Vắng", 8]],
        "Sheet2": sheet2,
        "Sheet3": [["01000200", 4, 4]],
        "Thống kê": [["Môn", "Điểm TB"], ["Toán", 6.5]],
    })
    with pytest.raises(ImportRefused) as info:
        import_files(data_dir, 2026, [path])
    (err,) = info.value.result.errors
    assert err.where == "Sheet2!17" and "trùng" in err.reason
    assert str(err).startswith("quoc-gia.xlsx:Sheet2!17: cột 'SBD'")
    result = import_files(data_dir, 2026, [path], max_errors=1, activate=True)
    f = result.files[0]
    assert [(s.name, s.rows, s.imported) for s in f.sheets] == [
        ("Sheet1", 2, 2), ("Sheet2", 16, 15), ("Sheet3", 1, 1)]
    assert f.skipped[0][0] == "Thống kê" and result.imported == 18
    assert body(data_dir, "01000114")["scores"] == {"toan": 5.0, "ngu_van": 6.0}
    assert body(data_dir, "01000002")["statuses"] == {"toan": "absent"}
    assert body(data_dir, "01000200")["scores"]["toan"] == 4.0
    report = list(csv.reader(open(result.report_path, encoding="utf-8-sig")))
    assert ["quoc-gia.xlsx", "Sheet2!17"] == report[1][:2]
    assert ["quoc-gia.xlsx", "Sheet2", "(cả trang)", "", "đọc 16 dòng, nhập 15, lỗi 1"] in report
    assert any(r[1] == "Thống kê" and r[4].startswith("bỏ qua") for r in report)
    m = store.get_snapshot(data_dir, result.snapshot_id).manifest
    assert [s["name"] for s in m["files"][0]["sheets"]] == ["Sheet1", "Sheet2", "Sheet3"]


def test_skip_unchanged_does_not_pile_up_snapshots(data_dir, tmp_path):
    f = write(tmp_path / "a.csv", "sbd,toan\n01000001,5\n")
    first = import_files(data_dir, 2026, [f], activate=True, skip_unchanged=True)
    again = import_files(data_dir, 2026, [f], activate=True, skip_unchanged=True)
    assert again.unchanged and again.snapshot_id == first.snapshot_id
    assert len(store.list_snapshots(data_dir)) == 1
    f.write_text("sbd,toan\n01000001,6\n")
    assert not import_files(data_dir, 2026, [f], activate=True, skip_unchanged=True).unchanged
    assert len(store.list_snapshots(data_dir)) == 2


def test_a_row_of_the_wrong_width_still_claims_its_sbd(data_dir, tmp_path):
    f = write(tmp_path / "w.csv", "sbd,toan,ngu_van\n01000001,5\n01000001,5,6\n01000002,7,8\n")
    with pytest.raises(ImportRefused) as info:
        import_files(data_dir, 2026, [f])
    assert [(e.line, e.reason[:8]) for e in info.value.result.errors] == [
        (2, "dòng có "), (3, "SBD trùn")]


def test_a_missing_file_is_named_once(data_dir, tmp_path):
    with pytest.raises(ImportRefused) as info:
        import_files(data_dir, 2026, [tmp_path / "nope.csv"])
    assert str(info.value).count("nope.csv") == 1


def test_a_refusal_in_the_history_names_its_report(data_dir, tmp_path):
    from diemthi import history

    bad = write(tmp_path / "bad.csv", "sbd,toan\n01000001,5\n01000002,11\n")
    with pytest.raises(ImportRefused):
        import_files(data_dir, 2026, [bad], by="staff")
    unreadable = tmp_path / "broken.xlsx"
    unreadable.write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(ImportRefused):
        import_files(data_dir, 2026, [unreadable], by="staff")
    rows, broken = list(history.read(data_dir))
    assert rows["action"] == "refused" and rows["bad_rows"] == 1
    assert rows["files"][0]["name"] == "bad.csv" and rows["by"] == "staff"
    # the id it would have had names its report, which lists the bad cell
    assert rows["report"] == f"import-{rows['snapshot']}.csv"
    assert rows["snapshot"].startswith("2026-")
    assert "11" in (data_dir / "reports" / rows["report"]).read_text(encoding="utf-8-sig")
    assert rows["report"] in history.describe(rows)
    # refused at its head, before an id was chosen: no report, the reason in the line
    assert broken["action"] == "refused" and "không đọc được" in broken["error"]
    assert "snapshot" not in broken and "report" not in broken
    assert not store.list_snapshots(data_dir)


def test_snapshots_and_reports_are_private(data_dir, tmp_path):
    import stat

    result = import_files(data_dir, 2026, [write(tmp_path / "a.csv", "sbd,toan\n01000001,5\n")])
    for path in (result.snapshot_path, result.report_path):  # the province-server modes
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    for folder in (store.snapshots_dir(data_dir), data_dir / "reports"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o750
