import hashlib
import os
from pathlib import Path

import orjson
import pytest

from diemthi import store
from diemthi.settings import parse_release_at
from diemthi.importer import import_files
from tests.conftest import write


def make(data_dir: Path, tmp_path: Path, score: str, year: int = 2026, activate=True) -> str:
    f = write(tmp_path / f"{score}-{year}.csv", f"sbd,toan\n01000001,{score}\n")
    return import_files(data_dir, year, [f], activate=activate).snapshot_id


def test_activation_flips_a_pointer_and_rolls_back(data_dir, tmp_path):
    first = make(data_dir, tmp_path, "5")
    second = make(data_dir, tmp_path, "6")
    assert store.active_ids(data_dir) == {2026: second}
    store.activate(data_dir, first)
    assert store.active_ids(data_dir) == {2026: first}
    assert orjson.loads((data_dir / "active" / "2026").read_bytes()) == {
        "snapshot": first, "release_at": None}
    assert [p.name for p in (data_dir / "active").iterdir()] == ["2026"]  # no temp left
    assert [s.id for s in store.list_snapshots(data_dir)] == [first, second]


def test_import_without_activate_leaves_the_served_one(data_dir, tmp_path):
    served = make(data_dir, tmp_path, "5")
    make(data_dir, tmp_path, "6", activate=False)
    assert store.active_ids(data_dir) == {2026: served}


def test_unknown_snapshot_refused(data_dir):
    with pytest.raises(store.StoreError):
        store.activate(data_dir, "2026-nope")
    with pytest.raises(store.StoreError):
        store.activate(data_dir, "../../etc/passwd")


def test_snapshots_are_never_modified_by_reading(data_dir, tmp_path):
    sid = make(data_dir, tmp_path, "5")
    path = store.snapshot_path(data_dir, sid)
    before = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    info = store.get_snapshot(data_dir, sid)
    assert store.lookup(info, "01000001") is not None
    assert store.lookup(info, "01000002") is None
    assert (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns) == before
    assert not list(path.parent.glob("*-journal")) and not list(path.parent.glob("*-wal"))


def test_partial_and_foreign_files_are_never_listed(data_dir, tmp_path):
    sid = make(data_dir, tmp_path, "5")
    folder = store.snapshots_dir(data_dir)
    (folder / ".2026-x.partial").write_bytes(b"half")
    (folder / "2026-junk.sqlite").write_bytes(b"not sqlite")
    assert [s.id for s in store.list_snapshots(data_dir)] == [sid]


def test_writer_abort_leaves_nothing(data_dir):
    w = store.SnapshotWriter(data_dir, "2026-test")
    assert w.add([1000001, 1000002, 1000001], [b"a", b"b", b"c"]) == [2]
    w.abort()
    assert os.listdir(store.snapshots_dir(data_dir)) == []


def test_release_time_is_kept_with_the_pointer(data_dir, tmp_path):
    first = make(data_dir, tmp_path, "5")
    later = parse_release_at("2026-07-12T08:00")
    store.activate(data_dir, first, later)
    assert store.read_pointer(data_dir, 2026) == store.Pointer(first, later)
    second = make(data_dir, tmp_path, "6")  # import --activate during the embargo
    assert store.read_pointer(data_dir, 2026) == store.Pointer(second, later)  # kept
    store.activate(data_dir, first, None)  # lifted
    assert store.read_pointer(data_dir, 2026) == store.Pointer(first, None)


def test_plain_text_pointers_of_before_are_read(data_dir, tmp_path):
    sid = make(data_dir, tmp_path, "5")
    (data_dir / "active" / "2026").write_text(sid + "\n")
    assert store.read_pointer(data_dir, 2026) == store.Pointer(sid)
    assert store.active_ids(data_dir) == {2026: sid}


@pytest.mark.parametrize("content", [b"\xff\xfe2026", b'{"release_at": null}', b"{not json",
                                     b'{"snapshot": "a/../b"}', b"x" * 10_000,
                                     b'{"snapshot": "x", "release_at": "tomorrow"}',
                                     b'{"snapshot": 5}', b'{"snapshot": ""}'])
def test_unreadable_pointers_are_a_store_error(data_dir, content):
    (data_dir / "active").mkdir()
    (data_dir / "active" / "2026").write_bytes(content)
    with pytest.raises(store.StoreError):
        store.read_pointer(data_dir, 2026)
    assert store.active_ids(data_dir) == {}


def test_a_very_long_id_is_refused_not_a_traceback(data_dir):
    with pytest.raises(store.StoreError):
        store.activate(data_dir, "2026-" + "x" * 10_000)
