import os
import signal
import subprocess
import sys
import time

import orjson
from click.testing import CliRunner

from diemthi import store
from diemthi.cli import cli
from diemthi.synthetic import write_csv
from tests.conftest import SAMPLE, edited_copy, write


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_import_activate_snapshots_lookup(data_dir):
    r = run("import", "--data-dir", str(data_dir), "--year", "2026", "--activate",
            *map(str, SAMPLE))
    assert r.exit_code == 0, r.output
    assert "Tổng: 5000 thí sinh." in r.output and "Đã kích hoạt" in r.output
    assert "01 Thành phố Hà Nội" in r.output and "Báo cáo:" in r.output
    sid = store.active_ids(data_dir)[2026]
    r = run("snapshots", "--data-dir", str(data_dir))
    assert r.exit_code == 0 and f"* {sid}" in r.output
    r = run("lookup", "--data-dir", str(data_dir), "79000002")
    assert r.exit_code == 0
    doc = orjson.loads(r.output)
    assert doc["sbd"] == "79000002" and doc["province"]["code"] == "79"


def test_data_dir_from_environment(data_dir):
    f = write(data_dir.parent / "a.csv", "sbd,toan\n01000001,5\n")
    r = run("import", "--year", "2026", "--activate", str(f),
            env={"DIEMTHI_DATA_DIR": str(data_dir)})
    assert r.exit_code == 0, r.output
    assert store.active_ids(data_dir)


def test_exit_codes(data_dir, tmp_path):
    bad = write(tmp_path / "bad.csv", "sbd,toan\n01000001,12\n")
    r = run("import", "--data-dir", str(data_dir), "--year", "2026", str(bad))
    assert r.exit_code == 1
    assert "bad.csv:2: cột 'toan' = '12': điểm phải từ 0 đến 10" in r.output
    assert "Báo cáo:" in r.output
    assert run("import", "--data-dir", str(data_dir), str(bad)).exit_code == 2  # no --year
    assert run("import", "--data-dir", str(data_dir), "--year", "2026", "--map", "nonsense",
               str(bad)).exit_code == 2  # a malformed --map: usage
    assert run("lookup", "--data-dir", str(data_dir), "123").exit_code == 2
    assert run("lookup", "--data-dir", str(data_dir), "01000001").exit_code == 1  # none active
    assert run("activate", "--data-dir", str(data_dir), "nope").exit_code == 1
    good = write(tmp_path / "good.csv", "sbd,toan\n01000001,9\n")
    assert run("import", "--data-dir", str(data_dir), "--year", "2026", "--activate",
               str(good)).exit_code == 0
    assert run("lookup", "--data-dir", str(data_dir), "01000009").exit_code == 1


def test_lookup_picks_the_year_as_the_api_and_reads_a_snapshot_before_activation(
        data_dir, tmp_path):
    d = str(data_dir)
    for year, score in ((2025, "6"), (2026, "5")):
        assert run("import", "--data-dir", d, "--year", str(year), "--activate",
                   str(write(tmp_path / f"{year}.csv", f"sbd,toan\n01000001,{score}\n"))
                   ).exit_code == 0
    assert orjson.loads(run("lookup", "--data-dir", d, "01000001").output)["year"] == 2026
    pinned = run("lookup", "--data-dir", d, "01000001", env={"DIEMTHI_YEAR": "2025"})
    assert orjson.loads(pinned.output)["year"] == 2025  # as the API with DIEMTHI_YEAR
    # a phúc khảo import, not activated: --snapshot shows it as it would be served
    base = store.active_ids(data_dir)[2026]
    changes = write(tmp_path / "pk.csv", "sbd,toan_cu,toan\n01000001,5,7.5\n")
    r = run("import", "--data-dir", d, "--year", "2026", "--base", base, str(changes))
    assert r.exit_code == 0, r.output
    new = next(i.id for i in store.list_snapshots(data_dir) if i.id not in (base,)
               and i.year == 2026)
    assert orjson.loads(run("lookup", "--data-dir", d, "01000001").output)["scores"] == {
        "toan": 5.0}  # the active one, still the base
    doc = orjson.loads(run("lookup", "--data-dir", d, "--snapshot", new, "01000001").output)
    assert doc["scores"] == {"toan": 7.5} and doc["updated_after_appeal"] is True
    assert doc["previous_year"]["year"] == 2025  # with what serving it would add
    assert run("lookup", "--data-dir", d, "--snapshot", "2026-nope", "01000001").exit_code == 1
    assert run("lookup", "--data-dir", d, "--snapshot", new, "--year", "2026",
               "01000001").exit_code == 2
    # 2027 activated, its snapshot gone: said, never answered from 2026 in its place
    (data_dir / "active" / "2027").write_text("2027-missing\n")
    r = run("lookup", "--data-dir", d, "01000001")
    assert r.exit_code == 1 and "năm 2027" in r.output
    (data_dir / "active" / "2027").write_text("garbage{")  # unreadable: the same
    r = run("lookup", "--data-dir", d, "01000001")
    assert r.exit_code == 1 and "năm 2027" in r.output
    r = run("stats", "--data-dir", d, "--snapshot", new, "--json")
    assert r.exit_code == 0 and orjson.loads(r.output)["year"] == 2026


def test_ctrl_c_mid_import_leaves_nothing_half_done(data_dir, tmp_path):
    served = write(tmp_path / "a.csv", "sbd,toan\n01000001,5\n")
    assert run("import", "--data-dir", str(data_dir), "--year", "2026", "--activate",
               str(served)).exit_code == 0
    before = store.active_ids(data_dir)
    big = write_csv(tmp_path / "big.csv", 600_000, seed=3)
    proc = subprocess.Popen([sys.executable, "-m", "diemthi", "import", "--data-dir",
                             str(data_dir), "--year", "2026", "--activate", str(big)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    partial = store.snapshots_dir(data_dir)
    deadline = time.monotonic() + 30
    while not list(partial.glob(".*.partial")) and time.monotonic() < deadline:
        time.sleep(0.02)  # wait until it is really writing
    assert list(partial.glob(".*.partial")), "the import never started writing"
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    proc.wait(timeout=30)
    assert proc.returncode != 0
    assert store.active_ids(data_dir) == before
    assert [p.name for p in partial.iterdir()] == [f"{before[2026]}.sqlite"]


def test_activate_keeps_a_release_time_with_the_pointer(data_dir, tmp_path):
    f = write(tmp_path / "a.csv", "sbd,toan\n01000001,5\n")
    assert run("import", "--data-dir", str(data_dir), "--year", "2026", str(f)).exit_code == 0
    (sid,) = [s.id for s in store.list_snapshots(data_dir)]
    r = run("activate", "--data-dir", str(data_dir), "--release-at", "2026-07-12T08:00", sid)
    assert r.exit_code == 0 and "Công bố từ 08:00 ngày 12/07/2026" in r.output
    pointer = store.read_pointer(data_dir, 2026)
    assert pointer.snapshot == sid and pointer.release_at.isoformat() == "2026-07-12T08:00:00+07:00"
    listed = run("snapshots", "--data-dir", str(data_dir)).output
    assert f"* {sid}" in listed and "công bố từ 08:00 ngày 12/07/2026" in listed
    r = run("activate", "--data-dir", str(data_dir), "--release-at", "now", sid)
    assert r.exit_code == 0 and store.read_pointer(data_dir, 2026).release_at is None
    from diemthi import history

    events = [(e["action"], e.get("release_at")) for e in history.read(data_dir)]
    assert events[-2:] == [("activate", "2026-07-12T08:00:00+07:00"), ("release_at", "now")]
    r = run("activate", "--data-dir", str(data_dir), "--release-at", "tomorrow", sid)
    assert r.exit_code == 2
    assert run("activate", "--data-dir", str(data_dir), "x" * 10_000).exit_code == 1


def test_serve_help_lists_every_service_setting():
    from diemthi.settings import Settings

    text = run("serve", "--help").output
    service = [f.name for f in Settings.__dataclass_fields__.values()  # the chatbot's are
               if not f.name.startswith(("zalo_", "chatbot_"))  # env only (README)
               and f.name != "metrics_dir"]  # serve's own, for its workers
    for name in service:
        flag = "--" + name.replace("_", "-")
        assert flag in text, flag


def test_activate_with_an_absurd_id_is_refused_not_a_traceback(data_dir):
    for bad in ("x" * 10_000, "../../etc/passwd", "\x1b[2Jid", ""):
        r = CliRunner().invoke(cli, ["activate", "--data-dir", str(data_dir), bad])
        assert r.exit_code == 1, r.output
        assert "Traceback" not in r.output and "\x1b" not in r.output
        assert "không phải mã bản chụp" in r.output or "không có bản chụp" in r.output


def test_import_output_names_sheets_and_skip_unchanged(data_dir, tmp_path):
    from tests.test_xlsx import write_book

    book = write_book(tmp_path / "b.xlsx", {"Sheet1": [["SBD", "Toán"], ["01000001", 5]],
                                            "Sheet2": [["01000002", 6]],
                                            "Biểu đồ": [["Tổng", 2]]})
    args = ["import", "--data-dir", str(data_dir), "--year", "2026", "--activate",
            "--skip-unchanged", str(book)]
    r = run(*args)
    assert r.exit_code == 0, r.output
    assert "trang Sheet1: 1 dòng, nhập 1" in r.output and "trang Sheet2: 1 dòng" in r.output
    assert "bỏ qua trang Biểu đồ" in r.output
    r = run(*args)
    assert r.exit_code == 0 and "Không nhập lại" in r.output
    assert len(store.list_snapshots(data_dir)) == 1


def test_snapshots_says_which_files_are_not_sound(data_dir, tmp_path):
    d = str(data_dir)
    assert run("import", "--data-dir", d, "--year", "2026", "--activate",
               *map(str, SAMPLE)).exit_code == 0
    (good,) = store.list_snapshots(data_dir)
    folder = store.snapshots_dir(data_dir)
    assert run("snapshots", "--data-dir", d, "--check").exit_code == 0
    # a copy cut short: no readable manifest, so never listed as a snapshot; said, exit 1
    (folder / "2026-cut.sqlite").write_bytes(good.path.read_bytes()[:300_000])
    r = CliRunner().invoke(cli, ["snapshots", "--data-dir", d])
    assert r.exit_code == 1 and "! 2026-cut.sqlite" in r.output and f"* {good.id}" in r.output
    (folder / "2026-cut.sqlite").unlink()
    # a copy damaged in the middle: its manifest reads, only --check reads every page
    damaged = bytearray(good.path.read_bytes())
    middle = len(damaged) // 2
    damaged[middle:middle + 4096] = b"\xff" * 4096
    (folder / "2026-damaged.sqlite").write_bytes(bytes(damaged))
    assert run("snapshots", "--data-dir", d).exit_code == 0
    r = CliRunner().invoke(cli, ["snapshots", "--data-dir", d, "--check"])
    assert r.exit_code == 1 and "! 2026-damaged.sqlite: hỏng" in r.output
    (folder / "2026-damaged.sqlite").unlink()
    # a manifest that is not JSON: said, not a traceback
    edited_copy(good.path, folder / "2026-badjson.sqlite",
                "UPDATE manifest SET json = '{not json'")
    r = CliRunner().invoke(cli, ["snapshots", "--data-dir", d])
    assert r.exit_code == 1 and "! 2026-badjson.sqlite: không phải bản chụp hợp lệ" in r.output
