"""Talking to Zalo's OA API: tokens that refresh themselves, and a bounded outbox.

Replies never block the webhook: they wait in a bounded queue that a fixed number of
workers drain; a full queue drops (and counts) instead of growing without bound. Sends
are retried with backoff on network errors and 5xx; an expired access token (error
-216) is refreshed once for everyone waiting and the send is repeated.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Awaitable, Callable

import httpx
import orjson

from ..files import atomic_write
from ..settings import Settings

log = logging.getLogger("diemthi.zalo")

TOKEN_EXPIRED = -216
SEND_PATH = "/v3.0/oa/message/cs"
REFRESH_PATH = "/v4/oa/access_token"


class ZaloError(Exception):
    """Zalo answered with an error code; retrying the same request will not help."""


class Retryable(Exception):
    """A network error or a 5xx: worth another try after a pause."""


@dataclass
class Tokens:
    """Access and refresh tokens, persisted under the data dir so a restart keeps them.

    ``seed`` is the refresh token the environment gave; if ops set a new one, the
    environment wins over what was saved from the old one.
    """

    path: Path
    access: str
    refresh: str
    seed: str

    @classmethod
    def load(cls, settings: Settings) -> "Tokens":
        path = settings.data_dir / "zalo-tokens.json"
        seed = settings.zalo_refresh_token
        try:
            saved = orjson.loads(path.read_bytes())
            if saved.get("seed") == seed and saved.get("access_token"):
                return cls(path, saved["access_token"], saved["refresh_token"], seed)
        except (OSError, ValueError):
            pass
        return cls(path, settings.zalo_access_token, seed, seed)

    def lock(self) -> IO[bytes]:
        """An exclusive lock shared by the worker processes (released on close)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path.with_name(self.path.name + ".lock"), "ab")
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        return fh

    def adopt_saved(self) -> bool:
        """Take the saved tokens if another process saved newer ones than ours."""
        try:
            saved = orjson.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return False
        if saved.get("seed") != self.seed or saved.get("access_token") in (None, self.access):
            return False
        self.access, self.refresh = saved["access_token"], saved["refresh_token"]
        return True

    def save(self) -> None:
        atomic_write(self.path, orjson.dumps({"access_token": self.access,
                                              "refresh_token": self.refresh,
                                              "seed": self.seed}))


class ZaloClient:
    def __init__(self, settings: Settings, tokens: Tokens, http: httpx.AsyncClient,
                 on_refresh: Callable[[], None] = lambda: None):
        self.settings = settings
        self.tokens = tokens
        self.http = http
        self.on_refresh = on_refresh
        self._refreshing = asyncio.Lock()

    async def send_text(self, user_id: str, text: str) -> None:
        """One customer-service text message; raises Retryable or ZaloError."""
        token = self.tokens.access
        answer = await self._post_message(token, user_id, text)
        if answer.get("error") == TOKEN_EXPIRED:
            await self.refresh(token)
            answer = await self._post_message(self.tokens.access, user_id, text)
        if answer.get("error", 0) != 0:
            raise ZaloError(f"{answer.get('error')}: {answer.get('message')}")

    async def _post_message(self, token: str, user_id: str, text: str) -> dict:
        body = {"recipient": {"user_id": user_id}, "message": {"text": text}}
        return await self._call(self.settings.zalo_api_base + SEND_PATH,
                                headers={"access_token": token, "content-type": "application/json"},
                                content=orjson.dumps(body))

    async def refresh(self, stale: str) -> None:
        """Refresh once, however many sends (and worker processes) saw the token expire.

        A refresh token works once, so worker processes take turns under a file lock, and a
        worker that finds a newer token already saved by another adopts it.
        """
        async with self._refreshing:
            if self.tokens.access != stale:
                return  # another send refreshed it meanwhile
            lock = await asyncio.to_thread(self.tokens.lock)
            try:
                if await asyncio.to_thread(self.tokens.adopt_saved):
                    return  # another worker process refreshed it
                await self._refresh()
            finally:
                lock.close()

    async def _refresh(self) -> None:
        answer = await self._call(
            self.settings.zalo_oauth_base + REFRESH_PATH,
            headers={"secret_key": self.settings.zalo_app_secret},
            data={"refresh_token": self.tokens.refresh, "app_id": self.settings.zalo_app_id,
                  "grant_type": "refresh_token"})
        if not answer.get("access_token"):
            raise ZaloError(f"token refresh failed: {answer}")
        self.tokens.access = answer["access_token"]
        self.tokens.refresh = answer.get("refresh_token") or self.tokens.refresh
        await asyncio.to_thread(self.tokens.save)
        self.on_refresh()
        log.info("Zalo access token refreshed")

    async def _call(self, url: str, **kwargs: object) -> dict:
        try:
            response = await self.http.post(url, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError as exc:
            raise Retryable(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise Retryable(f"HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise ZaloError(f"HTTP {response.status_code}: not JSON") from exc


@dataclass(frozen=True)
class Job:
    user_id: str
    text: str


class Outbox:
    """A bounded queue of incoming messages to answer, drained by a few workers."""

    def __init__(self, handle: Callable[[Job], Awaitable[None]], size: int, concurrency: int,
                 on_drop: Callable[[], None]):
        self.handle = handle
        self.queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=size)
        self.concurrency = concurrency
        self.on_drop = on_drop
        self.workers: list[asyncio.Task] = []

    def offer(self, job: Job) -> bool:
        try:
            self.queue.put_nowait(job)
            return True
        except asyncio.QueueFull:
            self.on_drop()
            return False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.workers = [loop.create_task(self._work()) for _ in range(self.concurrency)]

    async def stop(self, drain_seconds: float = 5.0) -> None:
        """Give queued replies a moment to go out, then stop the workers."""
        try:
            await asyncio.wait_for(self.queue.join(), drain_seconds)
        except asyncio.TimeoutError:
            log.warning("%d replies still queued at shutdown", self.queue.qsize())
        for task in self.workers:
            task.cancel()
        await asyncio.gather(*self.workers, return_exceptions=True)

    async def _work(self) -> None:
        while True:
            job = await self.queue.get()
            try:
                await self.handle(job)
            except Exception:  # noqa: BLE001 - one bad job must not stop a worker
                log.exception("answering a Zalo message failed")
            finally:
                self.queue.task_done()


async def with_retries(send: Callable[[], Awaitable[None]], retries: int,
                       on_retry: Callable[[], None], base_delay: float = 0.2) -> None:
    """Try, then retry on Retryable with exponential backoff and jitter."""
    for attempt in range(retries + 1):
        try:
            await send()
            return
        except Retryable:
            if attempt == retries:
                raise
            on_retry()
            await asyncio.sleep(base_delay * 2 ** attempt * (0.5 + random.random()))
