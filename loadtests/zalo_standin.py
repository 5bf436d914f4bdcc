"""A stand-in for Zalo's OA API, for tests and load tests: a real HTTP server on loopback
that answers as Zalo's OA API v3 does and records what it gets.

What it enforces, as Zalo's documentation and help pages describe it:
- ``POST /v3.0/oa/message/cs`` with ``recipient.message_id``: an in-thread reply, free
  (``quota_type: "reply"``, ``remain`` of 8) within ``free_window`` of that message and
  for its first 8 replies; the 9th, or one sent later, counts as a proactive message;
- with ``recipient.user_id`` (or a proactive in-thread one): allowed while the user's last
  message is inside ``reply_window`` (else ``-230``), paid from the OA's ``sub_quota``
  while it lasts, else charged (the answer carries no ``quota``);
- ``POST /v3.0/oa/message/transaction``: a ``transaction_education`` template, when the
  OA has the permission (else ``-223``), to users who interacted within a year (else
  ``-232``); a template outside Zalo's limits is ``-201``;
- a user who blocked the OA: ``-244``; an expired access token: ``-216``; more sends per
  second than ``accept_rate``: ``-32``; ``fail_next`` sends answered HTTP 503.
Tests tell it what users wrote (:meth:`user_wrote`); a message_id it has never heard of
is taken as written just now (``lenient``, for load tests), or refused with -201.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

FREE_REPLIES = 8


def error(code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message})


@dataclass
class ZaloStandIn:
    expired: set[str] = field(default_factory=set)  # access tokens answered with -216
    fail_next: int = 0  # this many sends get HTTP 503
    delay: float = 0.0  # seconds before answering a send
    free_window: float = 48 * 3600
    reply_window: float = 7 * 86400
    interaction_window: float = 365 * 86400  # transaction messages
    sub_quota: int = 0  # the OA's free proactive messages left
    transaction_allowed: bool = False
    blocked: set[str] = field(default_factory=set)  # user_ids who blocked the OA
    accept_rate: float | None = None  # sends per second Zalo takes; beyond: -32
    accept_burst: float | None = None  # sends taken at once (default: a second's worth)
    lenient: bool = True
    token_lifetime: float | None = None  # access tokens older than this answer -216
    refuse_refresh: bool = False  # the refresh token is spent or revoked
    oa_name: str = "Sở GD&ĐT (thử nghiệm)"
    issued: dict[str, float] = field(default_factory=dict)  # access token -> first seen
    sent: list[dict] = field(default_factory=list)
    refused: list[dict] = field(default_factory=list)  # {"code", "body"}
    attempted: list[dict] = field(default_factory=list)  # every send's recipient, in order
    refreshes: list[dict] = field(default_factory=list)  # {"form", "secret_key"}
    attempts: int = 0
    messages: dict[str, dict] = field(default_factory=dict)  # msg_id -> user, at, replies
    last_seen: dict[str, float] = field(default_factory=dict)  # user_id -> last message
    _ids: itertools.count = field(default_factory=itertools.count)
    _bucket: list[float] = field(default_factory=lambda: [0.0, 0.0])  # tokens, time

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v3.0/oa/message/cs", self.cs, methods=["POST"]),
            Route("/v3.0/oa/message/transaction", self.transaction, methods=["POST"]),
            Route("/v4/oa/access_token", self.refresh, methods=["POST"]),
            Route("/v2.0/oa/getoa", self.getoa, methods=["GET"])])

    def user_wrote(self, user_id: str, msg_id: str, at: float | None = None) -> None:
        """What Zalo knows when a user sends the OA a message."""
        at = time.time() if at is None else at
        self.messages[msg_id] = {"user_id": user_id, "at": at, "replies": 0}
        self.last_seen[user_id] = max(at, self.last_seen.get(user_id, 0.0))

    def _rate_limited(self) -> bool:
        if self.accept_rate is None:
            return False
        now = time.monotonic()
        tokens, then = self._bucket
        burst = self.accept_burst or self.accept_rate
        tokens = min(burst, tokens + (now - then) * self.accept_rate)
        if tokens < 1:
            self._bucket[:] = [tokens, now]
            return True
        self._bucket[:] = [tokens - 1, now]
        return False

    async def _common(self, request: Request) -> tuple[dict | None, Response | None, str]:
        self.attempts += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_next > 0:
            self.fail_next -= 1
            return None, Response(b"upstream down", 503), ""
        token = request.headers.get("access_token", "")
        if self._token_invalid(token):
            return None, error(-216, "Access token is invalid"), token
        try:
            body = orjson.loads(await request.body())
            self.attempted.append(body["recipient"])
            body["message"]
        except (ValueError, KeyError, TypeError):
            return None, error(-201, "body is invalid!"), token
        if self._rate_limited():
            return None, error(-32, "Your application reached limit call api"), token
        return body, None, token

    def _token_invalid(self, token: str) -> bool:
        if token in self.expired:
            return True
        born = self.issued.setdefault(token, time.time())
        return self.token_lifetime is not None and time.time() - born > self.token_lifetime

    async def getoa(self, request: Request) -> Response:
        """``GET /v2.0/oa/getoa``: the OA's own information, as Zalo answers it."""
        if self._token_invalid(request.headers.get("access_token", "")):
            return error(-216, "Access token is invalid")
        return JSONResponse({"error": 0, "message": "Success", "data": {
            "oa_id": "579745863508352884", "name": self.oa_name, "oa_alias": "",
            "description": "Tra cứu điểm thi tốt nghiệp THPT", "is_verified": True,
            "oa_type": 2, "cate_name": "Giáo dục", "num_follower": 1204,
            "avatar": "", "cover": "", "package_name": "", "package_valid_through_date": "",
            "package_auto_renew_date": "", "linked_ZCA": ""}})

    def _refuse(self, code: int, message: str, body: dict) -> JSONResponse:
        self.refused.append({"code": code, "body": body})
        return error(code, message)

    def _ok(self, record: dict, quota: dict | None) -> JSONResponse:
        message_id = f"oa-{next(self._ids)}"
        record["quota"] = quota["quota_type"] if quota else "charged"
        self.sent.append(record)
        data: dict = {"message_id": message_id, "user_id": record["user_id"]}
        if quota:
            data["quota"] = {"owner_type": "OA", "owner_id": "oa-1",
                             "expired_date": "", **quota}
        return JSONResponse({"error": 0, "message": "Success", "data": data})

    async def cs(self, request: Request) -> Response:
        body, refusal, token = await self._common(request)
        if refusal is not None:
            return refusal
        assert body is not None
        recipient, now = body["recipient"], time.time()
        text = body["message"].get("text")
        if not isinstance(text, str) or not text or len(text) > 2000:
            return self._refuse(-201, "message.text is invalid!", body)
        record = {"token": token, "text": text, "message_id": None, "user_id": None}
        if "message_id" in recipient:
            thread = self.messages.get(recipient["message_id"])
            if thread is None:
                if not self.lenient:
                    return self._refuse(-201, "recipient.message_id is invalid!", body)
                self.user_wrote("?", recipient["message_id"], now)
                thread = self.messages[recipient["message_id"]]
            record.update(channel="reply", message_id=recipient["message_id"],
                          user_id=thread["user_id"])
            if thread["user_id"] in self.blocked:
                return self._refuse(-244, "User has blocked the OA", body)
            if now - thread["at"] < self.free_window and thread["replies"] < FREE_REPLIES:
                thread["replies"] += 1
                return self._ok(record, {"quota_type": "reply",
                                         "remain": str(FREE_REPLIES - thread["replies"]),
                                         "total": str(FREE_REPLIES)})
            user = thread["user_id"]  # the 9th, or past 48 h: a proactive message
        elif "user_id" in recipient:
            user = str(recipient["user_id"])
            record.update(channel="cs", user_id=user)
            if user not in self.last_seen and self.lenient:
                self.last_seen[user] = now
            if user in self.blocked:
                return self._refuse(-244, "User has blocked the OA", body)
        else:
            return self._refuse(-201, "recipient is invalid!", body)
        if now - self.last_seen.get(user, 0.0) >= self.reply_window:
            return self._refuse(-230, "User has not interacted with the OA in the past 7 "
                                "days", body)
        if self.sub_quota > 0:
            self.sub_quota -= 1
            return self._ok(record, {"quota_type": "sub_quota", "remain": str(self.sub_quota)})
        return self._ok(record, None)

    async def transaction(self, request: Request) -> Response:
        body, refusal, token = await self._common(request)
        if refusal is not None:
            return refusal
        assert body is not None
        user = str(body["recipient"].get("user_id", ""))
        if not self.transaction_allowed:
            return self._refuse(-223, "Official Account has not authorized this API", body)
        problem = template_problem(body["message"])
        if problem:
            return self._refuse(-201, f"{problem} is invalid!", body)
        if user in self.blocked:
            return self._refuse(-244, "User has blocked the OA", body)
        if time.time() - self.last_seen.get(user, 0.0) >= self.interaction_window:
            return self._refuse(-232, "User has not interacted with the OA", body)
        payload = body["message"]["attachment"]["payload"]
        return self._ok({"token": token, "channel": "transaction", "user_id": user,
                         "message_id": None, "text": None, "payload": payload}, None)

    async def refresh(self, request: Request) -> Response:
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        form = dict(parse_qsl((await request.body()).decode()))
        self.refreshes.append({"form": form, "secret_key": request.headers.get("secret_key")})
        if self.refuse_refresh:  # Zalo's OAuth error shape for a spent or revoked token
            return JSONResponse({"error": -14014, "error_name": "Invalid parameter",
                                 "error_reason": "Invalid refresh token",
                                 "error_description": "Refresh token is invalid or expired"})
        n = len(self.refreshes)
        self.issued[f"access-{n}"] = time.time()
        return JSONResponse({"access_token": f"access-{n}", "refresh_token": f"refresh-{n}",
                             "expires_in": "90000"})


def template_problem(message: dict) -> str | None:
    """The first part of a ``transaction_education`` template outside Zalo's limits."""
    try:
        attachment = message["attachment"]
        payload = attachment["payload"]
        elements = payload["elements"]
    except (KeyError, TypeError):
        return "message.attachment"
    if attachment.get("type") != "template" or payload.get("template_type") != \
            "transaction_education":
        return "template_type"
    if payload.get("language") not in ("VI", "EN"):
        return "language"
    headers = [e for e in elements if e.get("type") == "header"]
    tables = [e for e in elements if e.get("type") == "table"]
    texts = [e for e in elements if e.get("type") == "text"]
    if len(headers) != 1 or not 0 < len(headers[0].get("content", "")) <= 100:
        return "elements.header"
    if len(tables) != 1:
        return "elements.table"
    rows = tables[0].get("content") or []
    if not rows or len(rows) > 6 or not any(r.get("key", "").startswith("Mã") for r in rows):
        return "elements.table"
    if any(not 0 < len(r.get("key", "")) <= 35 or not 0 < len(r.get("value", "")) <= 100
           for r in rows):
        return "elements.table.content"
    if len(texts) > 2 or any(not 0 < len(t.get("content", "")) <= 250 for t in texts):
        return "elements.text"
    for button in payload.get("buttons") or []:
        if button.get("type") != "oa.open.url" or not button.get("title") or \
                not str(button.get("payload", {}).get("url", "")).startswith("http"):
            return "buttons"
    return None
