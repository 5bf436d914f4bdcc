"""From an SBD to response bytes: the LRU, point reads of resident snapshots, batched
store reads for the rest.

Each served snapshot is a :class:`Served` with its own connection; the LRUs are shared by
all snapshots of a :class:`Lookup` (one memory budget however many years are served) and
keyed by the snapshot, so a cache can never mix two snapshots. :class:`Lookup` keeps one
per exam year and swaps in a new one when the activation pointer changes; the old one is
closed after a grace period, once the requests that took it have finished.

Where each read goes, and why:

* A snapshot is immutable and, before it is swapped in, read through once so that its
  pages are in the page cache (:func:`prewarm`, in a thread). A miss on such a *resident*
  snapshot is a point read by integer primary key through a memory-mapped, immutable
  SQLite connection, done right on the event loop: it costs a few microseconds, less
  than handing the work to a thread and back.
* Everything else goes through aiosqlite, off the loop: a snapshot too big to keep in
  memory, one whose pages the kernel started dropping (major page faults seen), and
  any read that is not a point read. There misses queued in one loop turn share one
  ``WHERE sbd IN (...)`` round trip, and concurrent misses of one SBD share one read.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import resource
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import aiosqlite
from cachetools import LRUCache

from . import store

log = logging.getLogger("diemthi.lookup")

GRACE_SECONDS = 30.0  # an old snapshot stays open this long after a switch
FAULT_CHECK_EVERY = 4096  # on-loop reads between two looks at the major-fault counter
PREWARM_CHUNK = 1 << 20


@dataclass
class Stats:
    """Counters the metrics module reads; plain ints keep the hot path cheap."""

    hits: int = 0
    misses: int = 0
    negative_hits: int = 0
    store_reads: int = 0  # round trips to SQLite
    store_keys: int = 0  # SBDs asked for in those round trips
    loop_reads: int = 0  # of those round trips, point reads done on the event loop


@dataclass
class Caches:
    """The LRUs of finished bodies and of unknown SBDs, shared by the served snapshots."""

    size: int = 200_000
    negative_size: int = 50_000
    bodies: LRUCache = field(init=False)
    negative: LRUCache = field(init=False)

    def __post_init__(self) -> None:
        self.bodies = LRUCache(maxsize=max(self.size, 1))
        self.negative = LRUCache(maxsize=max(self.negative_size, 1))

    @property
    def enabled(self) -> bool:
        return self.size > 0


def available_memory() -> int:
    """Bytes the kernel could give without swapping (MemAvailable), or half the RAM."""
    try:
        with open("/proc/meminfo", "rb") as fh:
            for line in fh:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2


def prewarm(path: Path) -> bool:
    """Bring a snapshot file into the page cache by reading it through once; False (and
    nothing read) when it is more than half of the memory available: such a snapshot is
    served off the loop. Blocking: call it in a thread."""
    size = path.stat().st_size
    if size > available_memory() // 2:
        return False
    with open(path, "rb", buffering=0) as fh:
        os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_WILLNEED)
        try:  # the kernel reads it into /dev/null: no copy, the GIL released throughout
            with open(os.devnull, "wb") as sink:
                done = 0
                while done < size:
                    sent = os.sendfile(sink.fileno(), fh.fileno(), done, size - done)
                    if not sent:
                        break
                    done += sent
        except OSError:  # no sendfile to /dev/null here: read it ourselves
            buffer = bytearray(PREWARM_CHUNK)
            fh.seek(0)
            while fh.readinto(buffer):
                pass
    return True


def major_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_majflt


class Served:
    """One snapshot being served: its connections, and the batcher of off-loop misses."""

    _slots = itertools.count()

    def __init__(self, info: store.SnapshotInfo, caches: Caches, batch_size: int,
                 stats: Stats, point: sqlite3.Connection | None):
        self.id = info.id
        self.info = info
        self.rows = int(info.manifest["rows"])
        self.etag_prefix = f'"{info.id}-'.encode()
        self.envelope = store.envelope(info)
        self.slot = next(self._slots)  # the cache key's half that says which snapshot
        self.caches = caches
        self.batch_size = batch_size
        self.stats = stats
        # Resident: point reads on the loop through this connection (see the module doc).
        self.point = point
        self.faults = major_faults()
        self.until_check = FAULT_CHECK_EVERY
        self.db: aiosqlite.Connection | None = None  # the off-loop path, opened when needed
        self.rewarming: asyncio.Task | None = None
        self.closed = False
        # single flight: the waiters of each SBD being read (each its own future, so a
        # cancelled request cannot cancel the others' answer)
        self.waiting: dict[str, list[asyncio.Future]] = {}
        self.queue: list[str] = []
        self.flushing = False

    @classmethod
    async def open(cls, info: store.SnapshotInfo, caches: Caches, batch_size: int = 256,
                   stats: Stats | None = None, resident: bool = True) -> "Served":
        """Open a snapshot ready to serve: prewarmed first (off the loop) when it fits in
        memory, so that its first requests are as fast as the rest. ``resident=False``
        keeps every read off the loop."""
        point = await asyncio.to_thread(_open_point, info.path) if resident else None
        served = cls(info, caches, batch_size, stats or Stats(), point)
        if point is None:
            await served._open_db()
        return served

    async def _open_db(self) -> aiosqlite.Connection:
        if self.closed:  # never a new connection (and its thread) for a closed snapshot
            raise sqlite3.ProgrammingError(f"snapshot {self.id} is closed")
        if self.db is None:
            self.db = await aiosqlite.connect(store.readonly_uri(self.info.path), uri=True)
            await self.db.execute("PRAGMA query_only=1")
        return self.db

    async def close(self) -> None:
        self.closed = True
        if self.rewarming is not None:
            self.rewarming.cancel()
        if self.point is not None:
            self.point.close()
            self.point = None
        if self.db is not None:
            await self.db.close()

    def etag(self, sbd: str) -> bytes:
        return self.etag_prefix + sbd.encode() + b'"'

    async def get(self, sbd: str) -> bytes | None:
        """The candidate's body, or None when the snapshot has no such SBD."""
        key = (self.slot, sbd)
        caches = self.caches
        body = caches.bodies.get(key)
        if body is not None:
            self.stats.hits += 1
            return body
        if key in caches.negative:
            self.stats.negative_hits += 1
            return None
        self.stats.misses += 1
        if self.point is not None:  # resident: read here, on the loop (module doc)
            body = self._read_here(sbd)
            if caches.enabled:
                if body is None:
                    caches.negative[key] = True
                else:
                    caches.bodies[key] = body
            return body
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        waiters = self.waiting.get(sbd)
        if waiters is None:
            self.waiting[sbd] = [future]
            self.queue.append(sbd)
            if not self.flushing:
                self.flushing = True
                loop.create_task(self._flush())
        else:
            waiters.append(future)  # already on its way: no second read
        return await future

    def _read_here(self, sbd: str) -> bytes | None:
        """A point read of a resident snapshot: microseconds, no await."""
        stats = self.stats
        stats.store_reads += 1
        stats.store_keys += 1
        stats.loop_reads += 1
        row = self.point.execute(  # type: ignore[union-attr]
            "SELECT body FROM candidates WHERE sbd = ?", (int(sbd),)).fetchone()
        self.until_check -= 1
        if not self.until_check:
            self._check_resident()
        return self.envelope.body(sbd, row[0]) if row is not None else None

    def _check_resident(self) -> None:
        """The kernel may drop pages of a mapped file under memory pressure; a read that
        then waits for the disk must not stall the loop. Major faults since the last
        look send this snapshot's reads off the loop until it is read through again."""
        self.until_check = FAULT_CHECK_EVERY
        faults = major_faults()
        if faults == self.faults or self.rewarming is not None:
            self.faults = faults
            return
        log.warning("snapshot %s: %d major page faults; reading off the loop while it is "
                    "brought back into memory", self.id, faults - self.faults)
        point, self.point = self.point, None
        self.rewarming = asyncio.get_running_loop().create_task(self._rewarm(point))

    async def _rewarm(self, point: sqlite3.Connection | None) -> None:
        try:
            await self._open_db()
            if await asyncio.to_thread(prewarm, self.info.path):
                self.faults = major_faults()
                self.point = point
                return
            if point is not None:
                point.close()
        finally:
            self.rewarming = None

    async def _flush(self) -> None:
        """Send the misses queued so far to SQLite in one round trip; repeat while more
        arrived meanwhile. Misses that arrive together share a read."""
        try:
            await asyncio.sleep(0)  # let the other requests of this loop turn queue theirs
            caches = self.caches
            while self.queue:
                batch, self.queue = self.queue[:self.batch_size], self.queue[self.batch_size:]
                try:
                    found = await self._read(batch)
                except Exception as exc:  # noqa: BLE001 - every waiter must hear of it
                    for sbd in batch:
                        for future in self.waiting.pop(sbd, ()):
                            if not future.done():
                                future.set_exception(exc)
                    continue
                for sbd in batch:
                    body = found.get(sbd)
                    if caches.enabled:
                        if body is None:
                            caches.negative[(self.slot, sbd)] = True
                        else:
                            caches.bodies[(self.slot, sbd)] = body
                    for future in self.waiting.pop(sbd):
                        if not future.done():
                            future.set_result(body)
        finally:
            self.flushing = False

    async def _read(self, batch: list[str]) -> dict[str, bytes]:
        """Off the loop: a snapshot not (or no longer) resident, so a read may wait for
        the disk."""
        self.stats.store_reads += 1
        self.stats.store_keys += len(batch)
        marks = ",".join("?" * len(batch))
        db = await self._open_db()
        rows = await db.execute_fetchall(  # SQLite formats the key, off the event loop
            f"SELECT printf('%08d', sbd), body FROM candidates WHERE sbd IN ({marks})",
            [int(s) for s in batch])
        body = self.envelope.body
        return {sbd: body(sbd, stored) for sbd, stored in rows}


def _open_point(path: Path) -> sqlite3.Connection | None:
    """Prewarm, then the connection for on-loop point reads: immutable (no locks, no
    journal checks) and memory-mapped over the whole file (a read is a few memory loads,
    no system call). None when the file does not fit in memory."""
    if not prewarm(path):
        log.warning("%s is too big to keep in memory: its reads go off the loop", path.name)
        return None
    db = store.connect_readonly(path)
    db.execute(f"PRAGMA mmap_size={path.stat().st_size + PREWARM_CHUNK}")
    db.execute("PRAGMA query_only=1")
    return db


@dataclass
class Lookup:
    """The snapshots served now, one per exam year, kept in step with the pointers."""

    data_dir: Path
    cache_size: int = 200_000
    negative_cache_size: int = 50_000
    batch_size: int = 256
    stats: Stats = field(default_factory=Stats)
    served: dict[int, Served] = field(default_factory=dict)
    _retiring: dict = field(default_factory=dict)  # old Served -> task closing it
    caches: Caches = field(init=False)

    def __post_init__(self) -> None:
        self.caches = Caches(self.cache_size, self.negative_cache_size)

    @property
    def ready(self) -> bool:
        return bool(self.served)

    @property
    def latest_year(self) -> int | None:
        return max(self.served) if self.served else None

    async def refresh(self) -> None:
        """Serve whatever the pointers name now; a bad snapshot never replaces a good one."""
        try:
            wanted = await asyncio.to_thread(store.active_ids, self.data_dir)
        except OSError as exc:
            log.warning("cannot read active pointers: %s", exc)
            return
        for year, snapshot_id in wanted.items():
            current = self.served.get(year)
            if current is not None and current.id == snapshot_id:
                continue
            try:
                info = await asyncio.to_thread(store.get_snapshot, self.data_dir, snapshot_id)
                new = await Served.open(info, self.caches, batch_size=self.batch_size,
                                        stats=self.stats)
            except (store.StoreError, OSError, aiosqlite.Error) as exc:
                log.error("cannot serve snapshot %s: %s", snapshot_id, exc)
                continue
            self.served = {**self.served, year: new}  # one assignment: readers see old or new
            log.info("serving %s for %d (%d candidates)", new.id, year, new.rows)
            if current is not None:
                self._retiring[current] = asyncio.get_running_loop().create_task(
                    self._retire(current))

    async def _retire(self, old: Served, grace: float = GRACE_SECONDS) -> None:
        await asyncio.sleep(grace)  # requests that took the old snapshot finish first
        await old.close()
        self._retiring.pop(old, None)

    async def watch(self, interval: float) -> None:
        """Follow the pointers for as long as the server runs."""
        while True:
            await asyncio.sleep(interval)
            await self.refresh()

    async def close(self) -> None:
        for old, task in list(self._retiring.items()):
            task.cancel()
            await old.close()
        self._retiring.clear()
        for served in self.served.values():
            await served.close()
        self.served = {}
