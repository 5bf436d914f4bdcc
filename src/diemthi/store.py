"""Snapshots: immutable SQLite files of ready response bodies, and the pointers that pick one.

Layout under the data dir::

    snapshots/<id>.sqlite      one per import, never modified after the rename into place
    snapshots/.<id>.partial    being written; never listed, never served
    active/<year>              the pointer: {"snapshot": id, "release_at": iso|null}, replaced
                               by rename (a plain id in pointers written before)
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
from datetime import datetime
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
        snapshots_dir(data_dir).mkdir(parents=True, exist_ok=True, mode=0o750)
        # the pid in the name: concurrent imports never share a file, and the next import
        # can tell a partial whose writer is gone (SIGKILL, power cut) and remove it
        self.partial = snapshots_dir(data_dir) / f".{snapshot_id}.{os.getpid()}.partial"
        self.partial.unlink(missing_ok=True)
        self.db: sqlite3.Connection | None = None
        try:  # Ctrl-C between creating the file and the first statement leaves nothing
            os.close(os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640))
            self.db = sqlite3.connect(self.partial, isolation_level=None, uri=True)
            # The file is private until renamed: no sync is needed to stay consistent. The
            # in-memory journal costs next to nothing on a growing file and lets a
            # duplicate key abort its INSERT cleanly.
            self.db.executescript("PRAGMA page_size=16384; PRAGMA journal_mode=MEMORY;"
                                  "PRAGMA synchronous=OFF;"
                                  "PRAGMA locking_mode=EXCLUSIVE; PRAGMA cache_size=-65536;"
                                  + SCHEMA + "BEGIN;")
        except BaseException:
            self.abort()
            raise

    BATCH = 1000  # rows per INSERT statement: fewer, bigger steps (7% less time than 256)

    def add(self, sbds: Sequence[int], bodies: Sequence[bytes]) -> list[int]:
        """Insert records; return the positions of those whose SBD was already there.

        The primary key finds duplicates, so the common case costs no Python per row:
        a multi-row INSERT either goes in whole or (on a duplicate) not at all, and only
        then is its batch retried row by row to find the duplicate.
        """
        assert self.db is not None
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

    def copy_from(self, base: Path) -> None:
        """Start from every candidate of another snapshot (a change file's base)."""
        assert self.db is not None
        self.db.execute("COMMIT")
        self.db.execute("ATTACH DATABASE ? AS base", (readonly_uri(base),))
        self.db.execute("BEGIN")
        self.db.execute("INSERT INTO candidates SELECT sbd, body FROM base.candidates")

    def replace(self, sbds: Sequence[int], bodies: Sequence[bytes]) -> None:
        """Put these candidates in, over the ones with the same SBD."""
        assert self.db is not None
        self.db.executemany("INSERT OR REPLACE INTO candidates VALUES (?, ?)",
                            zip(sbds, bodies))

    @staticmethod
    @lru_cache(maxsize=8)
    def _insert(rows: int) -> str:
        return "INSERT INTO candidates VALUES " + ",".join(["(?,?)"] * rows)

    def finish(self, manifest: dict[str, Any],
               distribution: Iterable[tuple[str, str, int, int]] = ()) -> Path:
        """Commit, flush to disk and rename into place: the snapshot exists whole or not.

        ``distribution`` rows are (key, province, value in hundredths, count)."""
        assert self.db is not None
        self.db.execute("INSERT INTO manifest VALUES (?)", (orjson.dumps(manifest).decode(),))
        self.db.executemany("INSERT INTO distribution VALUES (?,?,?,?)", distribution)
        self.db.execute("COMMIT")
        self.db.close()
        with open(self.partial, "rb+") as fh:
            os.fsync(fh.fileno())
        final = snapshot_path(self.data_dir, self.id)
        try:
            os.link(self.partial, final)  # never over another import's snapshot
        except FileExistsError:
            raise StoreError(f"bản chụp {self.id} đã có; không ghi đè") from None
        self.partial.unlink()
        fsync_dir(final.parent)
        return final

    def abort(self) -> None:
        try:
            if self.db is not None:
                self.db.close()
        finally:
            self.partial.unlink(missing_ok=True)


def clean_partials(data_dir: Path) -> list[Path]:
    """Remove partial snapshots whose import is no longer running; return them."""
    removed = []
    for path in snapshots_dir(data_dir).glob(".*.partial"):
        pid = path.name.rsplit(".", 2)[-2]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue  # another import is writing it now
        if pid.isdigit() and int(pid) == os.getpid():
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
            return b"".join((b'{"sbd":"', sbd.encode(), self.heads[province], stored))
        return b"".join((b'{"sbd":"', sbd.encode(), self.heads[province], stored[:-1],
                         self.tail(province, stored), b"}"))


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
        manifest = orjson.loads(text)
        if not isinstance(manifest, dict):
            raise TypeError(f"manifest is {type(manifest).__name__}")
    except (sqlite3.Error, TypeError, ValueError) as exc:  # ValueError: bad JSON
        raise StoreError(f"{path.name}: không phải bản chụp hợp lệ ({exc})") from exc
    return manifest


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


def unreadable_snapshots(data_dir: Path) -> list[str]:
    """Files in the snapshots folder named like snapshots that are not (a truncated copy,
    a stray file), each said with its name and why. :func:`list_snapshots` leaves them
    out; ops must see them."""
    folder = snapshots_dir(data_dir)
    out = []
    for path in sorted(folder.glob("*.sqlite")) if folder.is_dir() else ():
        try:
            read_manifest(path)
        except StoreError as exc:
            out.append(str(exc))
    return out


def check_snapshot(path: Path) -> str | None:
    """Every page of a snapshot read and checked (SQLite's quick_check; about a second per
    200 MB): None when sound, else what is wrong. For a copy brought from elsewhere."""
    try:
        db = connect_readonly(path)
        try:
            problems = [row[0] for row in db.execute("PRAGMA quick_check")]
        finally:
            db.close()
    except sqlite3.Error as exc:
        return str(exc)
    return None if problems == ["ok"] else "; ".join(problems[:3])


_ID_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.")


def snapshot_readable(data_dir: Path, snapshot_id: str) -> bool:
    """Whether that snapshot is there and its manifest reads (one small query)."""
    try:
        get_snapshot(data_dir, snapshot_id)
    except StoreError:
        return False
    return True


def get_snapshot(data_dir: Path, snapshot_id: str) -> SnapshotInfo:
    if not _valid_id(snapshot_id):
        shown = snapshot_id[:40] + ("…" if len(snapshot_id) > 40 else "")
        raise StoreError(f"'{shown.encode('unicode_escape').decode()}' không phải mã bản chụp "
                         "(xem: diemthi snapshots)")
    path = snapshot_path(data_dir, snapshot_id)
    if not path.is_file():
        raise StoreError(f"không có bản chụp '{snapshot_id}' trong {snapshots_dir(data_dir)}")
    return SnapshotInfo(snapshot_id, path, read_manifest(path))


@dataclass(frozen=True)
class Pointer:
    """What ``active/<year>`` says: the snapshot served for that year, and from when."""

    snapshot: str
    release_at: datetime | None = None

    def dumps(self) -> bytes:
        return orjson.dumps({"snapshot": self.snapshot, "release_at":
                             self.release_at.isoformat() if self.release_at else None})


MAX_POINTER_BYTES = 4096


def pointer_path(data_dir: Path, year: int) -> Path:
    return data_dir / "active" / str(year)


def current_year(configured: int | None, pointed: Iterable[int]) -> int | None:
    """The exam year answered without one, the one rule for the API, the pages, the
    chatbot and the CLI: the configured one (``DIEMTHI_YEAR``), else the latest year with
    a pointer file, readable or not (never an older year in its place)."""
    return configured if configured is not None else max(pointed, default=None)


def pointer_years(data_dir: Path) -> list[int]:
    """The years that have a pointer file (served or not), oldest first."""
    folder = data_dir / "active"
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and len(p.name) == 4)


def read_pointer(data_dir: Path, year: int) -> Pointer:
    """The pointer of ``year``: ``{"snapshot": id, "release_at": iso|null}``, or the plain
    id that pointers held before release times were kept with them."""
    path = pointer_path(data_dir, year)
    try:
        raw = path.read_bytes()[:MAX_POINTER_BYTES + 1]
        if len(raw) > MAX_POINTER_BYTES:
            raise ValueError("quá lớn")
        text = raw.decode("utf-8").strip()
        if text.startswith("{"):
            doc = orjson.loads(text)
            snapshot_id = doc["snapshot"]
            at = doc.get("release_at")
            pointer = Pointer(snapshot_id, datetime.fromisoformat(at) if at else None)
        else:
            pointer = Pointer(text)
        if not isinstance(pointer.snapshot, str) or not _valid_id(pointer.snapshot) or (
                pointer.release_at is not None and pointer.release_at.tzinfo is None):
            raise ValueError("nội dung sai")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StoreError(f"con trỏ {path} không đọc được ({exc})") from exc
    return pointer


def active_ids(data_dir: Path) -> dict[int, str]:
    """Year → active snapshot id, for the years whose pointer is readable and whose
    snapshot exists (a few tiny files)."""
    out: dict[int, str] = {}
    for year in pointer_years(data_dir):
        try:
            snapshot_id = read_pointer(data_dir, year).snapshot
        except StoreError:
            continue
        if snapshot_path(data_dir, snapshot_id).is_file():
            out[year] = snapshot_id
    return out


KEEP = object()  # activate(): keep the release time the year's pointer has


def activate(data_dir: Path, snapshot_id: str,
             release_at: datetime | None | object = KEEP) -> SnapshotInfo:
    """Make a snapshot the one served for its year: one atomic rename of a pointer.

    The release time goes with the pointer; by default the year's current one is kept,
    so replacing a snapshot during the embargo does not publish it early.
    """
    info = get_snapshot(data_dir, snapshot_id)
    if release_at is KEEP:
        try:
            release_at = read_pointer(data_dir, info.year).release_at
        except StoreError:
            release_at = None
    pointer = Pointer(snapshot_id, release_at)  # type: ignore[arg-type]
    atomic_write(pointer_path(data_dir, info.year), pointer.dumps())
    return info


def _valid_id(snapshot_id: str) -> bool:
    """The one rule for a snapshot id (letters, digits, ``-_.``; never a path)."""
    return bool(snapshot_id) and len(snapshot_id) <= 100 and not snapshot_id.startswith(".") \
        and _ID_CHARS.issuperset(snapshot_id)


def envelope(info: SnapshotInfo, tail: Tail | None = None) -> Envelope:
    """The snapshot's own province table; the package's only for snapshots made before."""
    return Envelope(info.year, info.manifest.get("province_names") or provinces(info.year),
                    tail)


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
