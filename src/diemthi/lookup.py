"""From an SBD to response bytes: the LRU, point reads of resident snapshots, batched
store reads for the rest.

Each served snapshot is a :class:`Served` with its own connection; the LRUs are shared by
all snapshots of a :class:`Lookup` (one memory budget however many years are served) and
keyed by the snapshot, so a cache can never mix two snapshots. :class:`Lookup` keeps one
per exam year and swaps in a new one when what the year's bodies depend on changes (its
:class:`standing.Basis`: the activation pointer of that year or the year before, a
national distribution imported or removed); the old one is closed when the last request
that took it has finished (it counts its users, as Datasette's ``Database.close`` waits).

Where each read goes, and why:

* A snapshot is immutable and, before it is swapped in, read through once so that its
  pages are in the page cache (:func:`prewarm`, in a thread). A miss on such a *resident*
  snapshot is a point read by integer primary key through a memory-mapped, immutable
  SQLite connection, done right on the event loop: it costs a few microseconds, less
  than handing the work to a thread and back.
* Everything else goes through aiosqlite, off the loop: a snapshot too big to keep in
  memory, one whose pages the kernel started dropping (major page faults seen), and
  any read that is not a point read.

Either way the misses of one loop turn are queued and read together, each SBD once
however many ask for it: off the loop in one ``WHERE sbd IN (...)`` round trip; on the
loop as point reads back to back, then their bodies. Back to back matters more than it
looks: between two requests the CPU runs the kernel's network code, the HTTP parser and
the event loop, which push SQLite's code and the rank tables out of its caches; read
one at a time, a cold lookup cost about 1.5x as much server time in the benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import os
import resource
import sqlite3
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterator

import aiosqlite
from cachetools import LRUCache

from . import standing, store
from .release import Release, release_of

log = logging.getLogger("diemthi.lookup")

FAULT_CHECK_EVERY = 4096  # on-loop reads between two looks at the major-fault counter
PREWARM_CHUNK = 1 << 20
DOORKEEPER_SLOTS = 1 << 22  # 4 MiB; see Caches.admit
BUILD_SWITCH_INTERVAL = 0.0005  # seconds; see built_beside_the_loop
POINT_READ = "SELECT body FROM candidates WHERE sbd = ?"


@dataclass
class Stats:
    """Counters the metrics module reads; plain ints keep the hot path cheap."""

    hits: int = 0
    misses: int = 0
    negative_hits: int = 0
    store_reads: int = 0  # round trips to SQLite
    store_keys: int = 0  # SBDs asked for in those round trips
    loop_reads: int = 0  # of those round trips, point reads done on the event loop
    watch_errors: int = 0  # checks of the pointers that failed (the watcher goes on)


@dataclass
class Caches:
    """The LRUs of finished bodies and of unknown SBDs, shared by the served snapshots,
    and the doorkeeper that decides what a point read may put into them."""

    size: int = 60_000
    negative_size: int = 50_000
    bodies: LRUCache = field(init=False)
    negative: LRUCache = field(init=False)
    seen: bytearray = field(init=False)  # the doorkeeper: one byte per hash slot
    marked: int = 0
    due: list = field(init=False)  # resident snapshots with misses to read this loop turn

    def __post_init__(self) -> None:
        self.bodies = LRUCache(maxsize=max(self.size, 1))
        self.negative = LRUCache(maxsize=max(self.negative_size, 1))
        self.seen = bytearray(DOORKEEPER_SLOTS)
        self.due = []

    def read_soon(self, served: "Served") -> None:
        """Read ``served``'s queued misses at the end of this loop turn, with those of
        every other resident snapshot sharing these caches (module doc: back to back,
        whichever year each asks for)."""
        self.due.append(served)
        if len(self.due) == 1:
            asyncio.get_running_loop().call_soon(self._read_due)

    def _read_due(self) -> None:
        due, self.due = self.due, []
        # all point reads first, then all bodies: each kind of work back to back
        read = [(served, served._read_queued()) for served in due]
        for served, found in read:
            served._deliver_queued(found)

    @property
    def enabled(self) -> bool:
        return self.size > 0

    def admit(self, key: tuple) -> bool:
        """Whether an answer read just now goes into an LRU: only when its key was read
        before, lately (TinyLFU's doorkeeper).

        A point read of a resident snapshot costs about what an LRU insert and its
        eviction cost, so caching an SBD asked once buys nothing and pushes out one that
        is asked again and again; a crawler walking every SBD then leaves the hot set in
        place. A student who comes back is cached from the second read, if it comes
        within the next ~500,000 first reads: the slots are forgotten once an eighth are
        set, so that a false "seen before" stays under one in eight.
        """
        slot = hash(key) & (DOORKEEPER_SLOTS - 1)
        if self.seen[slot]:
            return True
        self.seen[slot] = 1
        self.marked += 1
        if self.marked >= DOORKEEPER_SLOTS // 8:
            self.seen[:] = bytes(DOORKEEPER_SLOTS)
            self.marked = 0
        return False


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
    """One snapshot being served: its connections, its standing (ranks, phổ điểm), the
    batcher of off-loop misses, and how many requests use it now."""

    _slots = itertools.count()

    def __init__(self, info: store.SnapshotInfo, built: standing.Standing, caches: Caches,
                 batch_size: int, stats: Stats, point: sqlite3.Connection | None,
                 basis: standing.Basis | None = None):
        self.id = info.id
        self.info = info
        self.basis = basis
        self.rows = int(info.manifest["rows"])
        self.standing = built
        self.etag_prefix = f'"{built.tag}-'.encode()
        self.envelope = store.envelope(info, built)
        self.provinces = frozenset(code for code, count in  # codes with candidates
                                   (info.manifest.get("provinces") or {}).items() if count)
        self.slot = next(self._slots)  # the cache key's half that says which snapshot
        self.caches = caches
        self.batch_size = batch_size
        self.stats = stats
        # Resident: point reads on the loop through this connection (see the module doc).
        self.point = point
        self.cursor = point.cursor() if point is not None else None
        self.faults = major_faults()
        self.until_check = FAULT_CHECK_EVERY
        self.db: aiosqlite.Connection | None = None  # the off-loop path, opened when needed
        self.rewarming: asyncio.Task | None = None
        # single flight: the waiters of each SBD being read (each its own future, so a
        # cancelled request cannot cancel the others' answer)
        self.waiting: dict[str, list[asyncio.Future]] = {}
        self.queue: list[str] = []
        self.flushing = False
        # lifecycle: requests using this snapshot now; once retired, closed when none are
        self.users = 0
        self.retired = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing: asyncio.Task | None = None

    @classmethod
    async def open(cls, info: store.SnapshotInfo, caches: Caches | None = None,
                   built: standing.Standing | None = None, batch_size: int = 256,
                   stats: Stats | None = None, resident: bool = True,
                   basis: standing.Basis | None = None) -> "Served":
        """Open a snapshot ready to serve: prewarmed first (off the loop) when it fits in
        memory, so that its first requests are as fast as the rest. ``resident=False``
        keeps every read off the loop; without ``built``, ranks count this snapshot alone."""
        if built is None:
            built = await asyncio.to_thread(standing.alone, info)
        point = await asyncio.to_thread(_open_point, info.path) if resident else None
        served = cls(info, built, caches or Caches(), batch_size, stats or Stats(), point,
                     basis)
        if point is None:
            await served._open_db()
        return served

    async def _open_db(self) -> aiosqlite.Connection:
        if self.db is None:
            if self._closing is not None:  # never a new connection (and its thread) then
                raise store.StoreError(f"snapshot {self.id} is closed")
            self.db = await aiosqlite.connect(store.readonly_uri(self.info.path), uri=True)
            await self.db.execute("PRAGMA query_only=1")
        return self.db

    @property
    def closed(self) -> bool:
        return self._closing is not None and self._closing.done()

    @contextlib.contextmanager
    def hold(self) -> Iterator["Served"]:
        """Keep the snapshot open across several awaits (e.g. a message with three SBDs)."""
        self._enter()
        try:
            yield self
        finally:
            self._leave()

    def _enter(self) -> None:
        self.users += 1
        self._idle.clear()

    def _leave(self) -> None:
        self.users -= 1
        self._check_idle()

    def _check_idle(self) -> None:
        if not self.users and not self.flushing:
            self._idle.set()
            if self.retired:
                self._start_close()

    def retire(self) -> None:
        """No new request will take this snapshot: close it once the last one is done."""
        self.retired = True
        self._check_idle()

    def _start_close(self) -> asyncio.Task:
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close())
        return self._closing

    async def _close(self) -> None:
        await self._idle.wait()  # pending reads and their waiters first
        if self.rewarming is not None:
            self.rewarming.cancel()
        if self.point is not None:
            self.point.close()
            self.point = None
        if self.db is not None:
            await self.db.close()
        log.info("closed snapshot %s", self.id)

    async def close(self) -> None:
        """Close once pending work is done; idempotent, every caller waits for the same."""
        await asyncio.shield(self._start_close())

    def etag(self, sbd: str) -> bytes:
        return self.etag_prefix + sbd.encode() + b'"'

    def stats_document(self, scope: str | None) -> dict | None:
        """What ``GET /v1/stats/{year}[/{scope}]`` answers, as a new dict: scope None (the
        whole year), a province code, or ``"national"``; None if unknown."""
        return self.standing.stats_document(scope)

    def stats_body(self, scope: str | None) -> bytes | None:
        """The same document as ready JSON bytes."""
        return self.standing.stats_body(scope)

    def has_stats(self, scope: str | None) -> bool:
        """Whether there is such a document (nothing unpacked to tell)."""
        return self.standing.has_stats(scope)

    def stats_etag(self, scope: str | None) -> bytes:
        return self.etag_prefix + b"stats-" + (scope or "all").encode() + b'"'

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
        if self._closing is not None:
            raise store.StoreError(f"snapshot {self.id} is closed")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        waiters = self.waiting.get(sbd)
        if waiters is None:
            self.waiting[sbd] = [future]
            self.queue.append(sbd)
            if not self.flushing:
                self.flushing = True
                self._idle.clear()
                if self.point is not None:  # resident: on the loop (module doc)
                    self.caches.read_soon(self)
                else:
                    loop.create_task(self._flush())
        else:
            waiters.append(future)  # already on its way: no second read
        self._enter()  # only a miss awaits: a hit never does
        try:
            return await future
        finally:
            self._leave()

    def _read_queued(self) -> tuple[list[str], list[bytes | None] | BaseException]:
        """Phase one of :meth:`Caches._read_due`: the stored rows of every queued miss
        (or what went wrong)."""
        batch, self.queue = self.queue, []
        if self.point is None:  # stopped being resident since: nothing read here
            return batch, []
        try:
            return batch, self._read_rows(batch)
        except Exception as exc:  # noqa: BLE001 - every waiter must hear of it
            return batch, exc

    def _deliver_queued(self, read: tuple[list[str], list[bytes | None] | BaseException]
                        ) -> None:
        """Phase two: their bodies to their waiters and the caches; a snapshot that
        stopped being resident reads them off the loop instead."""
        batch, rows = read
        if isinstance(rows, BaseException):
            self._fail(batch, rows)
        elif len(rows) != len(batch):
            self.queue = batch + self.queue
            asyncio.get_running_loop().create_task(self._flush())
            return
        else:
            try:
                self._deliver(batch, self._bodies(
                    [(sbd, stored) for sbd, stored in zip(batch, rows) if stored is not None]),
                    here=True)
            except Exception as exc:  # noqa: BLE001 - a waiter left waiting stalls the snapshot
                log.exception("misses of %s failed", self.id)
                self._fail(batch, exc)
        self.flushing = False
        self._check_idle()

    def _read_rows(self, batch: list[str]) -> list[bytes | None]:
        """Point reads of a resident snapshot, back to back (module doc): microseconds
        each, no await."""
        stats = self.stats
        stats.store_reads += len(batch)
        stats.store_keys += len(batch)
        stats.loop_reads += len(batch)
        cursor, found = self.cursor, []
        for sbd in batch:
            stored = None
            try:
                # one cursor for every point read (none made per read); read to the end,
                # so that the statement is reset at once
                for (stored,) in cursor.execute(POINT_READ, (int(sbd),)):  # type: ignore[union-attr]
                    pass
            except sqlite3.Error as exc:  # a bad page under one SBD fails that SBD alone
                log.error("reading %s in %s: %s", sbd, self.id, exc)
                self._fail([sbd], exc)  # its waiters told: _deliver skips it
            found.append(stored)
        self.until_check -= len(batch)
        if self.until_check <= 0:
            self._check_resident()
        return found

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
                self.cursor = point.cursor() if point is not None else None
                return
            if point is not None:
                point.close()
        finally:
            self.rewarming = None

    async def _flush(self) -> None:
        """Off the loop: the misses queued so far in one round trip (module doc); repeat
        while more arrived meanwhile."""
        try:
            await asyncio.sleep(0)  # let the other requests of this loop turn queue theirs
            while self.queue:
                batch, self.queue = self.queue[:self.batch_size], self.queue[self.batch_size:]
                try:
                    found = await self._read(batch)
                except Exception as exc:  # noqa: BLE001 - every waiter must hear of it
                    self._fail(batch, exc)
                    continue
                self._deliver(batch, found, here=False)
        finally:
            self.flushing = False
            self._check_idle()

    def _fail(self, batch: list[str], exc: BaseException) -> None:
        for sbd in batch:
            for future in self.waiting.pop(sbd, ()):
                if not future.done():
                    future.set_exception(exc)

    def _bodies(self, rows: list[tuple[str, bytes]]) -> dict[str, bytes]:
        """The body of each stored row. A row whose body cannot be made (edited after
        import: a score its snapshot never counted) fails its own requests only, not the
        others read with it, and is not cached: asked again, it is read again."""
        body = self.envelope.body
        try:
            return {sbd: body(sbd, stored) for sbd, stored in rows}
        except Exception:  # noqa: BLE001 - rare: find the row, fail it alone
            found = {}
            for sbd, stored in rows:
                try:
                    found[sbd] = body(sbd, stored)
                except Exception as exc:  # noqa: BLE001 - its requests answer 500
                    log.exception("the body of %s in %s", sbd, self.id)
                    self._fail([sbd], exc)
            return found

    def _deliver(self, batch: list[str], found: dict[str, bytes], here: bool) -> None:
        """Each SBD's body (None: no such candidate) to its waiters and the caches; one
        whose requests were already failed (:meth:`_bodies`) is skipped. A read on the
        loop is cheap: caching what was asked once would push out what is asked again and
        again (:meth:`Caches.admit`). One off the loop is not."""
        caches, waiting = self.caches, self.waiting
        for sbd in batch:
            futures = waiting.pop(sbd, None)
            if futures is None:
                continue
            body, key = found.get(sbd), (self.slot, sbd)
            for future in futures:  # answered first: nothing below can leave them waiting
                if not future.done():
                    future.set_result(body)
            if caches.enabled and (not here or caches.admit(key)):
                if body is None:
                    caches.negative[key] = True
                else:
                    caches.bodies[key] = body

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
        return self._bodies(rows)


@contextlib.contextmanager
def built_beside_the_loop() -> Iterator[None]:
    """While a new snapshot's standing is built in a thread, the loop is not kept waiting
    for it, which a swap under load would show in the requests' p99:

    * the GIL is handed back to the loop every 0.5 ms instead of every 5 ms (Python's
      default switch interval);
    * the cyclic garbage collector is off: the build's many short-lived objects would
      set off full collections, each holding the GIL 10-15 ms in the builder's thread.
      Nothing it builds is a cycle; what it leaves behind is freed by reference counts.

    Both are set for the process, so kept to the build."""
    before, collecting = sys.getswitchinterval(), gc.isenabled()
    sys.setswitchinterval(min(before, BUILD_SWITCH_INTERVAL))
    gc.disable()
    try:
        yield
    finally:
        sys.setswitchinterval(before)
        if collecting:
            gc.enable()


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
    # Counting walks every page of the table through this mapping, so each is mapped
    # into the process now (a minor fault apiece, here in a thread) rather than at the
    # first request that lands on it, on the loop.
    db.execute("SELECT count(*) FROM candidates").fetchone()
    return db


@dataclass
class Lookup:
    """The snapshots served now, one per exam year, kept in step with the pointers.

    ``pointers`` is what staff activated; ``served`` what this process has open. They
    differ while a new snapshot cannot be opened (the old one of that year stays served,
    never another year's): :attr:`problems` says so, and ``/readyz`` with it.
    """

    data_dir: Path
    cache_size: int = 60_000
    negative_cache_size: int = 50_000
    batch_size: int = 256
    year: int | None = None  # the exam year answered without ?year=; None: latest pointer
    release_override: datetime | None = None  # serve --release-at: every year's release
    stats: Stats = field(default_factory=Stats)
    served: dict[int, Served] = field(default_factory=dict)
    pointers: dict[int, store.Pointer] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # what -> why, for /readyz
    pointed: frozenset = frozenset()  # years with a pointer file, readable or not
    _current: int | None = None  # current_year, worked out at each refresh (the hot path)
    _retired: set = field(default_factory=set)  # old Served not closed yet
    _releases: dict[int, Release] = field(default_factory=dict)  # per pointer, made once
    caches: Caches = field(init=False)

    def __post_init__(self) -> None:
        self.caches = Caches(self.cache_size, self.negative_cache_size)
        self._current = self.year  # until the first refresh

    @property
    def ready(self) -> bool:
        return bool(self.served) and not self.problems

    @property
    def current_year(self) -> int | None:
        """The year answered without ``?year=``: the configured one, else the latest year
        staff activated, served or not, its pointer readable or not (store.current_year:
        never an older year in its place)."""
        return self._current

    latest_year = current_year  # the name callers used before the year was explicit

    def release(self, year: int) -> Release:
        """Is ``year`` published now, and when: the one rule (see :mod:`diemthi.release`)."""
        known = self._releases.get(year)
        if known is not None:
            return known
        pointer = self.pointers.get(year)
        return release_of(year, pointer.release_at if pointer else None,
                          self.release_override)

    @property
    def problems(self) -> list[str]:
        """Why this process is not serving exactly what staff activated (empty: it is)."""
        out = list(self.errors.values())
        year = self.current_year
        if year is None and not self.errors:
            out.append(f"chưa có năm nào được kích hoạt trong {self.data_dir}")
        elif year is not None and year not in self.pointers:
            out.append(f"năm {year} chưa có bản chụp được kích hoạt")
        for y, pointer in sorted(self.pointers.items()):
            served = self.served.get(y)
            if served is None or served.id != pointer.snapshot:
                out.append(f"năm {y}: đang phục vụ "
                           f"{served.id if served else 'không gì'}, kích hoạt là "
                           f"{pointer.snapshot}")
        return out

    async def refresh(self) -> None:
        """Serve whatever the pointers name now; a bad snapshot never replaces a good one.

        Never raises (the watcher and the startup must outlive anything on disk): what
        goes wrong is logged, counted in ``stats.watch_errors`` and listed in problems.
        """
        try:
            await self._follow_pointers()
        except Exception as exc:  # noqa: BLE001 - see above
            self.stats.watch_errors += 1
            self.errors = {**self.errors, "watch": f"kiểm tra con trỏ thất bại: {exc!r}"}
            log.exception("checking the active pointers failed; trying again")

    async def _follow_pointers(self) -> None:
        errors: dict[str, str] = {}
        if not await asyncio.to_thread(self.data_dir.is_dir):
            errors["data_dir"] = f"thư mục dữ liệu {self.data_dir} không tồn tại"
            if "data_dir" not in self.errors:
                log.error("the data dir %s does not exist: nothing to serve",
                          self.data_dir.resolve())
            self.errors = errors
            return
        pointers: dict[int, store.Pointer] = {}
        pointed = await asyncio.to_thread(store.pointer_years, self.data_dir)
        for year in pointed:
            try:
                pointers[year] = await asyncio.to_thread(store.read_pointer, self.data_dir, year)
            except store.StoreError as exc:
                errors[f"pointer {year}"] = str(exc)
                if f"pointer {year}" not in self.errors:
                    log.error("the active pointer of %d cannot be read: %s", year, exc)
                if year in self.pointers:
                    pointers[year] = self.pointers[year]  # keep what it said last
        asked = store.current_year(self.year, pointed)
        bases = await asyncio.to_thread(standing.bases_for, self.data_dir,
                                        {y: p.snapshot for y, p in pointers.items()})
        for year, pointer in pointers.items():
            current, basis = self.served.get(year), bases[year]
            if current is not None and current.basis == basis \
                    and current.standing.ready == (year == asked):
                continue  # a new year asked without ?year=: last one's ranks go compact
            try:
                info = await asyncio.to_thread(store.get_snapshot, self.data_dir,
                                               pointer.snapshot)
                if info.year != year:
                    raise store.StoreError(f"{info.id} là của năm {info.year}")
                # the year asked without ?year= (results day's) gets its rank fragments
                # written out; older years keep them compact (Standing's doc)
                with built_beside_the_loop():
                    built = await asyncio.to_thread(standing.build, self.data_dir, basis,
                                                    year == asked)
                    new = await Served.open(info, self.caches, built,
                                            batch_size=self.batch_size, stats=self.stats,
                                            basis=basis)
            except Exception as exc:  # noqa: BLE001 - whatever it is, keep serving the rest
                errors[f"snapshot {year}"] = f"không mở được {pointer.snapshot}: {exc}"
                if f"snapshot {year}" not in self.errors:
                    log.error("cannot serve snapshot %s for %d: %s", pointer.snapshot, year, exc)
                continue
            self.served = {**self.served, year: new}  # one assignment: readers see old or new
            log.info("serving %s for %d (%d candidates)", new.id, year, new.rows)
            if current is not None:
                self._retire(current)
        for year in set(self.served) - set(pointers):  # pointer removed: stop serving it
            old = self.served[year]
            self.served = {y: s for y, s in self.served.items() if y != year}
            self._retire(old)
        self.pointers, self.errors, self.pointed = pointers, errors, frozenset(pointed)
        self._current = asked  # every year of pointers has a pointer file: among pointed
        self._releases = {year: release_of(year, pointer.release_at, self.release_override)
                          for year, pointer in pointers.items()}
        if errors:
            self.stats.watch_errors += 1

    def _retire(self, old: Served) -> None:
        self._retired = {s for s in self._retired if not s.closed}
        self._retired.add(old)
        old.retire()

    async def watch(self, interval: float) -> None:
        """Follow the pointers for as long as the server runs, whatever goes wrong."""
        while True:
            await asyncio.sleep(interval)
            await self.refresh()

    async def close(self) -> None:
        """At shutdown: every snapshot, once its pending reads are done."""
        everything = [*self._retired, *self.served.values()]
        self.served = {}
        await asyncio.gather(*(s.close() for s in everything))
        self._retired.clear()
