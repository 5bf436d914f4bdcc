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
from tests.servers import LiveServer, free_port, get_when_up

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
    again = served.get("/v1/scores/01000001")  # read again (and now cached): same bytes
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
    assert served.get("/v1/scores/01000001", headers={"If-None-Match": "W/" + etag}
                      ).status_code == 304
    for not_a_match in (f"xx{etag}yy", etag[:-1], f'"a" {etag}', etag.strip('"')):
        r = served.get("/v1/scores/01000001", headers={"If-None-Match": not_a_match})
        assert r.status_code == 200, not_a_match
    assert served.get("/v1/scores/01000001", headers={"If-None-Match": "*"}).status_code == 304
    r = served.get("/v1/scores/01999999", headers={"If-None-Match": "*"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    unknown_etag = served.get("/v1/scores/01999999").headers["etag"]
    r = served.get("/v1/scores/01999999", headers={"If-None-Match": unknown_etag})
    assert r.status_code == 404  # a conditional applies to a 2xx only
    r = served.head("/v1/scores/01000001")
    assert r.status_code == 200 and r.content == b"" and int(r.headers["content-length"]) > 100


@pytest.mark.parametrize("path,status,code", [
    ("/v1/scores/0100000", 400, "invalid_sbd"), ("/v1/scores/010000011", 400, "invalid_sbd"),
    ("/v1/scores/0100000a", 400, "invalid_sbd"), ("/v1/scores/%D9%A0%D9%A1000001", 400,
                                                  "invalid_sbd"),
    ("/v1/scores/01000001?year=26", 400, "invalid_year"),
    ("/v1/scores/01000001?year=0000", 400, "invalid_year"),
    ("/v1/scores/01000001?year=9999", 400, "invalid_year"),
    ("/v1/scores/01000001/", 404, "no_route"), ("/healthz/", 404, "no_route"),
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
    for _ in range(3):  # cached from its second read (the doorkeeper), a hit the third
        served.get("/v1/scores/01000001")
    served.get("/v1/scores/01999999")
    text = served.get("/metrics").text
    assert 'diemthi_http_requests_total{route="/v1/scores/{sbd}",status="200"} 3.0' in text
    assert 'diemthi_http_requests_total{route="/v1/scores/{sbd}",status="404"} 1.0' in text
    assert 'diemthi_http_request_duration_seconds_bucket{le="+Inf",route="/v1/scores/{sbd}"} 4.0' in text
    assert "diemthi_cache_hits_total 1.0" in text and "diemthi_cache_misses_total 3.0" in text
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
        r = get_when_up(f"http://127.0.0.1:{port}/v1/scores/01000001", proc)
        assert r.status_code == 200 and r.json()["scores"]["toan"] == 5.0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_a_trailing_slash_never_redirects_to_the_host_header(served):
    r = served.get("/v1/scores/01000001/", headers={"Host": "evil.example"})
    assert r.status_code == 404 and "location" not in r.headers
    assert r.json()["error"]["code"] == "no_route"


def test_the_exam_year_is_explicit_and_never_falls_back(data_dir, tmp_path):
    publish(data_dir, tmp_path, "01000001,5,5,,,,\n", year=2025)
    publish(data_dir, tmp_path, "01000001,9,9,,,,\n", year=2026, name="b")
    store.activate(data_dir, store.active_ids(data_dir)[2025])
    (data_dir / "active" / "2026").unlink()  # 2026 imported, not activated
    with LiveServer(create_app(load({"data_dir": str(data_dir), "year": "2026"}))) as url:
        r = httpx.get(url + "/v1/scores/01000001")
        assert r.status_code == 404 and r.json()["error"]["code"] == "year_not_found"
        assert httpx.get(url + "/v1/scores/01000001?year=2025").json()["year"] == 2025
        assert httpx.get(url + "/readyz").status_code == 503
    with LiveServer(create_app(load({"data_dir": str(data_dir)}))) as url:
        assert httpx.get(url + "/v1/scores/01000001").json()["year"] == 2025  # latest active


def test_this_year_waits_for_its_release_while_last_year_stays_open(data_dir, tmp_path):
    publish(data_dir, tmp_path, "01000001,5,5,,,,\n", year=2025)
    new = publish(data_dir, tmp_path, "01000001,9,9,,,,\n", year=2026, name="b")
    later = datetime.now(timezone.utc) + timedelta(hours=2)
    store.activate(data_dir, new, later)
    with LiveServer(create_app(load({"data_dir": str(data_dir)}))) as url:
        r = httpx.get(url + "/v1/scores/01000001")
        assert r.status_code == 403 and r.json()["error"]["code"] == "not_published"
        assert r.json()["error"]["release_at"] == later.isoformat()
        assert httpx.get(url + "/v1/scores/01000001?year=2025").json()["scores"]["toan"] == 5.0
        ready = httpx.get(url + "/readyz").json()
        assert ready["year"] == 2026 and ready["years"]["2026"]["published"] is False
        assert ready["years"]["2025"]["published"] is True


def test_an_activated_year_that_cannot_open_gets_no_other_years_data(data_dir, tmp_path):
    publish(data_dir, tmp_path, "01000001,5,5,,,,\n", year=2025)
    (store.snapshots_dir(data_dir) / "2026-broken.sqlite").write_bytes(b"not sqlite" * 50)
    (data_dir / "active" / "2026").write_text("2026-broken\n")
    with LiveServer(create_app(load({"data_dir": str(data_dir)}))) as url:
        r = httpx.get(url + "/v1/scores/01000001")
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
        ready = httpx.get(url + "/readyz")
        assert ready.status_code == 503
        assert any("2026-broken" in p for p in ready.json()["error"]["problems"])


def test_readyz_and_metrics_say_when_the_watcher_cannot_follow(data_dir, tmp_path):
    first = publish(data_dir, tmp_path, "01000001,5,5,,,,\n")
    app = create_app(load({"data_dir": str(data_dir), "reload_interval": "0.05s"}))
    with LiveServer(app) as url, httpx.Client(base_url=url) as c:
        assert c.get("/readyz").status_code == 200
        store.pointer_path(data_dir, 2026).write_bytes(b"\xff\xfe not utf-8")
        deadline = time.monotonic() + 10
        while c.get("/readyz").status_code != 503:
            assert time.monotonic() < deadline, "/readyz never said it"
            time.sleep(0.05)
        assert c.get("/v1/scores/01000001").json()["scores"]["toan"] == 5.0  # still served
        metric = [line for line in c.get("/metrics").text.splitlines()
                  if line.startswith("diemthi_watch_errors_total")]
        assert metric and float(metric[0].split()[1]) >= 1
        second = publish(data_dir, tmp_path, "01000001,9,9,,,,\n", name="again")
        while c.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline + 10, "the next activation was never taken"
            time.sleep(0.05)
        assert c.get("/readyz").json()["years"]["2026"]["snapshot"] == second != first


def test_serve_says_when_the_data_dir_does_not_exist(tmp_path):
    port = free_port()
    missing = tmp_path / "nonexistent"
    proc = subprocess.Popen([sys.executable, "-m", "diemthi", "serve", "--data-dir",
                             str(missing), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        r = get_when_up(f"http://127.0.0.1:{port}/readyz", proc)
        assert r.status_code == 503 and any(str(missing) in p
                                            for p in r.json()["error"]["problems"])
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30)[0]
    assert f"the data dir {missing} does not exist" in output
