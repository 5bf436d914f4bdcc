"""Real servers on loopback for tests: uvicorn in a thread, on a free port."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from typing import Any

import httpx
import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """``with LiveServer(app) as base_url:`` serves an ASGI app for real."""

    def __init__(self, app: Any, port: int | None = None, config: uvicorn.Config | None = None):
        self.port = config.port if config else port or free_port()
        config = config or uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                          log_level="warning", loop="asyncio",
                                          proxy_headers=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


def get_when_up(url: str, proc: subprocess.Popen, seconds: float = 30) -> httpx.Response:
    """GET ``url`` as soon as the server process listens; it must not die meanwhile."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return httpx.get(url)
        except httpx.TransportError:
            assert time.monotonic() < deadline and proc.poll() is None, "never listened"
            time.sleep(0.1)
