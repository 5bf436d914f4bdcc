"""A stand-in for Zalo's OA API, for tests and load tests: a real HTTP server on loopback
that records what it gets and can be told to expire tokens, fail with 5xx, or answer slowly."""

from __future__ import annotations

import asyncio
import itertools
from urllib.parse import parse_qsl
from dataclasses import dataclass, field

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class ZaloStandIn:
    expired: set[str] = field(default_factory=set)  # access tokens answered with -216
    fail_next: int = 0  # this many sends get HTTP 503
    delay: float = 0.0  # seconds before answering a send
    sent: list[dict] = field(default_factory=list)  # {"token", "user_id", "text"}
    refreshes: list[dict] = field(default_factory=list)  # {"form", "secret_key"}
    attempts: int = 0
    _ids: itertools.count = field(default_factory=itertools.count)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v3.0/oa/message/cs", self.send, methods=["POST"]),
                                 Route("/v4/oa/access_token", self.refresh, methods=["POST"])])

    async def send(self, request: Request) -> Response:
        self.attempts += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_next > 0:
            self.fail_next -= 1
            return Response(b"upstream down", 503)
        token = request.headers.get("access_token", "")
        if token in self.expired:
            return JSONResponse({"error": -216, "message": "Access token is invalid"})
        body = orjson.loads(await request.body())
        self.sent.append({"token": token, "user_id": body["recipient"]["user_id"],
                          "text": body["message"]["text"]})
        return JSONResponse({"error": 0, "message": "Success",
                             "data": {"message_id": f"m{next(self._ids)}"}})

    async def refresh(self, request: Request) -> Response:
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        form = dict(parse_qsl((await request.body()).decode()))
        self.refreshes.append({"form": form, "secret_key": request.headers.get("secret_key")})
        n = len(self.refreshes)
        return JSONResponse({"access_token": f"access-{n}", "refresh_token": f"refresh-{n}",
                             "expires_in": "90000"})
