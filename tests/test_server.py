"""The limits of ``diemthi serve`` without a proxy in front, over real sockets."""

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest

from diemthi import server
from diemthi.app import create_app
from diemthi.importer import import_files
from diemthi.settings import load
from tests.conftest import write
from tests.servers import LiveServer, free_port, get_when_up

REQUEST = b"GET /v1/scores/01000001 HTTP/1.1\r\nHost: x\r\n\r\n"


def serve(data_dir: Path, **settings):
    s = load({"data_dir": str(data_dir), "port": free_port(), **settings}, environ={})
    return LiveServer(None, config=server.config(s, create_app(s), log_level="warning"))


@pytest.fixture
def data(data_dir, tmp_path):
    import_files(data_dir, 2026, [write(tmp_path / "a.csv", "sbd,toan\n01000001,5\n")],
                 activate=True)
    return data_dir


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def read_answer(sock: socket.socket) -> bytes:
    """Everything until the server closes (a refusal always closes)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def status_and_json(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), orjson.loads(body)


def send_quietly(sock: socket.socket, data: bytes) -> None:
    """Send what the server may stop reading half-way (it answers and closes)."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


@pytest.mark.parametrize("size", [100_000, 10_000_000])
def test_too_large_headers_get_431(data, size):
    with serve(data) as url:
        sock = connect(url)
        header = b"X-Big: " + b"a" * size + b"\r\n"
        sender = threading.Thread(target=send_quietly, args=(
            sock, REQUEST[:-2] + header + b"\r\n"))
        sender.start()
        status, body = status_and_json(read_answer(sock))
        sender.join()
        sock.close()
        assert status == 431 and body["error"]["code"] == "headers_too_large"
        assert httpx.get(url + "/v1/scores/01000001").status_code == 200  # others go on


def test_headers_up_to_the_limit_and_a_body_after_them_are_fine(data):
    with serve(data, max_header_bytes="2000") as url:
        headers = {"x-pad": "a" * 1500}
        assert httpx.get(url + "/v1/scores/01000001", headers=headers).status_code == 200
        r = httpx.request("GET", url + "/healthz", content=b"b" * 50_000)
        assert r.status_code == 200  # a large body is not a large header
        assert httpx.get(url + "/healthz", headers={"x-pad": "a" * 2100}).status_code == 431


def test_slow_and_idle_connections_are_timed_out(data):
    with serve(data, header_timeout="0.3s") as url:
        slow = connect(url)
        slow.sendall(b"GET /v1/scores/01000001 HTTP/1.1\r\nHost: x\r\n")  # ...and stalls
        idle = connect(url)  # never sends a byte
        keep = connect(url)
        keep.sendall(REQUEST)  # a first request answered, then the second stalls
        assert keep.recv(65536).startswith(b"HTTP/1.1 200")
        keep.sendall(b"GET /healthz HTTP/1.1\r\n")
        for sock in (slow, idle, keep):
            status, body = status_and_json(read_answer(sock))  # blocks until closed
            assert status == 408 and body["error"]["code"] == "header_timeout"
            sock.close()


def test_connections_beyond_the_limit_are_refused_at_once(data):
    with serve(data, max_connections="3") as url:
        held = [connect(url) for _ in range(3)]
        for sock in held:  # each answered, so each is registered
            sock.sendall(REQUEST)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        extra = connect(url)
        status, body = status_and_json(read_answer(extra))
        assert status == 503 and body["error"]["code"] == "busy"
        extra.close()
        held.pop().close()
        deadline = time.monotonic() + 10
        while True:  # a freed slot is taken again
            try:
                assert httpx.get(url + "/healthz").status_code == 200
                break
            except (httpx.TransportError, AssertionError):
                assert time.monotonic() < deadline
                time.sleep(0.05)
        for sock in held:
            sock.close()


def rss_anon_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise AssertionError("no RssAnon")


def test_unfinished_huge_headers_keep_the_worker_small(data):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "diemthi", "serve", "--data-dir", str(data),
                             "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        get_when_up(url + "/healthz", proc)
        before = rss_anon_kb(proc.pid)
        socks = [connect(url) for _ in range(10)]
        senders = [threading.Thread(target=send_quietly, args=(
            s, b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 5_000_000)) for s in socks]
        for t in senders:
            t.start()
        answers = [read_answer(s) for s in socks]
        for t in senders:
            t.join()
        assert all(a.startswith(b"HTTP/1.1 431") for a in answers)
        grown_mb = (rss_anon_kb(proc.pid) - before) / 1024
        assert grown_mb < 20, f"the worker grew by {grown_mb:.0f} MiB"
        for s in socks:
            s.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_worker_processes_keep_the_limits(data):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "diemthi", "serve", "--data-dir", str(data),
                             "--port", str(port), "--workers", "2", "--max-header-bytes",
                             "1000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        assert get_when_up(url + "/healthz", proc).status_code == 200
        for _ in range(4):  # whichever worker takes the connection
            r = httpx.get(url + "/healthz", headers={"x-pad": "a" * 1200})
            assert r.status_code == 431 and r.json()["error"]["code"] == "headers_too_large"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
