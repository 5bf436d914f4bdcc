"""The one process that talks to Zalo: it holds the lease, composes, pushes and sends.

Every worker process runs a :class:`Sender`; only the one holding the lease in the
store (renewed every second, taken over by another process within ``LEASE_TTL`` when
its holder dies) does the work: it turns accepted events into outbox messages, queues
the release push, and sends waiting messages oldest first at ``DIEMTHI_ZALO_SEND_RATE``
messages per second with at most ``DIEMTHI_ZALO_CONCURRENCY`` in flight. A message is
marked sent only after Zalo accepted it, so a kill at any moment re-sends at most the
sends that were in flight. Transient errors are retried with back-off until the message
is older than the reply window; errors that can never succeed end the message with
their reason.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import sqlite3
import time
from dataclasses import replace
from typing import Any

import orjson
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..settings import Settings
from . import replies
from .channels import Windows, choose, split_text
from .conversation import Conversation
from .outbox import AsyncStore, Event, Message, NewMessage, Outcome, Store
from .push import Pusher
from .zalo import Retryable, ZaloClient, ZaloError, message_body

log = logging.getLogger("diemthi.chatbot.sender")

LEASE_TTL = 5.0  # seconds without renewal before another process takes over
LEASE_RENEW = 1.0
IDLE = 0.05  # seconds between looks at the store when there is nothing to do
PUSH_EVERY = 0.5
COMPOSE_BATCH = 200
MAX_BACKOFF = 60.0


class Pace:
    """Start times on a schedule 1/rate apart: N sends take (N - 1) / rate seconds. A
    start that wakes late does not move the schedule (the next ones catch up), unless
    the sender was idle or stalled for more than ``SLACK`` seconds."""

    SLACK = 0.25

    def __init__(self, rate: float):
        self.interval = 1.0 / rate
        self.next = 0.0

    async def take(self) -> None:
        now = time.monotonic()
        if self.next < now - self.SLACK:
            self.next = now
        elif self.next > now:
            await asyncio.sleep(self.next - now)
        self.next += self.interval


def backoff(attempts: int, base: float = 0.2) -> float:
    return min(MAX_BACKOFF, base * 2 ** attempts) * (0.5 + random.random())


class Sender:
    def __init__(self, settings: Settings, db: AsyncStore, client: ZaloClient,
                 conversation: Conversation, pusher: Pusher):
        self.settings = settings
        self.db = db
        self.client = client
        self.conversation = conversation
        self.pusher = pusher
        self.me = f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"
        self.windows = Windows(settings.zalo_free_window, settings.zalo_reply_window,
                               settings.zalo_transaction)
        self.pace = Pace(settings.zalo_send_rate)
        self.batch = max(1, min(settings.zalo_concurrency, int(settings.zalo_send_rate)))
        self.ahead = max(COMPOSE_BATCH, int(settings.zalo_send_rate * 2))
        self.in_flight: dict[int, asyncio.Task] = {}
        self.threads: dict[str, int] = {}  # in-thread sends under way per msg_id
        self.outcomes: list[tuple[Outcome, asyncio.Future]] = []
        self.writing = False
        self.wake = asyncio.Event()
        self.holding = False
        self.stopping = False
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self, drain: float = 5.0) -> None:
        """Stop taking work, let sends under way finish, hand the lease on."""
        self.stopping = True
        self.wake.set()
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, drain + LEASE_RENEW)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self.task.cancel()
        if self.in_flight:
            await asyncio.wait(list(self.in_flight.values()), timeout=drain)
        if self.holding:
            try:
                await self.db.run(self.db.store.release_lease, self.me)
            except sqlite3.Error:
                pass

    async def run(self) -> None:
        last_push = 0.0
        while not self.stopping:
            try:
                self.holding = await self.db.run(self.db.store.take_lease, self.me,
                                                 time.time(), LEASE_TTL)
            except sqlite3.Error as exc:
                log.warning("lease: %s", exc)
                self.holding = False
            if not self.holding:
                await self._idle(LEASE_RENEW)
                continue
            renew = time.monotonic() + LEASE_RENEW
            while time.monotonic() < renew and not self.stopping:
                try:
                    worked = await self.compose()
                    if time.monotonic() - last_push >= PUSH_EVERY:
                        last_push = time.monotonic()
                        worked = bool(await self.pusher.tick()) or worked
                    worked = await self.send_due() or worked
                except sqlite3.Error as exc:  # busy beyond the timeout: try again
                    log.warning("outbox: %s", exc)
                    worked = False
                if not worked:
                    await self._idle(IDLE)

    async def _idle(self, seconds: float) -> None:
        self.wake.clear()
        try:
            await asyncio.wait_for(self.wake.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    # -- events → outbox -------------------------------------------------------------

    async def compose(self) -> bool:
        """Compose the next events, but only a few seconds of sends ahead: work beyond
        that would only compete with the webhook for the CPU."""
        if await self.db.run(self.db.store.waiting) >= self.ahead:
            return False
        events = await self.db.run(self.db.store.uncomposed, COMPOSE_BATCH)
        if not events:
            return False
        registrations: list[tuple[str, str, int]] = []
        messages = await asyncio.gather(*(self._compose(e, registrations) for e in events))
        await self.db.run(self.db.store.composed, list(zip(events, messages)), registrations,
                          time.time())
        return True

    async def _compose(self, event: Event, registrations: list) -> list[NewMessage]:
        def register(sbd: str, year: int) -> None:
            registrations.append((event.user_id, sbd, year))

        try:
            texts = await self.conversation.compose(event.text, event.user_id, register,
                                                    event.name)
        except Exception:  # noqa: BLE001 - one message must not stop the queue
            log.exception("composing the reply to %s failed", event.msg_id)
            texts = [replies.BUSY]
        return [NewMessage(event.user_id, "reply", part, reply_to=event.msg_id)
                for text in texts for part in split_text(text)]

    # -- outbox → Zalo ---------------------------------------------------------------

    async def send_due(self) -> bool:
        room = self.settings.zalo_concurrency - len(self.in_flight)
        if room <= 0:
            await asyncio.wait(list(self.in_flight.values()),
                               return_when=asyncio.FIRST_COMPLETED)
            return True
        due = await self.db.run(self.db.store.due, time.time(), min(room, self.batch),
                                list(self.in_flight))
        for message in due:
            await self.pace.take()
            if self.stopping:
                break
            self.in_flight[message.id] = asyncio.get_running_loop().create_task(
                self._send(message))
        return bool(due)

    async def _send(self, message: Message) -> None:
        thread = None
        try:
            outcome, thread = await self._attempt(message)
            await self._record(outcome)
        except Exception:  # noqa: BLE001 - the row stays waiting and is tried again
            log.exception("sending outbox message %d failed", message.id)
        finally:
            if thread is not None:
                self.threads[thread] -= 1
                if not self.threads[thread]:
                    del self.threads[thread]
            self.in_flight.pop(message.id, None)

    async def _record(self, outcome: Outcome) -> None:
        """Outcomes that end together are written in one transaction."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.outcomes.append((outcome, future))
        if not self.writing:
            self.writing = True
            loop.create_task(self._write_outcomes())
        await future

    async def _write_outcomes(self) -> None:
        try:
            await asyncio.sleep(0)
            while self.outcomes:
                batch, self.outcomes = self.outcomes, []
                try:
                    await self.db.run(self.db.store.record, [o for o, _ in batch], time.time())
                except Exception as exc:  # noqa: BLE001 - every sender must hear of it
                    for _, future in batch:
                        future.set_exception(exc)
                    continue
                for _, future in batch:
                    future.set_result(None)
        finally:
            self.writing = False

    async def _attempt(self, message: Message) -> tuple[Outcome, str | None]:
        now = time.time()
        if now - message.created >= self.settings.zalo_reply_window:
            return Outcome(message.id, "given_up", reason="expired"), None
        # counts as of now (the row was read before other sends to its thread ended)
        latest, used = await self.db.run(self.db.store.facts, message.user_id,
                                         message.reply_to)
        message = replace(message, replies_used=used)
        route = choose(message, latest, now, self.windows, self.threads)
        if route is None:
            return Outcome(message.id, "given_up", reason="window"), None
        if route.thread is not None:
            self.threads[route.thread] = self.threads.get(route.thread, 0) + 1
        template = orjson.loads(message.template) if message.template else None
        try:
            sent = await self.client.send(route.channel, route.recipient,
                                          message_body(route.channel, message.text, template))
        except Retryable as exc:
            log.info("send %d: %s; again later", message.id, exc)
            return Outcome(message.id, "retry", due=now + backoff(message.attempts)), route.thread
        except ZaloError as exc:
            if route.channel == "reply" and route.thread and exc.reason in ("invalid", "window",
                                                                            "quota"):
                # Zalo no longer takes replies in that thread: choose again right away
                await self.db.run(self.db.store.thread_used_up, route.thread)
                return Outcome(message.id, "retry", due=now), route.thread
            log.warning("send %d given up: %s", message.id, exc)
            return Outcome(message.id, "given_up", reason=exc.reason), route.thread
        return Outcome(message.id, "sent", channel=route.channel, quota=sent.quota,
                       reply_to=route.thread), route.thread


class OutboxCollector:
    """``/metrics`` figures read from the store when scraped, so every worker process
    reports the same queue, counters and registrations."""

    def __init__(self, path: Any):
        self.path = path
        self.store: Store | None = None

    def collect(self) -> Any:
        if self.store is None:
            self.store = Store(self.path)
        s = self.store.stats(time.time())
        for name, doc, value in (
                ("diemthi_zalo_queue_depth", "Messages accepted and not yet sent or given up",
                 s["depth"]),
                ("diemthi_zalo_queue_oldest_seconds", "Age of the oldest waiting message",
                 s["oldest_seconds"]),
                ("diemthi_zalo_send_rate", "Messages Zalo accepted per second, last minute",
                 s["send_rate"]),
                ("diemthi_zalo_registered", "Registrations for the release push",
                 s["registered"]),
                ("diemthi_zalo_pushed", "Registrations whose push is queued or sent",
                 s["pushed"])):
            gauge = GaugeMetricFamily(name, doc)
            gauge.add_metric([], value)
            yield gauge
        sent = CounterMetricFamily("diemthi_zalo_sent", "Messages Zalo accepted, by channel "
                                   "and the quota that paid", labels=["channel", "quota"])
        for (channel, quota), value in sorted(s["sent"].items()):
            sent.add_metric([channel, quota], value)
        yield sent
        given_up = CounterMetricFamily("diemthi_zalo_given_up", "Messages given up, by reason",
                                       labels=["reason"])
        for reason, value in sorted(s["given_up"].items()):
            given_up.add_metric([reason], value)
        yield given_up
        for name, doc, value in (
                ("diemthi_zalo_failed", "Messages given up (every reason)",
                 sum(s["given_up"].values())),
                ("diemthi_zalo_expired", "Messages given up for age (reply window)",
                 s["given_up"].get("expired", 0)),
                ("diemthi_zalo_retried", "Send attempts repeated", s["retried"])):
            counter = CounterMetricFamily(name, doc)
            counter.add_metric([], value)
            yield counter
