"""Snapshots: immutable SQLite files of ready response bodies, and the pointers that pick one.

Layout under the data dir::

    snapshots/<id>.sqlite      one per import, never modified after the rename into place
    snapshots/.<id>.partial    being written; never listed, never served
    active/<year>              the id served for that year, replaced by rename
    reports/                   import reports

A snapshot holds ``manifest(json)``, ``candidates(sbd INTEGER PRIMARY KEY, body BLOB)``,
where body is the precomputed part of the JSON of ``GET /v1/scores/{sbd}`` (scores,
foreign language, combination totals), and ``distribution(key, province, value, count)``:
how many candidates of each province have each exact value (hundredths) of each subject
and combination, counted by the importer while it reads the rows. The part of a body that
is the same for a whole province (sbd, year, province) and the part that depends on the
other candidates (ranks, last year's equivalents: a :class:`Tail`) are joined to it by
:meth:`Envelope.body`, the one place where a stored row becomes the finished body.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Any, Iterable, Protocol, Sequence

import orjson

from .files import atomic_write, fsync_dir
from .reference import provinces

SCHEMA = """
CREATE TABLE candidates (sbd INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE manifest (json TEXT NOT NULL);
CREATE TABLE distribution (key TEXT NOT NULL, province TEXT NOT NULL, value INTEGER NOT NULL,
                           count INTEGER NOT NULL, PRIMARY KEY (key, province, value))
    WITHOUT ROWID;
"""

#: key (subject or combination) -> province code -> value in hundredths -> candidates
Distributions = dict[str, dict[str, dict[int, int]]]


class StoreError(Exception):
    """A snapshot or pointer is missing or unusable; the message is for staff."""


def snapshots_dir(data_dir: Path) -> Path:
    return data_dir / "snapshots"


def snapshot_path(data_dir: Path, snapshot_id: str) -> Path:
    return snapshots_dir(data_dir) / f"{snapshot_id}.sqlite"


def connect_readonly(path: Path) -> sqlite3.Connection:
    """Open a snapshot as Datasette opens files it will never write: immutable."""
    return sqlite3.connect(readonly_uri(path), uri=True, check_same_thread=False)


def readonly_uri(path: Path) -> str:
    return f"file:{path.resolve()}?immutable=1"


class SnapshotWriter:
    """Builds one snapshot under a partial name; only :meth:`finish` makes it visible."""

    def __init__(self, data_dir: Path, snapshot_id: str):
        self.data_dir = data_dir
        self.id = snapshot_id
        snapshots_dir(data_dir).mkdir(parents=True, exist_ok=True)
        self.partial = snapshots_dir(data_dir) / f".{snapshot_id}.partial"
        self.partial.unlink(missing_ok=True)
        os.close(os.open(self.partial, os.O_CREAT | os.O_WRONLY, 0o640))  # not world-readable
        self.db = sqlite3.connect(self.partial, isolation_level=None)
        # The file is private until renamed: no sync is needed to stay consistent. The
        # in-memory journal costs next to nothing on a growing file and lets a duplicate
        # key abort its INSERT cleanly.
        self.db.executescript("PRAGMA page_size=16384; PRAGMA journal_mode=MEMORY;"
                              "PRAGMA synchronous=OFF;"
                              "PRAGMA locking_mode=EXCLUSIVE; PRAGMA cache_size=-65536;"
                              + SCHEMA + "BEGIN;")

    BATCH = 256  # rows per INSERT statement: a quarter fewer steps than one per row

    def add(self, sbds: Sequence[int], bodies: Sequence[bytes]) -> list[int]:
        """Insert records; return the positions of those whose SBD was already there.

        The primary key finds duplicates, so the common case costs no Python per row:
        a multi-row INSERT either goes in whole or (on a duplicate) not at all, and only
        then is its batch retried row by row to find the duplicate.
        """
        flat = list(chain.from_iterable(zip(sbds, bodies)))
        rejected: list[int] = []
        for start in range(0, len(sbds), self.BATCH):
            part = flat[2 * start:2 * (start + self.BATCH)]
            try:
                self.db.execute(self._insert(len(part) // 2), part)
            except sqlite3.IntegrityError:
                for k in range(start, min(start + self.BATCH, len(sbds))):
                    try:
                        self.db.execute(self._insert(1), (sbds[k], bodies[k]))
                    except sqlite3.IntegrityError:
                        rejected.append(k)
        return rejected

    @staticmethod
    @lru_cache(maxsize=8)
    def _insert(rows: int) -> str:
        return "INSERT INTO candidates VALUES " + ",".join(["(?,?)"] * rows)

    def finish(self, manifest: dict[str, Any],
               distribution: Iterable[tuple[str, str, int, int]] = ()) -> Path:
        """Commit, flush to disk and rename into place: the snapshot exists whole or not.

        ``distribution`` rows are (key, province, value in hundredths, count)."""
        self.db.execute("INSERT INTO manifest VALUES (?)", (orjson.dumps(manifest).decode(),))
        self.db.executemany("INSERT INTO distribution VALUES (?,?,?,?)", distribution)
        self.db.execute("COMMIT")
        self.db.close()
        with open(self.partial, "rb+") as fh:
            os.fsync(fh.fileno())
        final = snapshot_path(self.data_dir, self.id)
        os.replace(self.partial, final)
        fsync_dir(final.parent)
        return final

    def abort(self) -> None:
        try:
            self.db.close()
        finally:
            self.partial.unlink(missing_ok=True)


class Tail(Protocol):
    """What follows the stored part of a body (``standing.Standing``: ranks, equivalents)."""

    def tail(self, province: str, stored: bytes) -> bytes: ...


class Envelope:
    """The per-province start of every response body of one exam year, and its tail."""

    def __init__(self, year: int, provinces: dict[str, str], tail: Tail | None = None):
        self.year = year
        self.heads = {code: (f'","year":{year},"province":'
                             + orjson.dumps({"code": code, "name": name}).decode()
                             + ",").encode()
                      for code, name in provinces.items()}
        self.tail = tail.tail if tail is not None else None

    def body(self, sbd: str, stored: bytes) -> bytes:
        """The finished JSON body from a stored row (which ends with the closing brace)."""
        province = sbd[:2]
        if self.tail is None:
            return b'{"sbd":"' + sbd.encode() + self.heads[province] + stored
        return (b'{"sbd":"' + sbd.encode() + self.heads[province] + stored[:-1]
                + self.tail(province, stored) + b"}")


@dataclass(frozen=True)
class SnapshotInfo:
    id: str
    path: Path
    manifest: dict[str, Any]

    @property
    def year(self) -> int:
        return int(self.manifest["year"])


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        db = connect_readonly(path)
        try:
            (text,) = db.execute("SELECT json FROM manifest").fetchone()
        finally:
            db.close()
    except (sqlite3.Error, TypeError) as exc:
        raise StoreError(f"{path.name}: không phải bản chụp hợp lệ ({exc})") from exc
    return orjson.loads(text)


def list_snapshots(data_dir: Path) -> list[SnapshotInfo]:
    """Every finished snapshot, oldest first."""
    folder = snapshots_dir(data_dir)
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.sqlite")):
        try:
            out.append(SnapshotInfo(path.stem, path, read_manifest(path)))
        except StoreError:
            continue  # not ours; never served
    return sorted(out, key=lambda s: (s.manifest.get("created_at", ""), s.id))


def get_snapshot(data_dir: Path, snapshot_id: str) -> SnapshotInfo:
    path = snapshot_path(data_dir, snapshot_id)
    if "/" in snapshot_id or not path.is_file():
        raise StoreError(f"không có bản chụp '{snapshot_id}' trong {snapshots_dir(data_dir)}")
    return SnapshotInfo(snapshot_id, path, read_manifest(path))


def active_ids(data_dir: Path) -> dict[int, str]:
    """Year → active snapshot id, read from the pointers (a few tiny files)."""
    folder = data_dir / "active"
    out: dict[int, str] = {}
    if folder.is_dir():
        for pointer in folder.iterdir():
            if pointer.name.isdigit():
                snapshot_id = pointer.read_text(encoding="utf-8").strip()
                if snapshot_path(data_dir, snapshot_id).is_file():
                    out[int(pointer.name)] = snapshot_id
    return out


def activate(data_dir: Path, snapshot_id: str) -> SnapshotInfo:
    """Make a snapshot the one served for its year: one atomic rename of a pointer."""
    info = get_snapshot(data_dir, snapshot_id)
    atomic_write(data_dir / "active" / str(info.year), (snapshot_id + "\n").encode())
    return info


def envelope(info: SnapshotInfo, tail: Tail | None = None) -> Envelope:
    return Envelope(info.year, provinces(info.year), tail)


def lookup(info: SnapshotInfo, sbd: str, tail: Tail | None = None) -> bytes | None:
    """One candidate's finished body from a snapshot, synchronously (CLI and tests);
    without ``tail``, only what the snapshot itself holds (no ranks)."""
    db = connect_readonly(info.path)
    try:
        row = db.execute("SELECT body FROM candidates WHERE sbd = ?", (int(sbd),)).fetchone()
    finally:
        db.close()
    return envelope(info, tail).body(sbd, row[0]) if row else None


def read_distributions(path: Path) -> Distributions:
    """The counts per (key, province, value) the importer stored with the snapshot.

    A snapshot written before the table existed is counted from its bodies instead (once,
    when it is opened: seconds for a national snapshot)."""
    db = connect_readonly(path)
    out: Distributions = {}
    try:
        try:
            rows = db.execute("SELECT key, province, value, count FROM distribution").fetchall()
        except sqlite3.OperationalError:  # an older snapshot: no such table
            return _count_bodies(db)
    finally:
        db.close()
    for key, province, value, count in rows:
        out.setdefault(key, {}).setdefault(province, {})[value] = count
    return out


def _count_bodies(db: sqlite3.Connection) -> Distributions:
    out: Distributions = {}
    for sbd, body in db.execute("SELECT sbd, body FROM candidates"):
        province = f"{sbd // 1_000_000:02d}"
        doc = orjson.loads(b"{" + body)
        for part in ("scores", "combinations"):
            for key, value in doc[part].items():
                counts = out.setdefault(key, {}).setdefault(province, {})
                h = round(value * 100)
                counts[h] = counts.get(h, 0) + 1
    return out
