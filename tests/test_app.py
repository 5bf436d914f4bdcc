import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from diemthi import store
from diemthi.app import create_app
from diemthi.importer import import_files
from diemthi.settings import load
from tests.conftest import write
from tests.servers import LiveServer, free_port

HEADER = "sbd,toan,ngu_van,ngoai_ngu,vat_li,hoa_hoc,ma_ngoai_ngu\n"


def publish(data_dir: Path, tmp_path: Path, rows: str, year: int = 2026, name: str = "a") -> str:
    f = write(tmp_path / f"{name}-{year}.csv", HEADER + rows)
    return import_files(data_dir, year, [f], activate=True).snapshot_id


@pytest.fixture
def served(data_dir, tmp_path):
    publish(data_dir, tmp_path, "01000001,7.75,6.5,8.25,9,8.5,N1\n01000002,5,6,,,,\n")
    with LiveServer(create_app(load({"data_dir": str(data_dir), "reload_interval": 0.1}))) as url:
        with httpx.Client(base_url=url) as client:
            yield client


def test_found(served):
    r = served.get("/v1/scores/01000001")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {
        "sbd": "01000001", "year": 2026,
        "province": {"code": "01", "name": "Thành phố Hà Nội"},
        "scores": {"toan": 7.75, "ngu_van": 6.5, "ngoai_ngu": 8.25, "vat_li": 9.0, "hoa_hoc": 8.5},
        "foreign_language": {"code": "N1", "name": "Tiếng Anh"},
        "combinations": {"A00": 25.25, "A01": 25.0, "C01": 23.25, "D01": 22.5, "D07": 24.5},
        "ranks": {**{key: {"nation": {"higher": 0, "equal": 1, "of": 2, "source": "snapshot"},
                           "province": {"higher": 0, "equal": 1, "of": 2}}
                     for key in ("toan", "ngu_van")},
                  **{key: {"nation": {"higher": 0, "equal": 1, "of": 1, "source": "snapshot"},
                           "province": {"higher": 0, "equal": 1, "of": 1}}
                     for key in ("ngoai_ngu", "vat_li", "hoa_hoc", "A00", "A01", "C01", "D01",
                                 "D07")}}}
    assert r.headers["cache-control"] == "public, max-age=300"
    assert r.headers["etag"].startswith('"2026-') and r.headers["etag"].endswith('-01000001"')
    again = served.get("/v1/scores/01000001")  # now from the cache: same bytes
    assert again.content == r.content
    assert served.get("/v1/scores/01000002").json()["combinations"] == {}


def test_conditional_and_head(served):
    etag = served.get("/v1/scores/01000001").headers["etag"]
    r = served.get("/v1/scores/01000001", headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag
    r = served.get("/v1/scores/01000001", headers={"If-None-Match": f'"other", {etag}'})
    assert r.status_code == 304
    r = served.get("/v1/scores/01000001", headers={"If-None-Match": '"other"'})
    assert r.status_code == 200
    r = served.head("/v1/scores/01000001")
    assert r.status_code == 200 and r.content == b"" and int(r.headers["content-length"]) > 100


@pytest.mark.parametrize("path,status,code", [
    ("/v1/scores/0100000", 400, "invalid_sbd"), ("/v1/scores/010000011", 400, "invalid_sbd"),
    ("/v1/scores/0100000a", 400, "invalid_sbd"), ("/v1/scores/%D9%A0%D9%A1000001", 400,
                                                  "invalid_sbd"),
    ("/v1/scores/01000001?year=26", 400, "invalid_year"),
    ("/v1/scores/01000001?year=%00", 400, "invalid_year"),
    ("/v1/scores/01999999", 404, "not_found"), ("/v1/scores/01000001?year=2025", 404,
                                                "year_not_found"),
    ("/v1/scores/", 404, "no_route"), ("/nowhere", 404, "no_route"),
])
def test_errors_are_json_in_vietnamese(served, path, status, code):
    r = served.get(path)
    assert r.status_code == status
    error = r.json()["error"]
    assert error["code"] == code and error["message"]
    assert r.headers["content-type"] == "application/json"


def test_not_found_message(served):
    msg = served.get("/v1/scores/01999999").json()["error"]["message"]
    assert msg.startswith("Không tìm thấy thí sinh có số báo danh 01999999")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods(served, method):
    r = served.request(method, "/v1/scores/01000001")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_no_input_makes_a_5xx(served):
    import random
    rng = random.Random(4)
    paths = ["/v1/scores/" + "".join(rng.choice("0123456789%aZ/.-_~?=&;") for _ in range(n))
             for n in range(1, 30) for _ in range(6)]
    paths += ["/v1/scores/01000001?year=" + q for q in ["", "20266", "-202", "２０２６", "%FF"]]
    paths += ["/v1/scores/%FF%FE", "/v1/scores/..%2F..%2Fetc", "/v1/scores/" + "9" * 5000]
    for path in paths:
        r = served.get(path)
        assert r.status_code < 500, (path, r.status_code)


def test_health_ready_openapi_metrics(served):
    assert served.get("/healthz").json() == {"status": "ok"}
    ready = served.get("/readyz").json()
    assert ready["status"] == "ready" and ready["years"]["2026"]["rows"] == 2
    spec = served.get("/openapi.json").json()
    assert "/v1/scores/{sbd}" in spec["paths"]
    served.get("/v1/scores/01000001")
    served.get("/v1/scores/01000001")
    served.get("/v1/scores/01999999")
    text = served.get("/metrics").text
    assert 'diemthi_http_requests_total{route="/v1/scores/{sbd}",status="200"} 2.0' in text
    assert 'diemthi_http_requests_total{route="/v1/scores/{sbd}",status="404"} 1.0' in text
    assert 'diemthi_http_request_duration_seconds_bucket{le="+Inf",route="/v1/scores/{sbd}"} 3.0' in text
    assert "diemthi_cache_hits_total 1.0" in text and "diemthi_cache_misses_total 2.0" in text
    assert 'diemthi_snapshot_rows{year="2026"} 2.0' in text
    assert 'diemthi_snapshot_active{snapshot="2026-' in text


def test_not_ready_until_a_snapshot_is_activated(data_dir, tmp_path):
    app = create_app(load({"data_dir": str(data_dir), "reload_interval": 0.1}))
    with LiveServer(app) as url, httpx.Client(base_url=url) as client:
        assert client.get("/readyz").status_code == 503
        r = client.get("/v1/scores/01000001")
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
        publish(data_dir, tmp_path, "01000001,7,8,,,,\n")
        deadline = time.monotonic() + 10
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the activation was never picked up"
            time.sleep(0.05)
        assert client.get("/v1/scores/01000001").json()["scores"]["toan"] == 7.0


def test_switching_snapshots_under_load_fails_no_request(data_dir, tmp_path):
    old = publish(data_dir, tmp_path, "01000001,5,5,,,,\n01000002,6,6,,,,\n", name="old")
    app = create_app(load({"data_dir": str(data_dir), "reload_interval": 0.05}))
    with LiveServer(app) as url:
        statuses: list[int] = []
        stop = threading.Event()

        def hammer() -> None:
            with httpx.Client(base_url=url) as c:
                while not stop.is_set():
                    statuses.append(c.get("/v1/scores/01000001").status_code)

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        with httpx.Client(base_url=url) as c:
            before = c.get("/v1/scores/01000001")
            assert before.json()["scores"]["toan"] == 5.0
            new = publish(data_dir, tmp_path, "01000001,9,9,,,,\n", name="new")
            deadline = time.monotonic() + 10
            while c.get("/v1/scores/01000001").json()["scores"]["toan"] != 9.0:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            after = c.get("/v1/scores/01000001")
            assert after.headers["etag"] != before.headers["etag"] and new in after.headers["etag"]
            assert c.get("/v1/scores/01000002").status_code == 404  # not served from old cache
            store.activate(data_dir, old)  # rollback
            deadline = time.monotonic() + 10
            while c.get("/v1/scores/01000001").json()["scores"]["toan"] != 5.0:
                assert time.monotonic() < deadline
                time.sleep(0.02)
        stop.set()
        for t in threads:
            t.join()
    assert len(statuses) > 20 and set(statuses) == {200}


def test_years_side_by_side(data_dir, tmp_path):
    publish(data_dir, tmp_path, "01000001,5,5,,,,\n", year=2025)
    publish(data_dir, tmp_path, "01000001,9,9,,,,\n", year=2026)
    with LiveServer(create_app(load({"data_dir": str(data_dir)}))) as url:
        assert httpx.get(url + "/v1/scores/01000001").json()["year"] == 2026
        doc = httpx.get(url + "/v1/scores/01000001?year=2025").json()
        assert doc["year"] == 2025 and doc["scores"]["toan"] == 5.0
        assert doc["province"]["name"] == "Thành phố Hà Nội"


def test_release_embargo(data_dir, tmp_path):
    publish(data_dir, tmp_path, "01000001,5,5,,,,\n")
    later = datetime.now(timezone.utc) + timedelta(hours=2)
    app = create_app(load({"data_dir": str(data_dir), "release_at": later.isoformat()}))
    with LiveServer(app) as url:
        r = httpx.get(url + "/v1/scores/01000001")
        assert r.status_code == 403
        error = r.json()["error"]
        assert error["code"] == "not_published" and "chưa được công bố" in error["message"]
        local = later.astimezone(timezone(timedelta(hours=7)))
        assert local.strftime("%H:%M ngày %d/%m/%Y") in error["message"]
        assert r.headers["cache-control"] == "no-store" and int(r.headers["retry-after"]) > 7000
    earlier = datetime.now(timezone.utc) - timedelta(seconds=1)
    app = create_app(load({"data_dir": str(data_dir), "release_at": earlier.isoformat()}))
    with LiveServer(app) as url:
        assert httpx.get(url + "/v1/scores/01000001").status_code == 200


def test_rate_limit_per_client_behind_a_trusted_proxy(data_dir, tmp_path):
    publish(data_dir, tmp_path, "01000001,5,5,,,,\n")
    app = create_app(load({"data_dir": str(data_dir), "rate_limit": "0.01", "rate_burst": "2",
                           "trusted_proxies": "127.0.0.1/32"}))
    with LiveServer(app) as url, httpx.Client(base_url=url) as c:
        def get(client_ip: str) -> httpx.Response:
            return c.get("/v1/scores/01000001", headers={"X-Forwarded-For": f"{client_ip}, 127.0.0.1"})
        assert [get("203.0.113.1").status_code for _ in range(3)] == [200, 200, 429]
        r = get("203.0.113.1")
        assert r.json()["error"]["code"] == "rate_limited" and int(r.headers["retry-after"]) >= 1
        assert get("203.0.113.2").status_code == 200  # another student behind the same proxy


def test_rate_limit_ignores_forwarded_for_from_untrusted_peers(data_dir, tmp_path):
    publish(data_dir, tmp_path, "01000001,5,5,,,,\n")
    app = create_app(load({"data_dir": str(data_dir), "rate_limit": "0.01", "rate_burst": "1"}))
    with LiveServer(app) as url, httpx.Client(base_url=url) as c:
        codes = [c.get("/v1/scores/01000001", headers={"X-Forwarded-For": f"198.51.100.{i}"})
                 .status_code for i in range(3)]
        assert codes == [200, 429, 429]  # a forged header does not buy fresh buckets


def test_serve_command_with_workers_and_graceful_shutdown(data_dir, tmp_path):
    publish(data_dir, tmp_path, "01000001,5,5,,,,\n")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "diemthi", "serve", "--data-dir",
                             str(data_dir), "--port", str(port), "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/scores/01000001")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        assert r.status_code == 200 and r.json()["scores"]["toan"] == 5.0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
