"""Change files after phúc khảo: checked against the base, a whole new snapshot, a history."""

import csv
import unicodedata

import orjson
import pytest
from click.testing import CliRunner

from diemthi import history, store
from diemthi.changes import import_changes
from diemthi.chatbot.replies import found
from diemthi.cli import cli
from diemthi.diff import changes
from diemthi.importer import ImportRefused, import_files
from tests.conftest import write

BASE = ("SBD;Toán;Ngữ văn;Vật lí;Hóa học;Ngoại ngữ;Mã môn ngoại ngữ\n"
        "01000001;7,5;6;8;9;Miễn;N1\n"
        "01000002;5;6;;;8;N1\n"
        "01000003;4;Vắng;;;7;N1\n")


def doc(data_dir, sbd, snapshot=None):
    info = store.get_snapshot(data_dir, snapshot or store.active_ids(data_dir)[2026])
    raw = store.lookup(info, sbd)
    return orjson.loads(raw) if raw else None


@pytest.fixture
def base(data_dir, tmp_path):
    f = write(tmp_path / "base.csv", BASE)
    return import_files(data_dir, 2026, [f], activate=True, by="Lan").snapshot_id


def test_change_file_builds_base_plus_changes(data_dir, tmp_path, base):
    f = write(tmp_path / "phuc-khao.csv", "sbd,toan_cu,toan,ngu_van\n"
                                          "01000001,7.5,8.25,\n"
                                          "01000003,4,4.5,6\n")
    result = import_changes(data_dir, 2026, base, [f], activate=True, by="Minh",
                            reason="phúc khảo đợt 1")
    new = result.snapshot_id
    assert new != base and store.active_ids(data_dir)[2026] == new
    one = doc(data_dir, "01000001")
    assert one["scores"]["toan"] == 8.25 and one["updated_after_appeal"] is True
    assert one["statuses"] == {"ngoai_ngu": "exempt"}  # kept from the base
    assert one["combinations"]["A00"] == 25.25  # totals rebuilt from the new score
    three = doc(data_dir, "01000003")
    assert three["scores"]["ngu_van"] == 6.0 and "statuses" not in three  # Vắng → a score
    assert "updated_after_appeal" not in doc(data_dir, "01000002")  # untouched, same bytes
    assert doc(data_dir, "01000001", base)["scores"]["toan"] == 7.5  # the base is unchanged
    assert list(changes(store.get_snapshot(data_dir, base),
                        store.get_snapshot(data_dir, new))) == [
        ("01000001", "toan", "7.5", "8.25"),
        ("01000003", "toan", "4", "4.5"),
        ("01000003", "ngu_van", "absent", "6"),
    ]
    manifest = store.get_snapshot(data_dir, new).manifest
    assert manifest["base"] == base and manifest["changed"] == 2 and manifest["rows"] == 3
    events = list(history.read(data_dir, 2026))
    assert [e["action"] for e in events] == ["import", "activate", "import", "activate"]
    assert events[2]["base"] == base and events[2]["changed"] == 2 and events[2]["by"] == "Minh"
    assert events[2]["reason"] == "phúc khảo đợt 1"
    assert events[2]["files"][0]["name"] == "phuc-khao.csv"
    assert len(events[2]["files"][0]["sha256"]) == 64


def test_old_value_that_disagrees_with_the_base_refuses(data_dir, tmp_path, base):
    f = write(tmp_path / "pk.csv", "SBD;Toán cũ;Toán;Ngữ văn cũ;Ngữ văn\n"
                                   "01000001;7,25;8;;\n"  # the base holds 7.5
                                   "01000002;5;5,5;6;7\n"
                                   "01000009;1;2;;\n"  # not in the base
                                   "01000003;;;Vắng;abc\n")
    with pytest.raises(ImportRefused) as info:
        import_changes(data_dir, 2026, base, [f], activate=True)
    got = [(e.line, e.column, e.reason) for e in info.value.result.errors]
    assert got == [
        (2, "Toán cũ", "điểm cũ không khớp bản chụp gốc (7.5)"),
        (4, "SBD", "SBD không có trong bản chụp gốc"),
        (5, "Ngữ văn", "điểm không phải là số"),
    ]
    assert store.active_ids(data_dir)[2026] == base
    assert len(store.list_snapshots(data_dir)) == 1
    last = list(history.read(data_dir))[-1]
    assert last["action"] == "refused" and last["base"] == base and last["bad_rows"] == 3
    # the id it would have had names its report, which says why
    assert last["report"] == f"import-{last['snapshot']}.csv"
    assert (data_dir / "reports" / last["report"]).exists()
    # with --max-errors the good row goes in
    result = import_changes(data_dir, 2026, base, [f], max_errors=3)
    assert doc(data_dir, "01000002", result.snapshot_id)["scores"]["ngu_van"] == 7.0


def test_cli_change_file_diff_and_history(data_dir, tmp_path, base):
    f = write(tmp_path / "pk.csv", "sbd,toan\n01000002,9\n")
    r = CliRunner().invoke(cli, ["import", "--data-dir", str(data_dir), "--year", "2026",
                                 "--base", base, "--activate", "--by", "Hà", "--reason",
                                 "phúc khảo", str(f)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["history", "--data-dir", str(data_dir), "--year", "2026"])
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert len(lines) == 4 and "bởi Hà" in lines[2] and f"(từ {base})" in lines[2]
    assert "lý do: phúc khảo" in lines[3]
    r = CliRunner().invoke(cli, ["history", "--data-dir", str(data_dir), "--json"])
    assert orjson.loads(r.output.splitlines()[0])["action"] == "import"
    # a rollback is a history line like any other
    r = CliRunner().invoke(cli, ["activate", "--data-dir", str(data_dir), "--reason",
                                 "quay lại", base])
    assert r.exit_code == 0
    last = list(history.read(data_dir))[-1]
    assert last["action"] == "activate" and last["snapshot"] == base and last["previous"]


def test_statuses_in_lookup_and_chatbot_never_a_score(data_dir, tmp_path, base):
    one = doc(data_dir, "01000001")
    assert one["statuses"] == {"ngoai_ngu": "exempt"} and "ngoai_ngu" not in one["scores"]
    assert not any(code.startswith("D") for code in one["combinations"])  # no total with it
    three = doc(data_dir, "01000003")
    assert three["statuses"] == {"ngu_van": "absent"}
    assert "statuses" not in doc(data_dir, "01000002")
    text = found(one)
    assert "Ngoại ngữ: miễn thi" in text and "Toán: 7,5" in text
    assert "Ngữ văn: vắng thi" in found(three)
    manifest = store.get_snapshot(data_dir, base).manifest
    assert manifest["subjects"]["ngoai_ngu"]["count"] == 2  # the exempt one is not counted


def test_cp1258_csv_with_status_marks(data_dir, tmp_path):
    f = write(tmp_path / "cp.csv", "STT\tSố báo danh\tToán\tNgữ văn\tNgoại ngữ\r\n"
                                   "1\t01000001\t7,5\tĐình chỉ\tMIỄN\r\n"
                                   "2\t01000002\tHủy\t8\tV\r\n"
                                   "3\t01000003\tĐC\t8\tChờ chấm\r\n", encoding="cp1258")
    with pytest.raises(ImportRefused) as info:
        import_files(data_dir, 2026, [f])
    (err,) = info.value.result.errors
    value = unicodedata.normalize("NFC", err.value)  # cp1258 writes tone marks apart
    assert (err.line, err.column, value, err.reason) == (4, "Ngoại ngữ", "Chờ chấm",
                                                            "điểm không phải là số")
    result = import_files(data_dir, 2026, [f], max_errors=1, activate=True)
    assert result.imported == 2
    assert doc(data_dir, "01000001")["statuses"] == {"ngu_van": "suspended",
                                                     "ngoai_ngu": "exempt"}
    assert doc(data_dir, "01000002")["statuses"] == {"toan": "cancelled", "ngoai_ngu": "absent"}
    report = list(csv.reader(open(result.report_path, encoding="utf-8-sig")))
    assert report[1][:2] == ["cp.csv", "4"]


def test_the_api_serves_statuses_and_the_appeal_mark(data_dir, tmp_path, base):
    import httpx

    from diemthi.app import create_app
    from diemthi.settings import load
    from tests.servers import LiveServer

    f = write(tmp_path / "pk.csv", "sbd,ngu_van\n01000003,6.5\n")
    import_changes(data_dir, 2026, base, [f], activate=True)
    with LiveServer(create_app(load({"data_dir": str(data_dir)}))) as url:
        one = httpx.get(f"{url}/v1/scores/01000001").json()
        three = httpx.get(f"{url}/v1/scores/01000003").json()
    assert one["statuses"] == {"ngoai_ngu": "exempt"} and "updated_after_appeal" not in one
    assert three["scores"]["ngu_van"] == 6.5 and three["updated_after_appeal"] is True
