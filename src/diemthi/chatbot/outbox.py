"""The chatbot's durable state: ``DIR/chatbot.sqlite`` (SQLite in WAL mode).

A transactional outbox, not a framework: every accepted webhook event is a row of
``events`` (``msg_id`` unique, so a Zalo retry is a no-op in any worker, after any
restart); the sender turns events into rows of ``outbox`` (what to send, in arrival
order) in the same transaction that marks them composed; a send's outcome is written
back with the counters it moves (``tally``). ``users`` keeps each user's latest
incoming message (the channel for later messages is chosen from it), ``registrations``
the SBDs students asked for before the release, ``lease`` which process sends.

Many processes open the file; WAL gives one writer and many readers, and ``BEGIN
IMMEDIATE`` takes the write lock up front so a busy writer waits instead of failing
half-way. The schema and every query live in this module.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

T = TypeVar("T")

FILENAME = "chatbot.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    text TEXT NOT NULL,
    at REAL NOT NULL,             -- when the user sent it (Zalo's timestamp), seconds
    received REAL NOT NULL,
    composed INTEGER NOT NULL DEFAULT 0,
    replies INTEGER NOT NULL DEFAULT 0   -- in-thread replies sent against it
);
CREATE INDEX IF NOT EXISTS events_waiting ON events(seq) WHERE composed = 0;
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY,
    msg_id TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,           -- reply | push | change
    reply_to TEXT,                -- the incoming msg_id a reply answers
    text TEXT NOT NULL,
    template TEXT,                -- JSON payload of a transaction template, or NULL
    created REAL NOT NULL,
    due REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'waiting',  -- waiting | sent | given_up
    channel TEXT,
    quota TEXT,
    reason TEXT,
    done REAL,
    dedup TEXT UNIQUE             -- push:<user>:<sbd>:<year> and the like: exactly once
);
CREATE INDEX IF NOT EXISTS outbox_waiting ON outbox(id) WHERE state = 'waiting';
CREATE INDEX IF NOT EXISTS outbox_waiting_user ON outbox(user_id) WHERE state = 'waiting';
CREATE INDEX IF NOT EXISTS outbox_done ON outbox(done) WHERE state = 'sent';
CREATE TABLE IF NOT EXISTS registrations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    sbd TEXT NOT NULL,
    year INTEGER NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    pushed REAL,                  -- when its push went into the outbox
    snapshot TEXT,                -- the snapshot whose scores the user was last sent
    UNIQUE (user_id, sbd, year)
);
CREATE INDEX IF NOT EXISTS registrations_waiting ON registrations(year, seq) WHERE pushed IS NULL;
CREATE TABLE IF NOT EXISTS tally (
    name TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    value INTEGER NOT NULL,
    PRIMARY KEY (name, label)
);
CREATE TABLE IF NOT EXISTS lease (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Event:
    msg_id: str
    user_id: str
    name: str
    text: str
    at: float  # seconds since the epoch


@dataclass(frozen=True)
class Message:
    """One row of the outbox waiting to go."""

    id: int
    user_id: str
    kind: str
    reply_to: str | None
    reply_to_at: float | None
    replies_used: int  # in-thread replies already sent against reply_to
    text: str
    template: str | None
    created: float
    attempts: int


@dataclass(frozen=True)
class Latest:
    """A user's latest incoming message and the in-thread replies it has had."""

    msg_id: str
    at: float
    replies_used: int


@dataclass(frozen=True)
class Outcome:
    """What became of one send; written back in a batch."""

    id: int
    state: str  # sent | retry | given_up
    channel: str | None = None
    quota: str | None = None
    reason: str | None = None
    due: float = 0.0
    reply_to: str | None = None  # the msg_id whose in-thread count grows


@dataclass(frozen=True)
class NewMessage:
    user_id: str
    kind: str
    text: str
    reply_to: str | None = None
    template: str | None = None
    dedup: str | None = None


@dataclass(frozen=True)
class Registration:
    seq: int
    user_id: str
    sbd: str
    year: int
    snapshot: str | None


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (we open transactions ourselves), WAL, waiting
    up to 10 s for another process's write lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    db.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL: a commit survives the process being killed (the OS has the pages);
    # only a power cut can lose the last commits, and it never corrupts the file.
    db.execute("PRAGMA synchronous=NORMAL")
    path.chmod(0o600)
    return db


class Store:
    """The queries over one connection. Not thread-safe: :class:`AsyncStore` gives
    it one thread of its own."""

    def __init__(self, path: Path):
        self.path = path
        self.db = connect(path)
        with self.write():
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self.db.execute(statement)

    def close(self) -> None:
        self.db.close()

    def write(self) -> "_Transaction":
        return _Transaction(self.db)

    # -- the webhook ---------------------------------------------------------------

    def accept(self, events: Sequence[Event], now: float) -> None:
        """Record accepted events (a msg_id seen before is ignored) and each user's
        latest message, in one transaction."""
        with self.write():
            self.db.executemany(
                "INSERT OR IGNORE INTO events (msg_id, user_id, name, text, at, received) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(e.msg_id, e.user_id, e.name, e.text, e.at, now) for e in events])
            self.db.executemany(
                "INSERT INTO users (user_id, msg_id, at) VALUES (?, ?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET msg_id = excluded.msg_id, "
                "at = excluded.at WHERE excluded.at >= users.at",
                [(e.user_id, e.msg_id, e.at) for e in events])

    # -- composing -----------------------------------------------------------------

    def uncomposed(self, limit: int) -> list[Event]:
        rows = self.db.execute("SELECT msg_id, user_id, name, text, at FROM events "
                               "WHERE composed = 0 ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [Event(*row) for row in rows]

    def composed(self, done: Iterable[tuple[Event, list[NewMessage]]],
                 registrations: Iterable[tuple[str, str, int]], now: float) -> int:
        """Mark events composed and queue their messages, in one transaction. A text
        already waiting for the same user is not queued twice (a student sending the
        same SBD again while the answer waits gets one answer). Returns rows queued."""
        queued = 0
        with self.write():
            for event, messages in done:
                self.db.execute("UPDATE events SET composed = 1 WHERE msg_id = ?",
                                (event.msg_id,))
                for m in messages:
                    queued += self._queue(m, now, skip_same_waiting=True)
            self.db.executemany(
                "INSERT INTO registrations (user_id, sbd, year, created, updated) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, sbd, year) "
                "DO UPDATE SET updated = excluded.updated",
                [(user, sbd, year, now, now) for user, sbd, year in registrations])
        return queued

    def _queue(self, m: NewMessage, now: float, skip_same_waiting: bool = False) -> int:
        if skip_same_waiting and self.db.execute(
                "SELECT 1 FROM outbox WHERE user_id = ? AND state = 'waiting' AND text = ? "
                "LIMIT 1", (m.user_id, m.text)).fetchone():
            return 0
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO outbox (user_id, kind, reply_to, text, template, created, "
            "due, dedup) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (m.user_id, m.kind, m.reply_to, m.text, m.template, now, now, m.dedup))
        return cursor.rowcount

    # -- sending -------------------------------------------------------------------

    def due(self, now: float, limit: int, skip: Iterable[int] = ()) -> list[Message]:
        """Waiting messages whose time has come, oldest first (arrival order)."""
        skip = set(skip)
        rows = self.db.execute(
            "SELECT o.id, o.user_id, o.kind, o.reply_to, e.at, coalesce(e.replies, 0), "
            "o.text, o.template, o.created, o.attempts FROM outbox o "
            "LEFT JOIN events e ON e.msg_id = o.reply_to "
            "WHERE o.state = 'waiting' AND o.due <= ? ORDER BY o.id LIMIT ?",
            (now, limit + len(skip))).fetchall()
        return [Message(*row) for row in rows if row[0] not in skip][:limit]

    def replies(self, msg_id: str | None) -> int:
        """In-thread replies sent so far against an incoming message."""
        row = self.db.execute("SELECT replies FROM events WHERE msg_id = ?",
                              (msg_id,)).fetchone() if msg_id else None
        return row[0] if row else 0

    def facts(self, user_id: str, msg_id: str | None) -> tuple[Latest | None, int]:
        """What the channel choice needs, in one call: the user's latest message and the
        in-thread replies sent so far against ``msg_id``."""
        return self.latest(user_id), self.replies(msg_id)

    def waiting(self) -> int:
        (count,) = self.db.execute("SELECT count(*) FROM outbox WHERE state = 'waiting'"
                                   ).fetchone()
        return count

    def latest(self, user_id: str) -> Latest | None:
        row = self.db.execute(
            "SELECT u.msg_id, u.at, coalesce(e.replies, 0) FROM users u "
            "LEFT JOIN events e ON e.msg_id = u.msg_id WHERE u.user_id = ?",
            (user_id,)).fetchone()
        return Latest(*row) if row else None

    def record(self, outcomes: Sequence[Outcome], now: float) -> None:
        """Write sends' outcomes and move the counters, in one transaction."""
        with self.write():
            for o in outcomes:
                if o.state == "sent":
                    self.db.execute("UPDATE outbox SET state = 'sent', channel = ?, quota = ?, "
                                    "done = ?, attempts = attempts + 1 WHERE id = ?",
                                    (o.channel, o.quota, now, o.id))
                    if o.channel == "reply" and o.reply_to:
                        self.db.execute("UPDATE events SET replies = replies + 1 "
                                        "WHERE msg_id = ?", (o.reply_to,))
                    self._count("sent", f"{o.channel}|{o.quota}")
                elif o.state == "retry":
                    self.db.execute("UPDATE outbox SET attempts = attempts + 1, due = ? "
                                    "WHERE id = ?", (o.due, o.id))
                    self._count("retried")
                else:
                    self.db.execute("UPDATE outbox SET state = 'given_up', reason = ?, done = ? "
                                    "WHERE id = ?", (o.reason, now, o.id))
                    self._count("given_up", o.reason or "error")

    def thread_used_up(self, msg_id: str) -> None:
        """Zalo refused an in-thread reply: count the thread as used up."""
        with self.write():
            self.db.execute("UPDATE events SET replies = max(replies, 8) WHERE msg_id = ?",
                            (msg_id,))

    def _count(self, name: str, label: str = "", by: int = 1) -> None:
        self.db.execute("INSERT INTO tally (name, label, value) VALUES (?, ?, ?) "
                        "ON CONFLICT (name, label) DO UPDATE SET value = value + excluded.value",
                        (name, label, by))

    # -- the lease -----------------------------------------------------------------

    def take_lease(self, holder: str, now: float, ttl: float, name: str = "sender") -> bool:
        """Hold (or renew) the lease if it is free, expired or ours."""
        with self.write():
            row = self.db.execute("SELECT holder, until FROM lease WHERE name = ?",
                                  (name,)).fetchone()
            if row and row[0] != holder and row[1] > now:
                return False
            self.db.execute("INSERT INTO lease (name, holder, until) VALUES (?, ?, ?) "
                            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                            "until = excluded.until", (name, holder, now + ttl))
            return True

    def release_lease(self, holder: str, name: str = "sender") -> None:
        with self.write():
            self.db.execute("UPDATE lease SET until = 0 WHERE name = ? AND holder = ?",
                            (name, holder))

    # -- registrations and the push ------------------------------------------------

    def unpushed(self, year: int, limit: int) -> list[Registration]:
        rows = self.db.execute(
            "SELECT seq, user_id, sbd, year, snapshot FROM registrations "
            "WHERE year = ? AND pushed IS NULL ORDER BY seq LIMIT ?", (year, limit)).fetchall()
        return [Registration(*row) for row in rows]

    def push_years(self) -> list[int]:
        return [y for (y,) in self.db.execute(
            "SELECT DISTINCT year FROM registrations WHERE pushed IS NULL")]

    def stale(self, year: int, snapshot: str, limit: int) -> list[Registration]:
        """Pushed registrations last sent from another snapshot than ``snapshot``."""
        rows = self.db.execute(
            "SELECT seq, user_id, sbd, year, snapshot FROM registrations "
            "WHERE year = ? AND pushed IS NOT NULL AND snapshot IS NOT ? ORDER BY seq LIMIT ?",
            (year, snapshot, limit)).fetchall()
        return [Registration(*row) for row in rows]

    def pushed(self, done: Iterable[tuple[Registration, NewMessage | None]], snapshot: str,
               now: float) -> None:
        """Queue pushes (or change notices) and mark their registrations, in one
        transaction: a restart resumes after the last batch, never repeats it."""
        with self.write():
            for reg, message in done:
                if message is not None:
                    self._queue(message, now)
                self.db.execute("UPDATE registrations SET pushed = coalesce(pushed, ?), "
                                "snapshot = ? WHERE seq = ?", (now, snapshot, reg.seq))

    # -- what ops and /metrics read ------------------------------------------------

    def stats(self, now: float) -> dict[str, Any]:
        waiting, oldest = self.db.execute(
            "SELECT count(*), min(created) FROM outbox WHERE state = 'waiting'").fetchone()
        events, oldest_event = self.db.execute(
            "SELECT count(*), min(received) FROM events WHERE composed = 0").fetchone()
        starts = [t for t in (oldest, oldest_event) if t is not None]
        (last_minute,) = self.db.execute(
            "SELECT count(*) FROM outbox WHERE state = 'sent' AND done >= ?",
            (now - 60,)).fetchone()
        registered, pushed = self.db.execute(
            "SELECT count(*), count(pushed) FROM registrations").fetchone()
        tally: dict[str, dict[str, int]] = {}
        for name, label, value in self.db.execute("SELECT name, label, value FROM tally"):
            tally.setdefault(name, {})[label] = value
        sent = {tuple(label.split("|", 1)): v for label, v in tally.get("sent", {}).items()}
        return {
            "depth": waiting + events,
            "oldest_seconds": max(0.0, now - min(starts)) if starts else 0.0,
            "send_rate": last_minute / 60.0,
            "sent": sent,  # (channel, quota) -> count
            "charged": sum(v for (_, quota), v in sent.items() if quota == "charged"),
            "given_up": tally.get("given_up", {}),
            "retried": sum(tally.get("retried", {}).values()),
            "registered": registered,
            "pushed": pushed,
            "push_waiting": registered - pushed,
        }


class _Transaction:
    """``with store.write():`` BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def open_path(data_dir: Path) -> Path:
    return data_dir / FILENAME


def read_stats(data_dir: Path, now: float | None = None) -> dict[str, Any] | None:
    """The figures of ``diemthi zalo status``, or None when there is no store yet."""
    path = data_dir / FILENAME
    if not path.exists():
        return None
    store = Store(path)
    try:
        return store.stats(time.time() if now is None else now)
    finally:
        store.close()


class AsyncStore:
    """A :class:`Store` on a thread of its own: the event loop never waits on SQLite."""

    def __init__(self, path: Path):
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chatbot-db")
        self.store = self.executor.submit(Store, path).result()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def close(self) -> None:
        await self.run(self.store.close)
        self.executor.shutdown(wait=True)
