"""deploy/nginx.conf, run by the real nginx (Debian's nginx-light) in front of the real app.

Each test gets its own nginx prefix in a temporary directory with a copy of deploy/ in
which exactly two things differ from the shipped files (``edge_prefix`` in
scripts/support.py, shared with scripts/bench_edge.py): the port it listens on and the
app's port, both free ports, since other test runs share the machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from diemthi.app import create_app
from diemthi.settings import load
from tests.conftest import ROOT
from tests.servers import LiveServer, free_port
from tests.test_app import publish

sys.path.insert(0, str(ROOT / "scripts"))
from support import edge_prefix  # noqa: E402
ROW = "{sbd},7.75,6.5,8.25,9,8.5,N1\n"
SCORES = "/v1/scores/{sbd}"


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is missing (make test installs nginx-light)")
        pytest.skip("NGINX IS NOT INSTALLED: apt-get install nginx-light (make test does)")
    return found


@contextlib.contextmanager
def edge(data_dir: Path, ports: dict | None = None,
         **settings: str) -> Iterator[tuple[httpx.Client, object]]:
    """The app on one free port, nginx with deploy/nginx.conf on another; a client of
    the edge and the app (whose metrics tell what reached it). ``ports``, when given, is
    filled with the HTTPS and port-80 servers' ports."""
    binary = nginx_binary()
    app = create_app(load({"data_dir": str(data_dir), "reload_interval": "0.1",
                           "trusted_proxies": "127.0.0.1/32", **settings}))
    with LiveServer(app) as app_url:
        port = free_port()
        https_port, http_port = free_port(), free_port()
        if ports is not None:
            ports.update(https=https_port, http=http_port)
        prefix = edge_prefix(port, int(app_url.rsplit(":", 1)[1]), https_port=https_port,
                             http_port=http_port)
        proc = subprocess.Popen([binary, "-p", str(prefix), "-c", "deploy/nginx.conf",
                                 "-g", "daemon off;"], stderr=subprocess.PIPE)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                deadline = time.monotonic() + 20
                while True:
                    assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore
                    try:
                        if client.get("/healthz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert time.monotonic() < deadline, "nginx did not answer"
                    time.sleep(0.05)
                yield client, app
        finally:
            proc.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            shutil.rmtree(prefix, ignore_errors=True)


def app_requests(app: object, status: int) -> int:
    return app.state.metrics.counts.get(("/v1/scores/{sbd}", status), 0)  # type: ignore


def test_the_shipped_config_passes_nginx_t():
    binary = nginx_binary()
    prefix = edge_prefix(8080, 8000, https_port=443, http_port=80)  # the shipped files
    try:
        assert (Path(prefix) / "deploy" / "nginx.conf").read_text() == \
            (ROOT / "deploy" / "nginx.conf").read_text()
        out = subprocess.run([binary, "-t", "-p", prefix, "-c", "deploy/nginx.conf"],
                             capture_output=True, text=True)
        assert out.returncode == 0 and "test is successful" in out.stderr, out.stderr
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def test_a_lookup_is_cached_at_the_edge_with_its_etag(data_dir, tmp_path):
    publish(data_dir, tmp_path, ROW.format(sbd="01000001"))
    with edge(data_dir) as (client, app):
        # stored from the second request on (proxy_cache_min_uses): a one-off is not kept
        first, second, third = (client.get(SCORES.format(sbd="01000001")) for _ in range(3))
        assert first.status_code == second.status_code == third.status_code == 200
        assert [r.headers["x-cache-status"] for r in (first, second, third)] \
            == ["MISS", "MISS", "HIT"]
        assert third.content == first.content and b'"toan":7.75' in third.content
        assert third.headers["etag"] == first.headers["etag"]
        assert third.headers["cache-control"] == "public, max-age=300"
        assert app_requests(app, 200) == 2  # the third never reached the app


def test_if_none_match_is_answered_304_cached_or_not(data_dir, tmp_path):
    publish(data_dir, tmp_path, ROW.format(sbd="01000001") + ROW.format(sbd="01000002"))
    with edge(data_dir) as (client, app):
        etag = client.get(SCORES.format(sbd="01000001")).headers["etag"]
        client.get(SCORES.format(sbd="01000001"))  # the second use is stored
        r = client.get(SCORES.format(sbd="01000001"), headers={"If-None-Match": etag})
        assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag
        assert r.headers["x-cache-status"] == "HIT" and app_requests(app, 200) == 2
        # never seen by the edge: the conditional request passes through to the app
        other = etag.replace("01000001", "01000002")
        r = client.get(SCORES.format(sbd="01000002"), headers={"If-None-Match": other})
        assert r.status_code == 304 and r.headers["etag"] == other
        r = client.get(SCORES.format(sbd="01000002"), headers={"If-None-Match": '"old"'})
        assert r.status_code == 200 and b'"sbd":"01000002"' in r.content


def test_the_embargo_is_never_cached(data_dir, tmp_path):
    publish(data_dir, tmp_path, ROW.format(sbd="01000001"))
    release = datetime.now(timezone.utc) + timedelta(seconds=3)
    with edge(data_dir, release_at=release.isoformat()) as (client, app):
        for _ in range(3):  # a response may be stored from the second request on
            r = client.get(SCORES.format(sbd="01000001"))
            assert r.status_code == 403 and r.json()["error"]["code"] == "not_published"
            assert r.headers["x-cache-status"] != "HIT"
        assert app_requests(app, 403) == 3  # each one asked the app
        deadline = time.monotonic() + 30
        while r.status_code == 403 and time.monotonic() < deadline:
            time.sleep(0.2)
            r = client.get(SCORES.format(sbd="01000001"))
        assert r.status_code == 200 and b'"toan":7.75' in r.content  # the first after release


def test_a_new_snapshot_shows_within_max_age(data_dir, tmp_path):
    publish(data_dir, tmp_path, ROW.format(sbd="01000001"))
    with edge(data_dir, max_age="1") as (client, app):
        old = client.get(SCORES.format(sbd="01000001"))
        client.get(SCORES.format(sbd="01000001"))  # the second use is stored
        assert client.get(SCORES.format(sbd="01000001")).headers["x-cache-status"] == "HIT"
        publish(data_dir, tmp_path, "01000001,1.5,6.5,8.25,9,8.5,N1\n", name="b")
        deadline = time.monotonic() + 30  # max-age 1 s plus the reload interval, with room
        new = old
        while new.content == old.content and time.monotonic() < deadline:
            time.sleep(0.2)
            new = client.get(SCORES.format(sbd="01000001"))
        assert b'"toan":1.5' in new.content and new.headers["etag"] != old.headers["etag"]


def test_one_client_is_limited_at_the_edge(data_dir, tmp_path):
    publish(data_dir, tmp_path, ROW.format(sbd="01000001"))
    with edge(data_dir) as (client, app):
        statuses = [client.get(SCORES.format(sbd="01000001")) for _ in range(300)]
        limited = [r for r in statuses if r.status_code == 429]
        assert limited, "300 requests at once from one address were all let through"
        assert {r.status_code for r in statuses} == {200, 429}
        r = limited[0]
        assert r.json()["error"]["code"] == "rate_limited" and r.headers["retry-after"] == "1"
        assert app_requests(app, 429) == 0  # nginx said it, the app never saw them


def test_the_app_sees_the_client_address_not_a_forged_one(data_dir, tmp_path):
    rows = "".join(ROW.format(sbd=f"01{i:06d}") for i in range(1, 11))
    publish(data_dir, tmp_path, rows)
    with edge(data_dir, rate_limit="0.01", rate_burst="3") as (client, app):
        answers = [client.get(SCORES.format(sbd=f"01{i:06d}"),
                              headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code
                   for i in range(1, 11)]
        # one client behind the proxy, whatever it claims: the app's own limit applies
        assert answers[:3] == [200] * 3 and set(answers[3:]) == {429}
        for _ in range(2):  # a response may be stored from the second request on
            r = client.get(SCORES.format(sbd="01000009"))
            assert r.status_code == 429 and r.headers["x-cache-status"] != "HIT"


def test_an_expired_entry_is_served_stale_while_it_is_revalidated(data_dir, tmp_path):
    publish(data_dir, tmp_path, ROW.format(sbd="01000001"))
    with edge(data_dir, max_age="1") as (client, app):
        first = client.get(SCORES.format(sbd="01000001"))
        assert client.get(SCORES.format(sbd="01000001")).content == first.content  # stored
        seen: set[str] = set()
        deadline = time.monotonic() + 30
        while not {"STALE", "UPDATING"} & seen or app_requests(app, 304) == 0:
            assert time.monotonic() < deadline, seen
            time.sleep(0.2)
            r = client.get(SCORES.format(sbd="01000001"))
            assert r.status_code == 200 and r.content == first.content
            seen.add(r.headers["x-cache-status"])
        # nobody waited for the refresh, and the refresh asked the app If-None-Match
        assert app_requests(app, 200) == 2


def test_https_serves_the_lookup_with_hsts_and_port_80_redirects(data_dir, tmp_path):
    """The TLS server block as shipped, with a self-signed certificate made for the test."""
    publish(data_dir, tmp_path, ROW.format(sbd="01000001"))
    ports: dict = {}
    with edge(data_dir, ports) as (client, app):
        plain = client.get(SCORES.format(sbd="01000001"))
        assert plain.status_code == 200 and "strict-transport-security" not in plain.headers
        with httpx.Client(base_url=f"https://127.0.0.1:{ports['https']}", verify=False,
                          timeout=10) as tls:
            r = tls.get(SCORES.format(sbd="01000001"))
            assert r.status_code == 200 and r.json()["sbd"] == "01000001"
            assert r.headers["strict-transport-security"] == "max-age=31536000"
            assert r.content == plain.content  # the same body, the same cache
            assert tls.get("/healthz").headers["strict-transport-security"]
        moved = httpx.get(f"http://127.0.0.1:{ports['http']}/v1/scores/01000001?year=2026",
                          follow_redirects=False)
        assert moved.status_code == 301
        # $host carries no port: the redirect goes to the public 443, path and query kept
        assert moved.headers["location"] == "https://127.0.0.1/v1/scores/01000001?year=2026"
        assert app_requests(app, 200) >= 1
