"""The Starlette application: routes, JSON errors, lifespan.

Follow one request: ``/v1/scores/{sbd}`` → :class:`~diemthi.scores.ScoresFirst` (before
Starlette's middleware and router) → :class:`~diemthi.scores.ScoresEndpoint` (raw ASGI) →
:meth:`Served.get <diemthi.lookup.Served.get>` (LRU, then a point read) → bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import AsyncIterator

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import messages
from .cors import ReadOnlyCORS
from .lookup import Lookup
from .metrics import Metrics, MetricsMiddleware
from .openapi import spec
from .ratelimit import ClientAddress, NetworkAllow
from .responses import error_body, error_response
from .scores import ScoresEndpoint, ScoresFirst
from .settings import Settings
from .stats import StatsEndpoint
from .web.pages import Pages

SWITCH_INTERVAL = 0.001  # seconds; see lifespan


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


async def readyz(request: Request) -> Response:
    """200 when this process serves exactly what staff activated; 503 says what is not."""
    lookup: Lookup = request.app.state.lookup
    years = {}
    for year in sorted(set(lookup.pointers) | set(lookup.served)):
        pointer, served = lookup.pointers.get(year), lookup.served.get(year)
        release = lookup.release(year)
        years[str(year)] = {
            "snapshot": served.id if served else None, "rows": served.rows if served else 0,
            "active": pointer.snapshot if pointer else None,
            "release_at": release.at.isoformat() if release.at else None,
            "published": release.published()}
    problems = lookup.problems
    if not lookup.served or problems:
        body = error_body("not_ready", messages.NOT_READY, problems=problems,
                          year=lookup.current_year, years=years)
        return Response(body, 503, media_type="application/json")
    return Response(orjson.dumps({"status": "ready", "year": lookup.current_year,
                                  "years": years}), media_type="application/json")


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
                    batch_size=settings.batch_size, year=settings.year,
                    release_override=settings.release_at)
    metrics = Metrics(lookup, settings.metrics_dir)
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

    scores = ScoresEndpoint(settings, lookup, metrics)
    routes = [
        Route("/v1/scores/{sbd}", scores, methods=["GET", "HEAD"]),  # 405s; see ScoresFirst
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
        routes.append(Route("/zalo/webhook", chatbot, methods=["POST"]))
    middleware = [Middleware(MetricsMiddleware, metrics=metrics)]
    if settings.cors_origins:
        middleware.append(Middleware(ReadOnlyCORS, origins=settings.cors_origins))
    app = ScoresFirst(scores, settings.cors_origins, routes=routes, lifespan=lifespan,
                      middleware=middleware,
                      exception_handlers={HTTPException: http_error, Exception: server_error})
    app.router.redirect_slashes = False  # its Location would come from the Host header
    app.state.settings = settings
    app.state.lookup = lookup
    app.state.metrics = metrics
    app.state.metrics_allow = NetworkAllow(settings.metrics_networks,
                                           ClientAddress(settings.trusted_proxies))
    app.state.on_start = []  # async callables returning an async stop callable
    if metrics.shared is not None:  # --workers N: this worker's share of /metrics
        app.state.on_start.append(metrics.shared.start)
    if settings.zalo_enabled:
        app.state.chatbot = chatbot
        app.state.on_start.append(chatbot.start)
    return app


def app_from_environment() -> Starlette:
    """Factory for ``uvicorn --factory`` and multi-worker serving: settings from env."""
    from .settings import load

    return create_app(load())
