"""The lookup's hot path through the real server (our protocol, ScoresFirst before
Starlette): what it answers must be what the Starlette route would, errors included."""

import os
import socket

import httpx
import orjson
import pytest

from diemthi import server, store
from diemthi.app import create_app
from diemthi.importer import import_files
from diemthi.settings import load
from tests.conftest import write
from tests.servers import LiveServer, free_port


@pytest.fixture
def data(data_dir, tmp_path):
    rows = "".join(f"01{i:06d},{i % 10},5\n" for i in range(1, 2001))
    import_files(data_dir, 2026, [write(tmp_path / "a.csv", "sbd,toan,ngu_van\n" + rows)],
                 activate=True)
    return data_dir


def serve(data_dir, **settings):
    s = load({"data_dir": str(data_dir), "port": free_port(), **settings}, environ={})
    return LiveServer(None, config=server.config(s, create_app(s), log_level="warning"))


def scores_requests(metrics: str, status: int) -> float:
    for line in metrics.splitlines():
        if line.startswith(f'diemthi_http_requests_total{{route="/v1/scores/{{sbd}}",'
                           f'status="{status}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_an_unexpected_error_is_the_json_500_and_counted(data, caplog):
    with serve(data) as url, httpx.Client(base_url=url) as c:
        assert c.get("/v1/scores/01000001").status_code == 200
        # the disk goes bad under a served snapshot: its table's pages read as zeros
        path = store.snapshot_path(data, store.active_ids(data)[2026])
        with open(path, "r+b") as fh:
            fh.seek(4096)
            fh.write(bytes(os.path.getsize(path) - 4096))
        r = c.get("/v1/scores/01001999")
        assert r.status_code == 500
        assert r.json()["error"]["code"] == "internal"
        assert r.headers["content-type"] == "application/json"
        text = c.get("/metrics").text
        assert scores_requests(text, 500) == 1 and scores_requests(text, 200) == 1
    assert any("lookup of /v1/scores/01001999 failed" in m for m in caplog.messages)


def test_other_shapes_and_methods_get_what_starlette_says(data):
    with serve(data) as url, httpx.Client(base_url=url) as c:
        for path in ("/v1/scores/", "/v1/scores/01000001/x", "/v1/scores//01000001"):
            r = c.get(path)
            assert r.status_code == 404 and r.json()["error"]["code"] == "no_route", path
        r = c.post("/v1/scores/01000001")
        assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
        assert c.get("/v1/scores/0100000x").json()["error"]["code"] == "invalid_sbd"
        text = c.get("/metrics").text
        assert scores_requests(text, 400) == 1  # counted once, not by two layers


def read_response(sock: socket.socket, buffered: bytearray, head_only: bool = False) -> bytes:
    """One HTTP/1.1 response off a keep-alive connection (Content-Length framed)."""
    while b"\r\n\r\n" not in buffered:
        chunk = sock.recv(65536)
        assert chunk, "the server closed instead of answering"
        buffered += chunk
    head, _, _ = bytes(buffered).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    status = int(head.split()[1])
    if head_only or status in (204, 304):
        length = 0
    total = len(head) + 4 + length
    while len(buffered) < total:
        chunk = sock.recv(65536)
        assert chunk, "the server closed mid-response"
        buffered += chunk
    answer = bytes(buffered[:total])
    del buffered[:total]
    return answer


def test_every_kind_of_response_arrives_whole_on_one_connection(data):
    """Head and body leave in one send (server.OneSend): a HEAD (no body write at all),
    a 304 (an empty one), a page, and pipelined requests still arrive whole and in
    order on one keep-alive connection."""
    with serve(data) as url, httpx.Client(base_url=url) as c:
        etag = c.get("/v1/scores/01000001").headers["etag"]
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            buffered = bytearray()
            requests = [
                (b"GET /v1/scores/01000001 HTTP/1.1\r\nHost: x\r\n\r\n", False),
                (b"HEAD /v1/scores/01000001 HTTP/1.1\r\nHost: x\r\n\r\n", True),
                (b"GET /v1/scores/01000001 HTTP/1.1\r\nHost: x\r\nIf-None-Match: "
                 + etag.encode() + b"\r\n\r\n", False),
                (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", False),  # a page: kilobytes
                (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", False),
            ]
            for request, head_only in requests:  # one at a time
                sock.sendall(request)
                answer = read_response(sock, buffered, head_only)
                assert answer.startswith(b"HTTP/1.1 "), answer[:40]
            one_by_one = []
            sock.sendall(b"".join(r for r, _ in requests))  # all at once: pipelined
            for _, head_only in requests:
                one_by_one.append(read_response(sock, buffered, head_only))
        statuses = [int(a.split()[1]) for a in one_by_one]
        assert statuses == [200, 200, 304, 200, 200]
        assert orjson.loads(one_by_one[0].partition(b"\r\n\r\n")[2])["sbd"] == "01000001"
        assert one_by_one[1].endswith(b"\r\n\r\n")  # HEAD: the head alone
        assert b"server:" not in one_by_one[0].lower()


class Recorder:
    """Stands for the socket transport: what was written, in how many writes."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> str:
        return f"extra {name}"


def test_one_send_joins_head_and_body_and_passes_the_rest():
    t = Recorder()
    out = server.OneSend(t)  # type: ignore[arg-type]
    out.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # before the head: straight through
    out.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n")
    assert t.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    out.write(b"body")
    out.write(b"more")  # later chunks: straight through
    assert t.writes[1:] == [b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nbody", b"more"]
    assert out.get_extra_info("peername") == "extra peername"
    t2 = Recorder()
    held = server.OneSend(t2)  # type: ignore[arg-type]
    held.write(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")
    held.close()  # an app that gave up after the head: what is held goes first
    assert t2.writes == [b"HTTP/1.1 500 Internal Server Error\r\n\r\n"] and t2.closed


@pytest.mark.parametrize("query", [b"year=2025", b"year=20%35", b"year=2+25", b"year=",
                                   b"x=1&year=2024&year=2025", b"year=abcd", b"year=2025&",
                                   b"yea=2025", b"year=%32025"])
def test_the_year_is_read_as_parse_qs_reads_it(query):
    from urllib.parse import parse_qs

    from diemthi.scores import year_asked
    years = parse_qs(query.decode("latin-1")).get("year")
    assert year_asked(query) == (years[-1] if years else None)
