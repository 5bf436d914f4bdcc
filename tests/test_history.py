import os
import stat

from diemthi import history


def test_append_only_one_line_per_event(data_dir):
    first = history.append(data_dir, "import", year=2026, snapshot="2026-a", by="Lan",
                           files=[{"name": "a.csv", "sha256": "ab" * 32}], rows=3)
    before = history.path(data_dir).read_bytes()
    history.append(data_dir, "activate", year=2026, snapshot="2026-a", reason="kết quả")
    after = history.path(data_dir).read_bytes()
    assert after.startswith(before)  # never rewritten
    events = list(history.read(data_dir))
    assert [e["action"] for e in events] == ["import", "activate"]
    assert events[0] == first and events[0]["by"] == "Lan"
    assert events[1]["by"]  # the OS user when --by is not given
    assert events[1]["reason"] == "kết quả" and events[1]["time"].startswith("20")
    assert stat.S_IMODE(os.stat(history.path(data_dir)).st_mode) == 0o600


def test_read_by_year_and_skip_a_torn_line(data_dir):
    history.append(data_dir, "import", year=2025, snapshot="x")
    history.append(data_dir, "import", year=2026, snapshot="y")
    with open(history.path(data_dir), "ab") as fh:
        fh.write(b'{"time": "2026')  # a crash in the middle of a write
    assert [e["snapshot"] for e in history.read(data_dir, 2026)] == ["y"]
    assert len(list(history.read(data_dir))) == 2
    assert list(history.read(data_dir / "nowhere")) == []
    assert "năm 2026" in history.describe(list(history.read(data_dir, 2026))[0])
    history.append(data_dir, "activate", year=2026, snapshot="z")
    assert [e["snapshot"] for e in history.read(data_dir, 2026)] == ["y", "z"]
