"""Prometheus metrics: one registry per app, and a plain ASGI middleware that counts.

The middleware is raw ASGI (not BaseHTTPMiddleware) and counts into plain dicts, so
counting costs well under a microsecond per request.

With ``--workers N`` a scrape lands on one worker, yet must show all of them: ``diemthi
serve`` gives the workers one private directory (``Settings.metrics_dir``, also
``PROMETHEUS_MULTIPROC_DIR``). Counters made with :meth:`Metrics.counter` live there in
prometheus_client's multiprocess files; the plain figures are written there by each worker
once a second (:class:`SharedFigures`), and by the answering worker just before it
answers. A scrape sums every file; a worker's file only grows, and the files of workers
that died stay until the server stops, so no counter goes backwards between scrapes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from bisect import bisect_left
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import orjson
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                   HistogramMetricFamily)
from prometheus_client.multiprocess import MultiProcessCollector

from . import store
from .files import atomic_write

if TYPE_CHECKING:
    from .lookup import Lookup

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def route_of(path: str) -> str:
    """A bounded set of route labels, whatever paths clients send."""
    if path.startswith("/v1/scores/"):
        return "/v1/scores/{sbd}"
    if path.startswith("/v1/stats/"):
        return "/v1/stats/{year}" if path.count("/") == 3 else "/v1/stats/{year}/{scope}"
    if path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/zalo/webhook"):
        return path
    if path.startswith("/tra-cuu/"):  # the pages (issue 10)
        return "/tra-cuu/{sbd}"
    if path in ("/", "/tra-cuu", "/pho-diem"):
        return path
    if path.startswith("/static/"):
        return "/static/{name}"
    return "other"


class Metrics:
    """Request counts and latencies kept in plain ints and lists (no locks, no label
    lookups on the hot path; one event loop per process), exported when scraped."""

    def __init__(self, lookup: "Lookup", shared_dir: Path | None = None):
        self.registry = CollectorRegistry()
        self.lookup = lookup
        self.counts: dict[tuple[str, int], int] = {}
        self.buckets: dict[str, list[int]] = {}  # route -> count per LATENCY_BUCKETS slot
        self.sums: dict[str, float] = {}
        self.registry.register(_RequestCollector(self))
        self.registry.register(_LookupCollector(lookup))
        self.shared = SharedFigures(shared_dir, self) if shared_dir is not None else None
        self.extra: list[Any] = []  # collectors others registered (read from shared files)

    def counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        """A counter in this app's registry (other modules, e.g. the chatbot, add theirs)."""
        return Counter(name, doc, list(labels), registry=self.registry)

    def register(self, collector: Any) -> None:
        """A collector read when scraped (e.g. the chatbot's figures from its store); it
        must read what every worker shares, as it is asked once per scrape."""
        self.registry.register(collector)
        self.extra.append(collector)

    def observe(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        slots = self.buckets.get(route)
        if slots is None:
            slots = self.buckets[route] = [0] * (len(LATENCY_BUCKETS) + 1)
            self.sums[route] = 0.0
        slots[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.sums[route] += seconds

    def render(self) -> bytes:
        if self.shared is None:
            return generate_latest(self.registry)
        return self.shared.render()

    def figures(self) -> dict[str, Any]:
        """This process's plain figures, as one worker's share of a scrape."""
        s = self.lookup.stats
        return {"requests": [[route, status, n] for (route, status), n in self.counts.items()],
                "buckets": self.buckets, "sums": self.sums,
                "lookup": {key: getattr(s, key) for key, _, _ in _LOOKUP_COUNTERS}}


def _request_families(counts: dict, buckets: dict, sums: dict) -> Any:
    requests = CounterMetricFamily("diemthi_http_requests", "HTTP requests by route and "
                                   "status", labels=["route", "status"])
    for (route, status), count in sorted(counts.items()):
        requests.add_metric([route, str(status)], count)
    yield requests
    latency = HistogramMetricFamily("diemthi_http_request_duration_seconds",
                                    "Time to the end of the response", labels=["route"])
    for route, slots in sorted(buckets.items()):
        cumulative = list(accumulate(slots))
        bounds = [*map(str, LATENCY_BUCKETS), "+Inf"]
        latency.add_metric([route], list(zip(bounds, cumulative)), sums[route])
    yield latency


_LOOKUP_COUNTERS = (
    ("hits", "diemthi_cache_hits", "Lookups answered from the LRU"),
    ("misses", "diemthi_cache_misses", "Lookups that went to the store"),
    ("negative_hits", "diemthi_cache_negative_hits", "Unknown SBDs answered from the LRU"),
    ("store_reads", "diemthi_store_reads", "Round trips to SQLite (each serves a batch)"),
    ("store_keys", "diemthi_store_keys", "SBDs asked of SQLite"),
    ("loop_reads", "diemthi_store_loop_reads", "Of those round trips, point reads of a "
     "resident snapshot done on the event loop (the rest went to a thread)"),
    ("watch_errors", "diemthi_watch_errors", "Checks of the activation pointers that failed "
     "or found a pointer or snapshot it could not serve"),
)


def _lookup_families(values: dict[str, int]) -> Any:
    for key, name, doc in _LOOKUP_COUNTERS:
        c = CounterMetricFamily(name, doc)
        c.add_metric([], values.get(key, 0))
        yield c


class _RequestCollector:
    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def collect(self) -> Any:
        m = self.metrics
        yield from _request_families(m.counts, m.buckets, m.sums)


class _LookupCollector:
    """Cache and snapshot figures, read from the lookup's plain counters when scraped."""

    def __init__(self, lookup: "Lookup", per_worker: bool = True):
        self.lookup = lookup
        self.per_worker = per_worker

    def collect(self) -> Any:
        if self.per_worker:
            s = self.lookup.stats
            yield from _lookup_families({key: getattr(s, key) for key, _, _ in
                                         _LOOKUP_COUNTERS})
        yield from self.snapshots()

    def snapshots(self) -> Any:
        info = GaugeMetricFamily("diemthi_snapshot_active", "Snapshot served for a year",
                                 labels=["year", "snapshot"])
        rows = GaugeMetricFamily("diemthi_snapshot_rows", "Candidates in the served snapshot",
                                 labels=["year"])
        for year, served in sorted(self.lookup.served.items()):
            info.add_metric([str(year), served.id], 1)
            rows.add_metric([str(year)], served.rows)
        yield info
        yield rows
        yield from _data_dir_gauges(self.lookup)
        if self.per_worker:
            pid = GaugeMetricFamily("diemthi_worker_pid", "This worker's process id")
            pid.add_metric([], os.getpid())
            yield pid


class SharedFigures:
    """One worker's plain figures in the shared directory, and the sum of all workers'."""

    INTERVAL = 1.0  # seconds between two writes of this worker's figures

    def __init__(self, directory: Path, metrics: Metrics):
        self.directory = directory
        self.metrics = metrics
        # pid and a random part: a later process with the same pid starts a file of its own
        self.path = directory / f"diemthi-{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
        self.snapshots = _LookupCollector(metrics.lookup, per_worker=False)

    def flush(self) -> None:
        atomic_write(self.path, orjson.dumps(self.metrics.figures()), durable=False)

    async def start(self, app: Any = None) -> Callable[[], Awaitable[None]]:
        """Write this worker's figures every INTERVAL for as long as it serves."""
        async def loop() -> None:
            while True:
                await asyncio.sleep(self.INTERVAL)
                self.flush()

        self.flush()
        task = asyncio.get_running_loop().create_task(loop())

        async def stop() -> None:
            task.cancel()
            self.flush()  # the last figures of a worker that stops stay in the sum
        return stop

    def render(self) -> bytes:
        self.flush()  # this worker's own figures are current in its answer
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.directory))  # Metrics.counter's
        registry.register(self)
        for collector in self.metrics.extra:  # the outbox's, the token ages: from files
            registry.register(collector)
        return generate_latest(registry)

    def collect(self) -> Any:
        counts: dict[tuple[str, int], int] = {}
        buckets: dict[str, list[int]] = {}
        sums: dict[str, float] = {}
        lookup: dict[str, int] = {}
        workers = 0
        for path in sorted(self.directory.glob("diemthi-*.json")):
            try:
                figures = orjson.loads(path.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                continue  # renamed into place whole, so only a vanished file lands here
            workers += 1
            for route, status, n in figures["requests"]:
                counts[(route, status)] = counts.get((route, status), 0) + n
            for route, slots in figures["buckets"].items():
                total = buckets.setdefault(route, [0] * len(slots))
                buckets[route] = [a + b for a, b in zip(total, slots)]
                sums[route] = sums.get(route, 0.0) + figures["sums"][route]
            for key, n in figures["lookup"].items():
                lookup[key] = lookup.get(key, 0) + n
        yield from _request_families(counts, buckets, sums)
        yield from _lookup_families(lookup)
        yield from self.snapshots.collect()
        processes = GaugeMetricFamily("diemthi_worker_processes", "Worker processes whose "
                                      "figures are summed here (those that stopped too)")
        processes.add_metric([], workers)
        yield processes


def _data_dir_gauges(lookup: "Lookup") -> Any:
    """Disk room under the data dir, and years whose served snapshot is not the active one
    (an activation the server has not picked up: alerts watch both)."""
    try:
        usage = shutil.disk_usage(lookup.data_dir)
    except OSError:
        usage = None
    if usage is not None:
        for name, doc, value in (
                ("diemthi_data_dir_free_bytes", "Free bytes on the data dir's file system",
                 usage.free),
                ("diemthi_data_dir_size_bytes", "Size of the data dir's file system",
                 usage.total)):
            gauge = GaugeMetricFamily(name, doc)
            gauge.add_metric([], value)
            yield gauge
    try:
        years = store.pointer_years(lookup.data_dir)
    except OSError:
        years = []
    behind = GaugeMetricFamily("diemthi_snapshot_behind_active", "1 when the snapshot served "
                               "for a year is not the one its pointer names (or the pointer "
                               "cannot be read)", labels=["year"])
    for year in years:
        try:
            snapshot_id: str | None = store.read_pointer(lookup.data_dir, year).snapshot
        except store.StoreError:
            snapshot_id = None
        served = lookup.served.get(year)
        behind.add_metric([str(year)], 0 if served is not None and served.id == snapshot_id
                          else 1)
    yield behind


class MetricsMiddleware:
    """Counts every HTTP request by route and status, and times it."""

    def __init__(self, app: Callable, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def counting_send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.metrics.observe(route_of(scope["path"]), status, time.perf_counter() - start)
