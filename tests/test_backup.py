"""Backup while serving, restore elsewhere: same bodies and ETags, live SQLite intact."""

from __future__ import annotations

import sqlite3
import stat
import threading
from pathlib import Path

import httpx
import pytest

from diemthi import backup, store
from diemthi.app import create_app
from diemthi.importer import import_files
from diemthi.settings import Settings
from tests.conftest import SAMPLE
from tests.servers import LiveServer

SBDS = ("01000002", "79000002", "01000003")


def _serve_and_get(data_dir: Path) -> dict[str, tuple[bytes, str]]:
    with LiveServer(create_app(Settings(data_dir=data_dir))) as url:
        out = {}
        for sbd in SBDS:
            r = httpx.get(f"{url}/v1/scores/{sbd}")
            assert r.status_code == 200
            out[sbd] = (r.content, r.headers["etag"])
        return out


def _live_store(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE queue (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    return db


def test_backup_while_serving_and_writing_then_restore(data_dir: Path, tmp_path: Path) -> None:
    import_files(data_dir, 2026, list(SAMPLE), activate=True)
    (data_dir / "history.jsonl").write_bytes(b'{"action":"import"}\n{"action":"acti')  # mid-line
    (data_dir / "zalo-tokens.json").write_bytes(b'{"access_token":"a","refresh_token":"r"}')
    db = _live_store(data_dir / "chatbot.sqlite")
    db.executemany("INSERT INTO queue (body) VALUES (?)", [(f"m{i}",) for i in range(500)])
    before = _serve_and_get(data_dir)

    stop = threading.Event()

    def keep_writing() -> None:  # the server's sender would be doing this meanwhile
        i = 0
        while not stop.is_set():
            db.execute("INSERT INTO queue (body) VALUES (?)", (f"late{i}",))
            i += 1

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        with LiveServer(create_app(Settings(data_dir=data_dir))):
            report = backup.backup(data_dir, tmp_path / "bk")
    finally:
        stop.set()
        writer.join()
    assert report.online == 1 and report.skipped_secrets == ["zalo-tokens.json"]
    assert not (tmp_path / "bk" / "zalo-tokens.json").exists()

    restored = tmp_path / "restored"
    backup.restore(tmp_path / "bk", restored)
    assert _serve_and_get(restored) == before  # same bodies, same ETags
    copy = sqlite3.connect(restored / "chatbot.sqlite")
    ids = [r[0] for r in copy.execute("SELECT id FROM queue ORDER BY id")]
    assert ids[:500] == list(range(1, 501)) and ids == list(range(1, len(ids) + 1))
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert (restored / "history.jsonl").read_bytes() == b'{"action":"import"}\n'
    assert store.active_ids(restored) == store.active_ids(data_dir)
    assert stat.S_IMODE((restored / "chatbot.sqlite").stat().st_mode) == 0o600


def test_secrets_only_with_the_flag(data_dir: Path, tmp_path: Path) -> None:
    (data_dir / "zalo-tokens.json").write_bytes(b"{}")
    backup.backup(data_dir, tmp_path / "bk", with_secrets=True)
    assert (tmp_path / "bk" / "zalo-tokens.json").read_bytes() == b"{}"
    backup.restore(tmp_path / "bk", tmp_path / "r")
    assert stat.S_IMODE((tmp_path / "r" / "zalo-tokens.json").stat().st_mode) == 0o600


def test_restore_refuses_a_damaged_backup_and_writes_nothing(data_dir: Path,
                                                            tmp_path: Path) -> None:
    import_files(data_dir, 2026, list(SAMPLE), activate=True)
    backup.backup(data_dir, tmp_path / "bk")
    victim = next((tmp_path / "bk" / "active").iterdir())
    victim.write_text("someone-else\n")
    with pytest.raises(backup.BackupError, match="sha256"):
        backup.restore(tmp_path / "bk", tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_backup_refuses_a_non_empty_destination(data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "bk").mkdir()
    (tmp_path / "bk" / "x").write_text("x")
    with pytest.raises(backup.BackupError, match="đã có dữ liệu"):
        backup.backup(data_dir, tmp_path / "bk")


def test_backup_while_the_chatbot_drains_then_the_restored_queue_resumes(data_dir: Path,
                                                                          tmp_path: Path) -> None:
    """The outbox is copied mid-drain through SQLite's backup API; the server started on
    the restored dir sends what was still waiting, and nothing accepted is lost."""
    from diemthi.chatbot.outbox import read_stats
    from diemthi.settings import load
    from loadtests.zalo_standin import ZaloStandIn
    from tests.chatbot_world import import_scores, say, settings, wait_for

    import_scores(data_dir, tmp_path)
    zalo = ZaloStandIn()
    with LiveServer(zalo.app()) as zalo_url:
        app = create_app(load(settings(data_dir, zalo_url, zalo_send_rate="2"), environ={}))
        with LiveServer(app) as url, httpx.Client(base_url=url) as c:
            for i in range(12):
                assert say(c, zalo, "tra điểm 08000123", f"q{i}", user=f"u{i}").status_code == 200
            wait_for(lambda: len(zalo.sent) >= 1)
            backup.backup(data_dir, tmp_path / "bk")
        sent_before = {s["message_id"] for s in zalo.sent}

        restored = tmp_path / "restored"
        backup.restore(tmp_path / "bk", restored)
        assert 0 < read_stats(restored)["depth"] < 12  # copied mid-drain
        app = create_app(load(settings(restored, zalo_url, zalo_send_rate="50"), environ={}))
        with LiveServer(app):
            wait_for(lambda: read_stats(restored)["depth"] == 0, seconds=60)
        answered = {s["message_id"] for s in zalo.sent}
        assert answered == {f"q{i}" for i in range(12)}
        assert answered - sent_before  # the restored server sent what was waiting
