"""The Starlette application: routes, JSON errors, lifespan.

Follow one request: ``/v1/scores/{sbd}`` → :class:`ScoresEndpoint` (raw ASGI, no Request or
Response objects on the hot path) → :meth:`Served.get <diemthi.lookup.Served.get>` (LRU,
then a batched store read) → bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any, AsyncIterator, Callable
from urllib.parse import parse_qs

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import messages
from .cors import ReadOnlyCORS
from .embargo import Embargo
from .lookup import Lookup
from .metrics import Metrics, MetricsMiddleware
from .openapi import spec
from .ratelimit import ClientAddress, NetworkAllow, RateLimiter
from .responses import JSON, error_body, error_response
from .sbd import is_sbd
from .settings import Settings
from .stats import StatsEndpoint
from .web.pages import Pages

SWITCH_INTERVAL = 0.001  # seconds; see lifespan


class ScoresEndpoint:
    """``GET /v1/scores/{sbd}[?year=YYYY]`` as a plain ASGI app: the hot path."""

    def __init__(self, settings: Settings, lookup: Lookup):
        self.lookup = lookup
        self.release = Embargo(settings.release_at).release  # the one release rule
        self.cache_control = f"public, max-age={settings.max_age}".encode()
        self.limiter = RateLimiter(settings.rate_limit, settings.rate_burst) \
            if settings.rate_limit > 0 else None
        self.client = ClientAddress(settings.trusted_proxies)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        status, headers, body = await self.answer(scope)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def answer(self, scope: dict) -> tuple[int, list, bytes]:
        if self.limiter is not None:
            wait = self.limiter.retry_after(self.client(scope))
            if wait:
                return self.error(429, "rate_limited", messages.RATE_LIMITED,
                                  [(b"retry-after", str(max(1, round(wait))).encode())])
        sbd = scope["path_params"]["sbd"]
        if not is_sbd(sbd):
            return self.error(400, "invalid_sbd", messages.INVALID_SBD)
        year = None
        if scope["query_string"]:
            years = parse_qs(scope["query_string"].decode("latin-1")).get("year")
            if years:
                text = years[-1]
                if len(text) != 4 or not text.isdigit() or not text.isascii():
                    return self.error(400, "invalid_year", messages.INVALID_YEAR)
                year = int(text)
        release = self.release(year)
        if not release.published():
            return self.error(403, "not_published", messages.not_published(release.at),
                              [(b"retry-after", str(max(1, int(release.seconds_left()))).encode()),
                               (b"cache-control", b"no-store")],
                              release_at=release.at.isoformat())
        if year is None:
            year = self.lookup.latest_year
            if year is None:
                return self.error(503, "not_ready", messages.NOT_READY,
                                  [(b"retry-after", b"10")])
        snapshot = self.lookup.served.get(year)
        if snapshot is None:
            return self.error(404, "year_not_found", messages.year_not_found(year))
        etag = snapshot.etag(sbd)
        headers = [(b"etag", etag), (b"cache-control", self.cache_control)]
        for name, value in scope["headers"]:
            if name == b"if-none-match" and (value.strip() == b"*" or etag in value):
                return 304, headers, b""
        found = await snapshot.get(sbd)
        if found is None:
            headers.append((b"content-type", JSON))
            return 404, headers, error_body("not_found", messages.not_found(sbd, year))
        headers.append((b"content-type", JSON))
        return 200, headers, found

    @staticmethod
    def error(status: int, code: str, message: str, headers: list | None = None,
              **extra: Any) -> tuple[int, list, bytes]:
        return (status, [(b"content-type", JSON), *(headers or [])],
                error_body(code, message, **extra))


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


async def readyz(request: Request) -> Response:
    lookup: Lookup = request.app.state.lookup
    if not lookup.ready:
        return error_response(503, "not_ready", messages.NOT_READY)
    years = {str(y): {"snapshot": s.id, "rows": s.rows} for y, s in lookup.served.items()}
    return Response(orjson.dumps({"status": "ready", "years": years}),
                    media_type="application/json")


async def metrics_endpoint(request: Request) -> Response:
    if not request.app.state.metrics_allow(request.scope):
        return error_response(403, "forbidden", messages.FORBIDDEN)
    return Response(request.app.state.metrics.render(),
                    media_type="text/plain; version=0.0.4; charset=utf-8")


_STATUS_ERRORS = {
    400: ("bad_request", messages.BAD_REQUEST),
    404: ("no_route", messages.NO_ROUTE),
    405: ("method_not_allowed", messages.METHOD_NOT_ALLOWED),
}


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code, message = _STATUS_ERRORS.get(exc.status_code, ("error", messages.BAD_REQUEST))
    return error_response(exc.status_code, code, message, headers=exc.headers)


async def server_error(request: Request, exc: Exception) -> Response:
    return error_response(500, "internal", messages.INTERNAL)


def create_app(settings: Settings) -> Starlette:
    """The app for these settings; everything it shares hangs off ``app.state``."""
    lookup = Lookup(settings.data_dir, cache_size=settings.cache_size,
                    negative_cache_size=settings.negative_cache_size,
                    batch_size=settings.batch_size)
    metrics = Metrics(lookup)
    openapi = orjson.dumps(spec())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The store thread hands results back through the GIL; at Python's default 5 ms
        # switch interval a batch of misses can wait that long behind the event loop.
        sys.setswitchinterval(SWITCH_INTERVAL)
        await lookup.refresh()
        watcher = asyncio.get_running_loop().create_task(lookup.watch(settings.reload_interval))
        extras = [await start(app) for start in app.state.on_start]
        try:
            yield
        finally:
            watcher.cancel()
            for stop in reversed(extras):
                await stop()
            await lookup.close()

    routes = [
        Route("/v1/scores/{sbd}", ScoresEndpoint(settings, lookup), methods=["GET", "HEAD"]),
        *Pages(settings, lookup).routes(),  # HTML pages (issue 10); early: routes match in order
        Route("/v1/stats/{year}", stats := StatsEndpoint(settings, lookup),
              methods=["GET", "HEAD"]),
        Route("/v1/stats/{year}/{scope}", stats, methods=["GET", "HEAD"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", lambda request: Response(openapi, media_type="application/json"),
              methods=["GET"]),
    ]
    if settings.zalo_enabled:
        from .chatbot.webhook import Chatbot

        chatbot = Chatbot(settings, lookup, metrics)
        routes.append(Route("/zalo/webhook", chatbot.endpoint, methods=["POST"]))
    middleware = [Middleware(MetricsMiddleware, metrics=metrics)]
    if settings.cors_origins:
        middleware.append(Middleware(ReadOnlyCORS, origins=settings.cors_origins))
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware,
                    exception_handlers={HTTPException: http_error, Exception: server_error})
    app.state.settings = settings
    app.state.lookup = lookup
    app.state.metrics = metrics
    app.state.metrics_allow = NetworkAllow(settings.metrics_networks,
                                           ClientAddress(settings.trusted_proxies))
    app.state.on_start = []  # async callables returning an async stop callable
    if settings.zalo_enabled:
        app.state.chatbot = chatbot
        app.state.on_start.append(chatbot.start)
    return app


def app_from_environment() -> Starlette:
    """Factory for ``uvicorn --factory`` and multi-worker serving: settings from env."""
    from .settings import load

    return create_app(load())
