"""``diemthi serve``'s HTTP server: uvicorn with httptools, plus the limits uvicorn lacks.

Exposed without a proxy in front, a worker must bound what a client can make it hold.
uvicorn's httptools protocol bounds neither the size of a request's headers (llhttp and
httptools buffer a header however long it grows) nor the time to send them (its keep-alive
timer runs only between requests), nor the number of open connections (its
``limit_concurrency`` answers 503 only once a request's headers are complete). So:

- headers: at most ``max_header_bytes`` from the request's first byte to the end of its
  headers, else ``431`` and the connection is closed;
- time: the headers must arrive within ``header_timeout`` of the connection opening or of
  the request's first byte, else ``408`` and closed (an idle new connection included);
- connections: beyond ``max_connections`` open ones a new connection gets ``503`` and is
  closed at once.

Worst case per worker: ``max_connections × (max_header_bytes + one socket read)``.
"""

from __future__ import annotations

import asyncio
import copy
import sys
from dataclasses import dataclass
from typing import Any

import uvicorn
import uvicorn.config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.supervisors import Multiprocess

from . import messages
from .responses import error_body
from .settings import Settings

LINGER_SECONDS = 2.0  # after refusing, how long to drain a client still sending


@dataclass(frozen=True)
class Limits:
    """What one connection may make a worker hold (defaults: :class:`Settings`')."""

    max_header_bytes: int
    header_timeout: float
    max_connections: int

    @classmethod
    def of(cls, settings: Settings) -> "Limits":
        return cls(settings.max_header_bytes, settings.header_timeout,
                   settings.max_connections)


class ServerConfig(uvicorn.Config):
    """uvicorn's config carrying our limits to the protocol (and, pickled, to workers)."""

    def __init__(self, app: Any, limits: Limits, **kwargs: Any):
        super().__init__(app, http=f"{__name__}:GuardedHttpToolsProtocol", **kwargs)
        self.limits = limits


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header size, header time and connection bounds."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any):
        super().__init__(config, *args, **kwargs)
        self.limits: Limits = getattr(config, "limits", None) or Limits.of(Settings())
        self.reading_headers = True  # between a request's first byte and its headers' end
        self.header_bytes = 0
        self.header_timer: asyncio.TimerHandle | None = None
        self.refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self.refuse(503, "busy", messages.INTERNAL)
            return
        self.arm()  # a connection that never sends a byte is timed too

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return  # answered already; what still comes is dropped unread
        if not self.reading_headers:
            super().data_received(data)
            return
        room = self.limits.max_header_bytes - self.header_bytes
        if len(data) > room:
            super().data_received(data[:room])  # the headers may end within it
            if self.transport.is_closing():
                return
            if self.reading_headers:
                self.refuse(431, "headers_too_large", messages.HEADERS_TOO_LARGE)
                return
            super().data_received(data[room:])  # a body, or the next request
        else:
            self.header_bytes += len(data)
            super().data_received(data)
        # Headers begun but not finished: their time runs from now. (A request that came
        # whole never arms a timer; the common case costs nothing.)
        if self.reading_headers and self.header_bytes and self.header_timer is None \
                and not self.transport.is_closing():
            self.arm()

    def on_headers_complete(self) -> None:
        self.reading_headers = False
        self.disarm()
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope["method"] != "HEAD":  # HEAD: a head alone
            cycle.transport = OneSend(self.transport)  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.reading_headers, self.header_bytes = True, 0  # the next request's headers

    def arm(self) -> None:
        self.disarm()
        self.header_timer = self.loop.call_later(self.limits.header_timeout, self.timed_out)

    def disarm(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def timed_out(self) -> None:
        self.header_timer = None
        if not self.reading_headers or self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            self.refuse(408, "header_timeout", messages.HEADER_TIMEOUT)
        else:
            self.transport.close()  # a pipelined request stalled behind a response

    def refuse(self, status: int, code: str, message: str) -> None:
        """Answer before any request is complete, and close.

        Closing with unread bytes in the socket would reset the connection, and the
        client could lose the answer: as nginx's ``lingering_close``, send the answer and
        our end of the stream, drop whatever still arrives, and close after a moment.
        """
        self.disarm()
        self.reading_headers, self.refused = False, True
        body = error_body(code, message)
        self.transport.write(b"".join([
            STATUS_LINE[status], b"content-type: application/json\r\n",
            b"content-length: ", str(len(body)).encode(), b"\r\n",
            b"connection: close\r\n\r\n", body]))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


class OneSend:
    """The transport as one response sees it: the head is held until the body's first
    write, and both leave in one ``send``.

    uvicorn writes a response's head and its body separately; with TCP_NODELAY that is two
    system calls and two segments for every lookup, the biggest single cost of answering
    one. Whatever else the response does goes straight through: a ``100 Continue`` before
    the head, more body chunks after it, and ``close`` sends what is held first.
    """

    __slots__ = ("transport", "held", "head_seen")

    def __init__(self, transport: asyncio.Transport):
        self.transport = transport
        self.held: bytes | None = None
        self.head_seen = False

    def write(self, data: bytes) -> None:
        if self.held is not None:
            data, self.held = self.held + data, None
        elif not self.head_seen and data[9:10] != b"1":  # b"HTTP/1.1 1xx": not the head
            self.head_seen = True
            self.held = data
            return
        self.transport.write(data)

    def close(self) -> None:
        if self.held is not None:
            self.transport.write(self.held)
            self.held = None
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


def config(settings: Settings, app: Any, **kwargs: Any) -> ServerConfig:
    """The uvicorn config ``diemthi serve`` runs: an app, or an import string for workers."""
    options: dict[str, Any] = dict(
        host=settings.host, port=settings.port, loop="uvloop", access_log=settings.access_log,
        proxy_headers=False, timeout_graceful_shutdown=10, log_level="info",
        server_header=False,  # names no software to a scanner, and is one header less to send
        workers=settings.workers, log_config=log_config())
    return ServerConfig(app, Limits.of(settings), **{**options, **kwargs})


def log_config() -> dict[str, Any]:
    """uvicorn's logging, and our ``diemthi.*`` loggers through the same handler and
    format, so what the service says about itself (a missing data dir, a snapshot that
    cannot be opened, a switch) reaches the log. They still propagate (tests capture)."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"]["diemthi"] = {"handlers": ["default"], "level": "INFO",
                                    "propagate": True}
    return config


def run(cfg: ServerConfig) -> None:
    """Serve until SIGTERM or Ctrl-C, as ``uvicorn.run`` does (one process or workers)."""
    server = uvicorn.Server(cfg)
    if cfg.workers > 1:
        Multiprocess(cfg, sockets=[cfg.bind_socket()]).run()
        return
    server.run()
    if not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE
