"""From an SBD to response bytes: the LRU, single-flight misses, batched store reads.

Each served snapshot is a :class:`Served` with its own connection and caches, so a cache
can never mix two snapshots. :class:`Lookup` keeps one per exam year and swaps in a new
one when what the year's bodies depend on changes (its :class:`standing.Basis`: the
activation pointer of that year or the year before, a national distribution imported or
removed); the old one is closed after a grace period, once the requests that took it have
finished.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
import aiosqlite
from cachetools import LRUCache

from . import standing, store

log = logging.getLogger("diemthi.lookup")

GRACE_SECONDS = 30.0  # an old snapshot stays open this long after a switch


@dataclass
class Stats:
    """Counters the metrics module reads; plain ints keep the hot path cheap."""

    hits: int = 0
    misses: int = 0
    negative_hits: int = 0
    store_reads: int = 0  # round trips to SQLite
    store_keys: int = 0  # SBDs asked for in those round trips


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

    @classmethod
    async def open(cls, info: store.SnapshotInfo, built: standing.Standing | None = None,
                   **sizes: int | Stats | standing.Basis) -> "Served":
        """Serve ``info``; without ``built``, ranks count this snapshot alone."""
        if built is None:
            built = await asyncio.to_thread(standing.alone, info)
        db = await aiosqlite.connect(store.readonly_uri(info.path), uri=True)
        await db.execute("PRAGMA query_only=1")
        return cls(info, built, db, **sizes)  # type: ignore[arg-type]

    async def close(self) -> None:
        await self.db.close()

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
    """The snapshots served now, one per exam year, kept in step with the pointers."""

    data_dir: Path
    cache_size: int = 200_000
    negative_cache_size: int = 50_000
    batch_size: int = 256
    stats: Stats = field(default_factory=Stats)
    served: dict[int, Served] = field(default_factory=dict)
    _retiring: dict = field(default_factory=dict)  # old Served -> task closing it

    @property
    def ready(self) -> bool:
        return bool(self.served)

    @property
    def latest_year(self) -> int | None:
        return max(self.served) if self.served else None

    async def refresh(self) -> None:
        """Serve whatever the pointers name now; a bad snapshot never replaces a good one."""
        try:
            wanted = await asyncio.to_thread(standing.bases, self.data_dir)
        except OSError as exc:
            log.warning("cannot read active pointers: %s", exc)
            return
        for year, basis in wanted.items():
            current = self.served.get(year)
            if current is not None and current.basis == basis:
                continue
            try:
                info = await asyncio.to_thread(store.get_snapshot, self.data_dir, basis.snapshot)
                built = await asyncio.to_thread(standing.build, self.data_dir, basis)
                new = await Served.open(info, built, basis=basis, cache_size=self.cache_size,
                                        negative_size=self.negative_cache_size,
                                        batch_size=self.batch_size, stats=self.stats)
            except (store.StoreError, OSError, ValueError, aiosqlite.Error,
                    sqlite3.Error) as exc:
                log.error("cannot serve snapshot %s: %s", basis.snapshot, exc)
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
