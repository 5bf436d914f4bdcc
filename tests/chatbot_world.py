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


class Serve:
    """``diemthi serve`` as a real process (its own session, so a SIGKILL takes its
    workers too), talking to the stand-in of Zalo on loopback."""

    def __init__(self, data_dir, zalo_url: str, workers: int = 1, **env: object):
        import os
        import subprocess
        import sys

        from tests.servers import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        values = settings(data_dir, zalo_url, reload_interval="0.2", **env)
        environ = {**os.environ, **{"DIEMTHI_" + k.upper(): str(v) for k, v in values.items()}}
        diemthi = os.path.join(os.path.dirname(sys.executable), "diemthi")
        self.log = open(os.path.join(str(data_dir), f"serve-{self.port}.log"), "w+b")
        self.proc = subprocess.Popen(
            [diemthi, "serve", "--port", str(self.port), "--workers", str(workers)],
            env=environ, start_new_session=True, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise AssertionError(self.log.read().decode())
            assert time.monotonic() < deadline, "diemthi serve did not start"
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL, the whole process group, at once."""
        import os
        import signal

        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        import os
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except Exception:  # noqa: BLE001
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)

    def __enter__(self) -> "Serve":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.log.close()


SCORES = ("sbd,toan,ngu_van,ngoai_ngu,vat_li,hoa_hoc,ma_ngoai_ngu\n"
          "08000123,7.75,6.5,8.25,9,8.5,N1\n08000124,5,6,,,,\n08000125,4,4.5,,,,\n")


def import_scores(data_dir, folder, text: str = SCORES, year: int = 2026) -> str:
    """A tiny real snapshot of ``year``, activated; returns its id."""
    from diemthi.importer import import_files

    path = folder / f"scores-{abs(hash(text))}.csv"
    path.write_text(text, encoding="utf-8")
    return import_files(data_dir, year, [path], activate=True).snapshot_id


def this_year() -> int:
    """The exam year a release time set a few seconds from now belongs to."""
    from datetime import datetime

    from diemthi.messages import VIETNAM

    return datetime.now(VIETNAM).year


def release_in(seconds: float) -> str:
    from datetime import datetime, timedelta, timezone

    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat()


async def burst(url: str, bodies: list[bytes], connections: int = 32) -> list[int]:
    """Post signed events as fast as ``connections`` clients can; the status codes."""
    import asyncio

    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        semaphore = asyncio.Semaphore(connections)

        async def one(body: bytes) -> int:
            async with semaphore:
                timestamp = orjson.loads(body)["timestamp"]
                r = await client.post("/zalo/webhook", content=body, headers={
                    "X-ZEvent-Signature": sign(APP_ID, body, timestamp, OA_SECRET)})
                return r.status_code

        return list(await asyncio.gather(*(one(b) for b in bodies)))

