"""From an SBD to response bytes: the LRU, single-flight misses, batched store reads.

Each served snapshot is a :class:`Served` with its own connection and caches, so a cache
can never mix two snapshots. :class:`Lookup` keeps one per exam year and swaps in a new
one when what the year's bodies depend on changes (its :class:`standing.Basis`: the
activation pointer of that year or the year before, a national distribution imported or
removed); the old one is closed when the last request that took it has finished (it
counts its users, as Datasette's ``Database.close`` waits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterator

import aiosqlite
from cachetools import LRUCache

from . import standing, store
from .release import Release, release_of

log = logging.getLogger("diemthi.lookup")


@dataclass
class Stats:
    """Counters the metrics module reads; plain ints keep the hot path cheap."""

    hits: int = 0
    misses: int = 0
    negative_hits: int = 0
    store_reads: int = 0  # round trips to SQLite
    store_keys: int = 0  # SBDs asked for in those round trips
    watch_errors: int = 0  # checks of the pointers that failed (the watcher goes on)


class Served:
    """One snapshot being served: connection, caches, and the batcher of misses."""

    def __init__(self, info: store.SnapshotInfo, built: standing.Standing,
                 db: aiosqlite.Connection, cache_size: int, negative_size: int, batch_size: int,
                 stats: Stats, basis: standing.Basis | None = None):
        self.id = info.id
        self.basis = basis
        self.rows = int(info.manifest["rows"])
        self.standing = built
        self.etag_prefix = f'"{built.tag}-'.encode()
        self.envelope = store.envelope(info, built)
        self.provinces = frozenset(code for code, count in  # codes with candidates
                                   (info.manifest.get("provinces") or {}).items() if count)
        self.db = db
        self.cache: LRUCache = LRUCache(maxsize=max(cache_size, 1))
        self.negative: LRUCache = LRUCache(maxsize=max(negative_size, 1))
        self.cache_enabled = cache_size > 0
        self.batch_size = batch_size
        self.stats = stats
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
    async def open(cls, info: store.SnapshotInfo, built: standing.Standing | None = None,
                   **sizes: int | Stats | standing.Basis) -> "Served":
        """Serve ``info``; without ``built``, ranks count this snapshot alone."""
        if built is None:
            built = await asyncio.to_thread(standing.alone, info)
        db = await aiosqlite.connect(store.readonly_uri(info.path), uri=True)
        await db.execute("PRAGMA query_only=1")
        return cls(info, built, db, **sizes)  # type: ignore[arg-type]

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

    def stats_etag(self, scope: str | None) -> bytes:
        return self.etag_prefix + b"stats-" + (scope or "all").encode() + b'"'

    async def get(self, sbd: str) -> bytes | None:
        """The candidate's body, or None when the snapshot has no such SBD."""
        body = self.cache.get(sbd)
        if body is not None:
            self.stats.hits += 1
            return body
        if sbd in self.negative:
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
                loop.create_task(self._flush())
        else:
            waiters.append(future)  # already on its way: no second read
        self._enter()  # a hit needs no count: it never awaits
        try:
            return await future
        finally:
            self._leave()

    async def _flush(self) -> None:
        """Send the misses queued so far to SQLite in one round trip; repeat while more
        arrived meanwhile. Misses that arrive together share a read."""
        try:
            await asyncio.sleep(0)  # let the other requests of this loop turn queue theirs
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
                    if self.cache_enabled:
                        if body is None:
                            self.negative[sbd] = True
                        else:
                            self.cache[sbd] = body
                    for future in self.waiting.pop(sbd):
                        if not future.done():
                            future.set_result(body)
        finally:
            self.flushing = False
            self._check_idle()

    async def _read(self, batch: list[str]) -> dict[str, bytes]:
        self.stats.store_reads += 1
        self.stats.store_keys += len(batch)
        marks = ",".join("?" * len(batch))
        rows = await self.db.execute_fetchall(  # SQLite formats the key, off the event loop
            f"SELECT printf('%08d', sbd), body FROM candidates WHERE sbd IN ({marks})",
            [int(s) for s in batch])
        body = self.envelope.body
        return {sbd: body(sbd, stored) for sbd, stored in rows}


@dataclass
class Lookup:
    """The snapshots served now, one per exam year, kept in step with the pointers.

    ``pointers`` is what staff activated; ``served`` what this process has open. They
    differ while a new snapshot cannot be opened (the old one of that year stays served,
    never another year's): :attr:`problems` says so, and ``/readyz`` with it.
    """

    data_dir: Path
    cache_size: int = 100_000
    negative_cache_size: int = 50_000
    batch_size: int = 256
    year: int | None = None  # the exam year answered without ?year=; None: latest pointer
    release_override: datetime | None = None  # serve --release-at: every year's release
    stats: Stats = field(default_factory=Stats)
    served: dict[int, Served] = field(default_factory=dict)
    pointers: dict[int, store.Pointer] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # what -> why, for /readyz
    _retired: set = field(default_factory=set)  # old Served not closed yet
    _releases: dict[int, Release] = field(default_factory=dict)  # per pointer, made once

    @property
    def ready(self) -> bool:
        return bool(self.served) and not self.problems

    @property
    def current_year(self) -> int | None:
        """The year answered without ``?year=``: the configured one, else the latest year
        staff activated (served or not: never fall back to an older year)."""
        if self.year is not None:
            return self.year
        return max(self.pointers) if self.pointers else None

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
        for year in await asyncio.to_thread(store.pointer_years, self.data_dir):
            try:
                pointers[year] = await asyncio.to_thread(store.read_pointer, self.data_dir, year)
            except store.StoreError as exc:
                errors[f"pointer {year}"] = str(exc)
                if year in self.pointers:
                    pointers[year] = self.pointers[year]  # keep what it said last
        bases = await asyncio.to_thread(standing.bases_for, self.data_dir,
                                        {y: p.snapshot for y, p in pointers.items()})
        for year, pointer in pointers.items():
            current, basis = self.served.get(year), bases[year]
            if current is not None and current.basis == basis:
                continue
            try:
                info = await asyncio.to_thread(store.get_snapshot, self.data_dir,
                                               pointer.snapshot)
                if info.year != year:
                    raise store.StoreError(f"{info.id} là của năm {info.year}")
                built = await asyncio.to_thread(standing.build, self.data_dir, basis)
                new = await Served.open(info, built, basis=basis, cache_size=self.cache_size,
                                        negative_size=self.negative_cache_size,
                                        batch_size=self.batch_size, stats=self.stats)
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
        self.pointers, self.errors = pointers, errors
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
