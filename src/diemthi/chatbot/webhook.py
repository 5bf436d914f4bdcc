"""``POST /zalo/webhook``: verify, persist, answer 200. Nothing else happens here.

An event is answered 200 only once it is committed to the outbox store (so Zalo never
has to retry an event we took, and one we could not store is answered 503 and retried
by Zalo). The events of one event-loop turn share one transaction, which is what keeps
the webhook fast with a durable store. The sender (:mod:`.sender`) does the rest.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from typing import Awaitable, Callable

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response

from .. import messages
from ..lookup import Lookup
from ..metrics import Metrics
from ..responses import error_response
from ..settings import Settings
from . import signature
from .conversation import Conversation
from .outbox import AsyncStore, Event, open_path
from .push import Pusher
from .sender import OutboxCollector, Sender
from .tokencare import TokenAgeCollector
from .zalo import Tokens, ZaloClient

log = logging.getLogger("diemthi.chatbot")

OK = Response(b'{"status":"ok"}', media_type="application/json")


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is longer than ``limit`` (never held whole)."""
    if int(request.headers.get("content-length") or 0) > limit:
        return None
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            return None
        parts.append(part)
    return b"".join(parts)


class Acceptor:
    """Groups the events of one event-loop turn into one transaction; each request
    waits for the commit that holds its event."""

    def __init__(self, db: AsyncStore):
        self.db = db
        self.pending: list[Event] = []
        self.waiters: list[asyncio.Future] = []
        self.flushing = False

    async def accept(self, event: Event) -> None:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.append(event)
        self.waiters.append(future)
        if not self.flushing:
            self.flushing = True
            loop.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)  # let the other requests of this turn add theirs
            while self.pending:
                events, waiters = self.pending, self.waiters
                self.pending, self.waiters = [], []
                try:
                    await self.db.run(self.db.store.accept, events, time.time())
                except Exception as exc:  # noqa: BLE001 - every waiter must hear of it
                    for future in waiters:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for future in waiters:
                    if not future.done():
                        future.set_result(None)
        finally:
            self.flushing = False


class Chatbot:
    MAX_BODY = 64 * 1024  # Zalo's events are a few hundred bytes

    def __init__(self, settings: Settings, lookup: Lookup, metrics: Metrics):
        self.settings = settings
        self.lookup = lookup
        self.conversation = Conversation(settings, lookup)
        self.events = metrics.counter("diemthi_zalo_events", "Webhook events received", ("event",))
        self.rejected = metrics.counter("diemthi_zalo_rejected", "Webhook calls refused",
                                        ("reason",))
        self.refreshes = metrics.counter("diemthi_zalo_token_refreshes", "Access token refreshes")
        metrics.register(OutboxCollector(open_path(settings.data_dir)))
        metrics.register(TokenAgeCollector(settings.data_dir))
        self.db: AsyncStore | None = None
        self.acceptor: Acceptor | None = None
        self.sender: Sender | None = None

    async def start(self, app: object = None) -> Callable[[], Awaitable[None]]:
        self.db = await asyncio.to_thread(AsyncStore, open_path(self.settings.data_dir))
        self.acceptor = Acceptor(self.db)
        http = httpx.AsyncClient(timeout=self.settings.zalo_timeout, limits=httpx.Limits(
            max_connections=self.settings.zalo_concurrency))
        client = ZaloClient(self.settings, Tokens.load(self.settings), http,
                            on_refresh=self.refreshes.inc)
        pusher = Pusher(self.settings, self.lookup, self.conversation, self.db)
        self.sender = Sender(self.settings, self.db, client, self.conversation, pusher)
        self.sender.start()
        fresh = asyncio.get_running_loop().create_task(
            client.keep_fresh(self.settings.zalo_refresh_every))

        async def stop() -> None:
            assert self.sender is not None and self.db is not None
            fresh.cancel()
            await self.sender.stop()
            await http.aclose()
            await self.db.close()

        return stop

    def refuse(self, status: int, reason: str, code: str, message: str) -> Response:
        self.rejected.labels(reason).inc()
        return error_response(status, code, message)

    async def endpoint(self, request: Request) -> Response:
        header = request.headers.get(signature.HEADER)
        body = await read_limited(request, self.MAX_BODY)
        if body is None:
            return error_response(413, "too_large", messages.TOO_LARGE)
        if not header:
            return self.refuse(401, "signature", "invalid_signature", "Thiếu chữ ký.")
        try:
            event = orjson.loads(body)
            app_id, timestamp = str(event["app_id"]), str(event["timestamp"])
            sent_ms = int(timestamp)
        except (ValueError, KeyError, TypeError):
            return self.refuse(400, "bad_event", "bad_event", "Sự kiện không hợp lệ.")
        if app_id != self.settings.zalo_app_id or not signature.verify(
                header, app_id, body, timestamp, self.settings.zalo_oa_secret_key):
            return self.refuse(401, "signature", "invalid_signature", "Chữ ký không hợp lệ.")
        if abs(time.time() - sent_ms / 1000) > self.settings.zalo_max_skew:
            return self.refuse(401, "replay", "stale_event",
                               "Sự kiện quá cũ hoặc sai thời gian.")
        name = str(event.get("event_name", ""))
        self.events.labels(name if name == "user_send_text" else "other").inc()
        if not name.startswith("user_send_") and name != "follow":
            return OK  # acknowledged, nothing to answer
        try:  # a follow has a follower and no message: it gets an id of its own
            user_id = str((event.get("sender") or event["follower"])["id"])
            message = event.get("message") or {}
            msg_id = str(message.get("msg_id") or f"{name}:{user_id}:{timestamp}")
            text = str(message.get("text") or "")
        except (KeyError, TypeError):
            return OK  # signed by Zalo, but nothing we can answer
        assert self.acceptor is not None and self.sender is not None
        try:
            await self.acceptor.accept(Event(msg_id, user_id, name, text, sent_ms / 1000))
        except sqlite3.Error as exc:
            log.error("cannot store a Zalo event: %s", exc)
            return error_response(503, "busy", messages.INTERNAL)
        if self.sender.holding:
            self.sender.wake.set()
        return OK
