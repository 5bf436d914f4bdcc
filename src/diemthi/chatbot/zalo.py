"""Talking to Zalo's OA API: tokens that refresh themselves, sends that say what they cost.

A send goes to ``/v3.0/oa/message/cs`` (in-thread by ``recipient.message_id`` or by
``recipient.user_id``) or ``/v3.0/oa/message/transaction`` (a ZBS template). Zalo's
answer names the quota that paid for it (``data.quota.quota_type``); none means
charged. Error answers are sorted into what retrying may fix (:class:`Retryable`:
network, 5xx, rate limiting) and what it never will (:class:`ZaloError` with a
reason). An expired access token (-216) is refreshed once for everyone waiting and the
send repeated.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable

import httpx
import orjson

from ..files import atomic_write
from ..settings import Settings

log = logging.getLogger("diemthi.zalo")

TOKEN_EXPIRED = -216
PATHS = {"reply": "/v3.0/oa/message/cs", "cs": "/v3.0/oa/message/cs",
         "transaction": "/v3.0/oa/message/transaction"}
REFRESH_PATH = "/v4/oa/access_token"
OA_INFO_PATH = "/v2.0/oa/getoa"
CHARGED = "charged"  # the quota label when Zalo's answer names none

# Zalo's error codes (developers.zalo.me, "Mã lỗi" of the OA API), by what they mean for
# a message: the reason it is given up with, or None for "try again later".
RATE_LIMITED = -32  # "Your application reached limit call api"
REASONS: dict[int, str | None] = {
    RATE_LIMITED: None,
    -201: "invalid",  # a parameter is invalid (e.g. a message_id Zalo no longer answers)
    -210: "invalid",  # a parameter exceeds its limit
    -233: "invalid",  # message type invalid or not supported
    -211: "quota",  # out of quota
    -218: "quota",  # out of quota for this user
    -321: "quota",  # the Zalo Cloud Account has no money left
    -213: "window",  # user has not followed the OA / cannot be messaged by user_id
    -230: "window",  # user has not interacted with the OA in the past 7 days
    -232: "window",  # user has not interacted, or the interaction expired
    -227: "blocked",  # user banned or inactive for more than 45 days
    -244: "blocked",  # user blocked / restricted this type of message from the OA
    -212: "not_allowed",  # the app has not registered this API
    -221: "not_allowed",  # the OA must be verified for this feature
    -223: "not_allowed",  # the OA has not granted this API (e.g. transaction messages)
    -224: "not_allowed",  # the OA's tier package does not include it
    -235: "not_allowed",  # the API does not support this type of OA
}


class ZaloError(Exception):
    """Zalo answered with an error code; retrying the same request will not help."""

    def __init__(self, message: str, code: int = 0, reason: str = "error"):
        super().__init__(message)
        self.code = code
        self.reason = reason


class Retryable(Exception):
    """A network error, a 5xx or rate limiting: worth another try after a pause."""


@dataclass(frozen=True)
class Sent:
    message_id: str
    quota: str  # reply | sub_quota | purchase_quota | reward_quota | welcome_msg | charged


def message_body(channel: str, text: str, template: dict | None) -> dict:
    """The ``message`` of a send: a text, or for the transaction channel the template."""
    if channel == "transaction" and template is not None:
        return {"attachment": {"type": "template", "payload": template}}
    return {"text": text}


@dataclass
class Tokens:
    """Access and refresh tokens, persisted under the data dir so a restart keeps them.

    ``seed`` is the refresh token the environment gave; if ops set a new one, the
    environment wins over what was saved from the old one. ``access_at`` and
    ``refresh_at`` are when each token was obtained (epoch seconds): an access token
    lasts 25 hours, a refresh token about three months and works once, so their ages are
    what ops watch and what the refresh ahead of expiry is timed by.
    """

    path: Path
    access: str
    refresh: str
    seed: str
    access_at: float = 0.0
    refresh_at: float = 0.0

    @classmethod
    def load(cls, settings: Settings, now: float | None = None) -> "Tokens":
        path = tokens_path(settings.data_dir)
        seed = settings.zalo_refresh_token
        try:
            saved = orjson.loads(path.read_bytes())
            if saved.get("seed") == seed and saved.get("access_token"):
                return cls(path, saved["access_token"], saved["refresh_token"], seed,
                           float(saved.get("access_at") or 0), float(saved.get("refresh_at") or 0))
        except (OSError, ValueError):
            pass
        # New credentials from the environment: their age counts from the first time we
        # see them (ops set them when they authorised the OA).
        now = time.time() if now is None else now
        tokens = cls(path, settings.zalo_access_token, seed, seed, now, now)
        if seed and settings.data_dir.is_dir():
            tokens.save()
        return tokens

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
        self.access_at = float(saved.get("access_at") or 0)
        self.refresh_at = float(saved.get("refresh_at") or 0)
        return True

    def save(self) -> None:
        atomic_write(self.path, orjson.dumps({"access_token": self.access,
                                              "refresh_token": self.refresh,
                                              "seed": self.seed, "access_at": self.access_at,
                                              "refresh_at": self.refresh_at}))


def tokens_path(data_dir: Path) -> Path:
    return data_dir / "zalo-tokens.json"


def token_ages(data_dir: Path, now: float | None = None) -> tuple[float, float] | None:
    """(access, refresh) token ages in seconds from the saved file, None without one; read
    from the file so that every worker process reports the same."""
    try:
        saved = orjson.loads(tokens_path(data_dir).read_bytes())
        access_at, refresh_at = float(saved["access_at"]), float(saved["refresh_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    now = time.time() if now is None else now
    return now - access_at, now - refresh_at


class ZaloClient:
    def __init__(self, settings: Settings, tokens: Tokens, http: httpx.AsyncClient,
                 on_refresh: Callable[[], None] = lambda: None):
        self.settings = settings
        self.tokens = tokens
        self.http = http
        self.on_refresh = on_refresh
        self._refreshing = asyncio.Lock()

    async def send(self, channel: str, recipient: dict[str, str], message: dict) -> Sent:
        """One message by ``channel``; raises Retryable or ZaloError."""
        body = orjson.dumps({"recipient": recipient, "message": message})
        url = self.settings.zalo_api_base + PATHS[channel]
        token = self.tokens.access
        answer = await self._post(url, token, body)
        if answer.get("error") == TOKEN_EXPIRED:
            await self.refresh(token)
            answer = await self._post(url, self.tokens.access, body)
        code = answer.get("error", 0)
        if code != 0:
            text = f"{code}: {answer.get('message')}"
            if code in REASONS and REASONS[code] is None:
                raise Retryable(text)
            raise ZaloError(text, code, REASONS.get(code) or "error")
        data = answer.get("data") or {}
        quota = (data.get("quota") or {}).get("quota_type") or CHARGED
        return Sent(str(data.get("message_id", "")), str(quota))

    async def send_text(self, user_id: str, text: str) -> Sent:
        """A consultation text by user_id (kept for callers outside the outbox)."""
        return await self.send("cs", {"user_id": user_id}, {"text": text})

    async def _post(self, url: str, token: str, body: bytes) -> dict:
        return await self._call(url, headers={"access_token": token,
                                              "content-type": "application/json"},
                                content=body)

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
            raise ZaloError(f"token refresh failed: {answer}", int(answer.get("error") or 0),
                            "refresh")
        now = time.time()
        self.tokens.access, self.tokens.access_at = answer["access_token"], now
        if answer.get("refresh_token"):  # single-use: the new one replaces it, stored now
            self.tokens.refresh, self.tokens.refresh_at = answer["refresh_token"], now
        await asyncio.to_thread(self.tokens.save)
        self.on_refresh()
        log.info("Zalo access token refreshed")

    async def keep_fresh(self, every: float, retry: float = 60.0) -> None:
        """Refresh the access token once it is ``every`` seconds old (Zalo's lasts 25 h),
        so no send meets an expired token, and a stale one is refreshed at start-up. Runs
        for as long as the chatbot does; a failed refresh is logged and tried again."""
        while True:
            due = self.tokens.access_at + every - time.time()
            if due <= 0:
                try:
                    await self.refresh(self.tokens.access)
                    continue
                except (Retryable, ZaloError) as exc:
                    log.error("Zalo token refresh ahead of expiry failed: %s", exc)
                    due = retry
            await asyncio.sleep(min(due, retry))

    async def get_oa(self) -> dict:
        """The OA's own information (``GET /v2.0/oa/getoa``), refreshing once on -216."""
        for attempt in (0, 1):
            token = self.tokens.access
            answer = await self._call(self.settings.zalo_api_base + OA_INFO_PATH,
                                      method="GET", headers={"access_token": token})
            if answer.get("error") == TOKEN_EXPIRED and not attempt:
                await self.refresh(token)
                continue
            break
        if answer.get("error", 0) != 0:
            raise ZaloError(f"{answer.get('error')}: {answer.get('message')}",
                            int(answer["error"]), REASONS.get(int(answer["error"])) or "error")
        return answer.get("data") or {}

    async def _call(self, url: str, method: str = "POST", **kwargs: object) -> dict:
        try:
            response = await self.http.request(method, url, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError as exc:
            raise Retryable(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise Retryable(f"HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise ZaloError(f"HTTP {response.status_code}: not JSON") from exc
