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

from .. import messages
from ..lookup import Lookup
from ..metrics import Metrics
from ..responses import JSON, error_body
from ..settings import Settings
from . import signature
from .conversation import Conversation
from .outbox import AsyncStore, Event, Store, open_path
from .push import Pusher
from .sender import OutboxCollector, Sender
from .tokencare import TokenAgeCollector
from .zalo import Tokens, ZaloClient

log = logging.getLogger("diemthi.chatbot")

OK = (200, b'{"status":"ok"}')


async def read_limited(receive: Callable, headers: dict[bytes, bytes], limit: int
                       ) -> bytes | None:
    """The body, or None as soon as it is longer than ``limit`` (never held whole)."""
    if int(headers.get(b"content-length") or 0) > limit:
        return None
    parts, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None  # the client went away
        part = message.get("body", b"")
        size += len(part)
        if size > limit:
            return None
        parts.append(part)
        if not message.get("more_body"):
            return b"".join(parts)


class Acceptor:
    """Groups the events of one event-loop turn into one transaction; each request
    waits for the commit that holds its event.

    The commit is tried on the event loop's own thread first, without waiting for a
    lock (a batch of a few dozen rows commits in well under a millisecond in WAL mode):
    handing every batch to a thread would make each request wait for that thread to be
    scheduled, which on a busy machine caps the webhook at batch size / wake-up time.
    When another writer holds the lock, the batch goes to the store's thread, which
    waits for it.
    """

    def __init__(self, db: AsyncStore, fast: Store | None = None):
        self.db = db
        self.fast = fast
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
                    if not self._try_here(events):
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

    def _try_here(self, events: list[Event]) -> bool:
        if self.fast is None:
            return False
        try:
            self.fast.accept(events, time.time())
            return True
        except sqlite3.OperationalError as exc:  # "database is locked": not our turn
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            return False


class Chatbot:
    MAX_BODY = 64 * 1024  # Zalo's events are a few hundred bytes

    def __init__(self, settings: Settings, lookup: Lookup, metrics: Metrics):
        self.settings = settings
        self.lookup = lookup
        self.conversation = Conversation(settings, lookup)
        events = metrics.counter("diemthi_zalo_events", "Webhook events received", ("event",))
        self.texts, self.others = events.labels("user_send_text"), events.labels("other")
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
        fast = await asyncio.to_thread(Store, open_path(self.settings.data_dir), 0)
        # a checkpoint copies the WAL into the file and syncs it: never on the event
        # loop; the store's thread checkpoints (it commits at least the lease each second)
        fast.db.execute("PRAGMA wal_autocheckpoint = 0")
        self.acceptor = Acceptor(self.db, fast)
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
            fast.close()

        return stop

    def refuse(self, status: int, reason: str, code: str, message: str) -> tuple[int, bytes]:
        self.rejected.labels(reason).inc()
        return status, error_body(code, message)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        """The route, as a plain ASGI app (no Request or Response objects: the webhook
        must take thousands of events a second on one worker)."""
        status, body = await self.answer(scope, receive)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", JSON),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def answer(self, scope: dict, receive: Callable) -> tuple[int, bytes]:
        headers = dict(scope["headers"])
        raw_header = headers.get(signature.HEADER.encode())
        header = raw_header.decode("latin-1") if raw_header else None
        body = await read_limited(receive, headers, self.MAX_BODY)
        if body is None:
            return 413, error_body("too_large", messages.TOO_LARGE)
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
        (self.texts if name == "user_send_text" else self.others).inc()
        if not name.startswith("user_send_") and name != "follow":
            return OK  # acknowledged, nothing to answer
        try:  # a follow has a follower and no message: it gets an id of its own
            user_id = str((event.get("sender") or event["follower"])["id"])
            message = event.get("message") or {}
            msg_id = str(message.get("msg_id") or f"{name}:{user_id}:{timestamp}")
            text = str(message.get("text") or "")
        except (KeyError, TypeError):
            return OK  # signed by Zalo, but nothing we can answer
        assert self.acceptor is not None
        try:
            await self.acceptor.accept(Event(msg_id, user_id, name, text, sent_ms / 1000))
        except sqlite3.Error as exc:
            log.error("cannot store a Zalo event: %s", exc)
            return 503, error_body("busy", messages.INTERNAL)
        return OK  # the sender looks at the store every IDLE seconds; no wake-up per event
