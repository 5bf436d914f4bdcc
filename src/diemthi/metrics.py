"""Prometheus metrics: one registry per app, and a plain ASGI middleware that counts.

The middleware is raw ASGI (not BaseHTTPMiddleware) and counts into plain dicts, so
counting costs well under a microsecond per request.
"""

from __future__ import annotations

import os
import shutil
import time
from bisect import bisect_left
from itertools import accumulate
from typing import TYPE_CHECKING, Any, Callable

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                   HistogramMetricFamily)

from . import store

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

    def __init__(self, lookup: "Lookup"):
        self.registry = CollectorRegistry()
        self.counts: dict[tuple[str, int], int] = {}
        self.buckets: dict[str, list[int]] = {}  # route -> count per LATENCY_BUCKETS slot
        self.sums: dict[str, float] = {}
        self.registry.register(_RequestCollector(self))
        self.registry.register(_LookupCollector(lookup))

    def counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        """A counter in this app's registry (other modules, e.g. the chatbot, add theirs)."""
        return Counter(name, doc, list(labels), registry=self.registry)

    def register(self, collector: Any) -> None:
        """A collector read when scraped (e.g. the chatbot's figures from its store)."""
        self.registry.register(collector)

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
        return generate_latest(self.registry)


class _RequestCollector:
    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def collect(self) -> Any:
        m = self.metrics
        requests = CounterMetricFamily("diemthi_http_requests", "HTTP requests by route and "
                                       "status", labels=["route", "status"])
        for (route, status), count in sorted(m.counts.items()):
            requests.add_metric([route, str(status)], count)
        yield requests
        latency = HistogramMetricFamily("diemthi_http_request_duration_seconds",
                                        "Time to the end of the response", labels=["route"])
        for route, slots in sorted(m.buckets.items()):
            cumulative = list(accumulate(slots))
            bounds = [*map(str, LATENCY_BUCKETS), "+Inf"]
            latency.add_metric([route], list(zip(bounds, cumulative)), m.sums[route])
        yield latency


class _LookupCollector:
    """Cache and snapshot figures, read from the lookup's plain counters when scraped."""

    def __init__(self, lookup: "Lookup"):
        self.lookup = lookup

    def collect(self) -> Any:
        s = self.lookup.stats
        for name, doc, value in (
                ("diemthi_cache_hits", "Lookups answered from the LRU", s.hits),
                ("diemthi_cache_misses", "Lookups that went to the store", s.misses),
                ("diemthi_cache_negative_hits", "Unknown SBDs answered from the LRU",
                 s.negative_hits),
                ("diemthi_store_reads", "Round trips to SQLite (each serves a batch)",
                 s.store_reads),
                ("diemthi_store_keys", "SBDs asked of SQLite", s.store_keys)):
            c = CounterMetricFamily(name, doc)
            c.add_metric([], value)
            yield c
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
        pid = GaugeMetricFamily("diemthi_worker_pid", "This worker's process id "
                                "(each uvicorn worker keeps its own figures)")
        pid.add_metric([], os.getpid())
        yield pid


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
        active = store.active_ids(lookup.data_dir)
    except (OSError, ValueError):
        active = {}
    behind = GaugeMetricFamily("diemthi_snapshot_behind_active", "1 when the snapshot served "
                               "for a year is not the one its pointer names", labels=["year"])
    for year, snapshot_id in sorted(active.items()):
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
