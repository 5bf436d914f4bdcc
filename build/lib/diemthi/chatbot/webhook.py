"""``POST /zalo/webhook``: verify, acknowledge at once, answer in the background."""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Awaitable, Callable

import httpx
import orjson
from cachetools import TTLCache
from starlette.requests import Request
from starlette.responses import Response

from .. import messages
from ..lookup import Lookup
from ..metrics import Metrics
from ..responses import error_response
from ..settings import Settings
from . import replies, signature
from .extract import find_sbds
from .zalo import Job, Outbox, Retryable, Tokens, ZaloClient, ZaloError, with_retries

log = logging.getLogger("diemthi.chatbot")

SEEN_SECONDS = 24 * 3600  # Zalo retries within minutes; a day is plenty
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


class Chatbot:
    MAX_BODY = 64 * 1024  # Zalo's events are a few hundred bytes

    def __init__(self, settings: Settings, lookup: Lookup, metrics: Metrics):
        self.settings = settings
        self.lookup = lookup
        self.release_ts = settings.release_at.timestamp() if settings.release_at else 0.0
        self.seen: TTLCache = TTLCache(maxsize=200_000, ttl=SEEN_SECONDS)
        self.events = metrics.counter("diemthi_zalo_events", "Webhook events received", ("event",))
        self.rejected = metrics.counter("diemthi_zalo_rejected", "Webhook calls refused "
                                        "(bad signature or body)")
        self.sent = metrics.counter("diemthi_zalo_replies_sent", "Replies Zalo accepted")
        self.failed = metrics.counter("diemthi_zalo_replies_failed", "Replies given up on")
        self.retried = metrics.counter("diemthi_zalo_replies_retried", "Send attempts repeated")
        self.dropped = metrics.counter("diemthi_zalo_replies_dropped", "Messages not answered "
                                       "because the outbox was full")
        self.refreshes = metrics.counter("diemthi_zalo_token_refreshes", "Access token refreshes")
        self.outbox = Outbox(self.answer, settings.zalo_queue_size, settings.zalo_concurrency,
                             on_drop=self.dropped.inc)
        self.client: ZaloClient | None = None

    async def start(self, app: object = None) -> Callable[[], Awaitable[None]]:
        http = httpx.AsyncClient(timeout=self.settings.zalo_timeout, limits=httpx.Limits(
            max_connections=self.settings.zalo_concurrency))
        self.client = ZaloClient(self.settings, Tokens.load(self.settings), http,
                                 on_refresh=self.refreshes.inc)
        self.outbox.start()

        async def stop() -> None:
            await self.outbox.stop()
            await http.aclose()

        return stop

    async def endpoint(self, request: Request) -> Response:
        header = request.headers.get(signature.HEADER)
        body = await read_limited(request, self.MAX_BODY)
        if body is None:
            return error_response(413, "too_large", messages.TOO_LARGE)
        if not header:
            self.rejected.inc()
            return error_response(401, "invalid_signature", "Thiếu chữ ký.")
        try:
            event = orjson.loads(body)
            app_id, timestamp = str(event["app_id"]), str(event["timestamp"])
        except (ValueError, KeyError, TypeError):
            self.rejected.inc()
            return error_response(400, "bad_event", "Sự kiện không hợp lệ.")
        if app_id != self.settings.zalo_app_id or not signature.verify(
                header, app_id, body, timestamp, self.settings.zalo_oa_secret_key):
            self.rejected.inc()
            return error_response(401, "invalid_signature", "Chữ ký không hợp lệ.")
        name = str(event.get("event_name", ""))
        self.events.labels(name if name == "user_send_text" else "other").inc()
        if name != "user_send_text":
            return OK  # acknowledged, nothing to say
        try:
            message, user_id = event["message"], str(event["sender"]["id"])
            msg_id, text = str(message["msg_id"]), str(message.get("text") or "")
        except (KeyError, TypeError):
            return OK  # signed by Zalo, but nothing we can answer
        if msg_id in self.seen:
            return OK  # a retry of a message already taken
        self.seen[msg_id] = True
        self.outbox.offer(Job(user_id, text))
        return OK

    async def compose(self, text: str) -> list[str]:
        """The replies to one message, one chat bubble each."""
        if self.release_ts and time.time() < self.release_ts:
            return [replies.not_published(self.settings.release_at)]  # type: ignore[arg-type]
        found = find_sbds(text)
        if not found.sbds:
            return [replies.wrong_length(found.wrong_length[0]) if found.wrong_length
                    else replies.HELP]
        year = self.lookup.latest_year
        if year is None:
            return [replies.BUSY]
        served = self.lookup.served[year]
        out = []
        for sbd in found.sbds:
            body = await served.get(sbd)
            out.append(replies.found(orjson.loads(body)) if body else replies.not_found(sbd, year))
        out += [replies.wrong_length(d) for d in found.wrong_length[:1]]
        if found.more:
            out.append(replies.TOO_MANY)
        return out

    async def answer(self, job: Job) -> None:
        assert self.client is not None
        for text in await self.compose(job.text):
            try:
                await with_retries(partial(self.client.send_text, job.user_id, text),
                                   self.settings.zalo_retries, self.retried.inc)
                self.sent.inc()
            except (Retryable, ZaloError) as exc:
                self.failed.inc()
                log.warning("reply to %s failed: %s", job.user_id, exc)
