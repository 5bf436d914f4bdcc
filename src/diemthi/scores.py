"""``GET /v1/scores/{sbd}[?year=YYYY]``: the hot path, from a request to the bytes.

On results day nearly every request is this one, so it is a plain ASGI app (no Request
or Response objects) and :class:`ScoresFirst` hands it the request before Starlette's
middleware and router: those layers (error middleware, metrics middleware, exception
middleware, route matching, each wrapping ``send``) cost more than answering a cached
lookup does. What they would do for it, this module does itself: it counts the request
in the metrics, answers an unexpected error with the same JSON 500, and goes through the
CORS rule when origins are configured. Every other request, and a lookup path with any
other method (405) or shape (404), takes the Starlette app as before.
"""

from __future__ import annotations

import logging
import time
from typing import Callable
from urllib.parse import parse_qs

from starlette.applications import Starlette

from . import messages
from .cors import ReadOnlyCORS
from .gate import Answer, error, snapshot_for
from .lookup import Lookup, Served
from .metrics import Metrics
from .ratelimit import ClientAddress, RateLimiter
from .responses import JSON, error_body, etag_matches
from .sbd import is_sbd
from .settings import Settings

log = logging.getLogger("diemthi.scores")

PREFIX = "/v1/scores/"
ROUTE = PREFIX + "{sbd}"  # the metrics label, as the router would name it
YEARS = (2000, 2100)  # the exam years ?year= may name


def year_asked(query: bytes) -> str | None:
    """The ``year`` a query string asks for, as ``parse_qs`` reads it (the last one), or
    None. The plain ``year=YYYY`` every multi-year client sends is read without it: it
    costs more than the rest of a cached lookup."""
    if len(query) == 9 and query.startswith(b"year=") and query[5:].isdigit():
        return query[5:].decode("ascii")
    years = parse_qs(query.decode("latin-1")).get("year")
    return years[-1] if years else None


class ScoresEndpoint:
    """Answers one lookup: rate limit, SBD and year checks, the year's gate, the LRU or a
    point read, conditional requests; counted in ``/metrics`` like every route."""

    def __init__(self, settings: Settings, lookup: Lookup, metrics: Metrics):
        self.lookup = lookup
        self.observe = metrics.observe
        self.cache_control = f"public, max-age={settings.max_age}".encode()
        self.limiter = RateLimiter(settings.rate_limit, settings.rate_burst) \
            if settings.rate_limit > 0 else None
        self.client = ClientAddress(settings.trusted_proxies)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        started = time.perf_counter()
        try:
            status, headers, body = await self.answer(scope)
        except Exception:  # noqa: BLE001 - as Starlette's error middleware: log, answer 500
            log.exception("lookup of %s failed", scope["path"])
            status, headers, body = error(500, "internal", messages.INTERNAL)
        headers.append((b"content-length", str(len(body)).encode()))
        # counted before it is sent (sending is a write into the socket's buffer): a
        # client that has the answer always finds it counted in /metrics
        self.observe(ROUTE, status, time.perf_counter() - started)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def answer(self, scope: dict) -> Answer:
        if self.limiter is not None:
            wait = self.limiter.retry_after(self.client(scope))
            if wait:
                return error(429, "rate_limited", messages.RATE_LIMITED,
                             [(b"retry-after", str(max(1, round(wait))).encode())])
        sbd = scope["path"][len(PREFIX):]
        if not is_sbd(sbd):
            return error(400, "invalid_sbd", messages.INVALID_SBD)
        year = None
        if scope["query_string"]:
            text = year_asked(scope["query_string"])
            if text is not None:
                if len(text) != 4 or not text.isdigit() or not text.isascii() \
                        or not YEARS[0] <= int(text) <= YEARS[1]:
                    return error(400, "invalid_year", messages.INVALID_YEAR)
                year = int(text)
        lookup = self.lookup
        if year is None:
            year = lookup.current_year
            if year is None:
                return error(503, "not_ready", messages.NOT_READY, [(b"retry-after", b"10")])
        snapshot = snapshot_for(lookup, year)
        if not isinstance(snapshot, Served):
            return snapshot
        etag = snapshot.etag(sbd)
        headers = [(b"etag", etag), (b"cache-control", self.cache_control)]
        found = await snapshot.get(sbd)
        headers.append((b"content-type", JSON))
        if found is None:  # conditionals apply to a 2xx only (RFC 9110, 13.2.1)
            return 404, headers, error_body("not_found", messages.not_found(sbd, year))
        conditions = [value for name, value in scope["headers"] if name == b"if-none-match"]
        if conditions and etag_matches(b",".join(conditions), etag):
            headers.pop()
            return 304, headers, b""
        return 200, headers, found


class ScoresFirst(Starlette):
    """The Starlette app, with ``GET``/``HEAD /v1/scores/{sbd}`` answered before its
    middleware and router (see the module doc). The app keeps a route for that path, so
    that other methods get Starlette's 405; the endpoint is never reached through it."""

    def __init__(self, scores: ScoresEndpoint, cors_origins: tuple[str, ...] = (),
                 **kwargs: object):
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.scores: Callable = ReadOnlyCORS(scores, cors_origins) if cors_origins \
            else scores

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path = scope["path"]
            if path.startswith(PREFIX) and len(path) > len(PREFIX) \
                    and "/" not in path[len(PREFIX):]:
                scope["app"] = self
                await self.scores(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
