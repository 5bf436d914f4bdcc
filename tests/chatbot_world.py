"""What the chatbot tests share: signed Zalo events, a student writing to the OA (the
stand-in of Zalo learns of it as Zalo would), waiting on conditions, reading /metrics."""

from __future__ import annotations

import time
from typing import Callable

import httpx
import orjson

from diemthi.chatbot.signature import sign
from loadtests.zalo_standin import ZaloStandIn

APP_ID, OA_SECRET = "1234567890", "oa-secret"


def event(text: str, msg_id: str, name: str = "user_send_text", user: str = "u-1",
          at: float | None = None) -> bytes:
    timestamp = str(int((time.time() if at is None else at) * 1000))
    return orjson.dumps({"app_id": APP_ID, "event_name": name, "timestamp": timestamp,
                         "sender": {"id": user}, "recipient": {"id": "oa-1"},
                         "user_id_by_app": "x", "message": {"text": text, "msg_id": msg_id}})


def post(client: httpx.Client, body: bytes, signature: str | None = "auto") -> httpx.Response:
    headers = {"content-type": "application/json"}
    if signature == "auto":
        signature = sign(APP_ID, body, orjson.loads(body)["timestamp"], OA_SECRET)
    if signature is not None:
        headers["X-ZEvent-Signature"] = signature
    return client.post("/zalo/webhook", content=body, headers=headers)


def say(client: httpx.Client, zalo: ZaloStandIn, text: str, msg_id: str, user: str = "u-1",
        at: float | None = None) -> httpx.Response:
    """A student writes to the OA: Zalo learns of the message and calls the webhook."""
    zalo.user_wrote(user, msg_id, at)
    return post(client, event(text, msg_id, user=user, at=at))


def wait_for(predicate: Callable[[], object], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def metrics(client: httpx.Client) -> dict[str, float]:
    out = {}
    for line in client.get("/metrics").text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def metric(client: httpx.Client, name: str) -> float:
    """One sample (``name`` with its labels), or the sum over labels of a bare name."""
    found = metrics(client)
    if name in found:
        return found[name]
    return sum(v for k, v in found.items() if k.startswith(name + "{"))


def settings(data_dir, zalo_url: str, **extra: object) -> dict:
    return {"data_dir": str(data_dir), "zalo_app_id": APP_ID, "zalo_oa_secret_key": OA_SECRET,
            "zalo_access_token": "access-0", "zalo_refresh_token": "refresh-0",
            "zalo_app_secret": "app-secret", "zalo_api_base": zalo_url,
            "zalo_oauth_base": zalo_url, **extra}
