"""CORS for the read-only routes: off by default, listed origins only, never elsewhere."""

from __future__ import annotations

from contextlib import contextmanager

import httpx
import pytest

from diemthi.app import create_app
from diemthi.importer import import_files
from diemthi.settings import SettingsError, load
from tests.conftest import write
from tests.servers import LiveServer

ZALO = "https://h5.zdn.vn"
ZALO_APP = "zbrowser://h5.zdn.vn"
OTHER = "https://evil.example"


@pytest.fixture
def data(data_dir, tmp_path):
    f = write(tmp_path / "a.csv", "sbd,toan,ngu_van\n01000001,7.75,6.5\n")
    import_files(data_dir, 2026, [f], activate=True)
    return data_dir


@contextmanager
def client(data_dir, **settings):
    with LiveServer(create_app(load({"data_dir": str(data_dir), **settings}))) as url:
        with httpx.Client(base_url=url) as c:
            yield c


def test_off_by_default(data):
    with client(data) as c:
        r = c.get("/v1/scores/01000001", headers={"Origin": ZALO})
        assert r.status_code == 200
        assert "access-control-allow-origin" not in r.headers
        r = c.options("/v1/scores/01000001",
                      headers={"Origin": ZALO, "Access-Control-Request-Method": "GET"})
        assert "access-control-allow-origin" not in r.headers


def test_listed_origins_may_read_scores(data):
    with client(data, cors_origins=f"{ZALO}, {ZALO_APP}") as c:
        for origin in (ZALO, ZALO_APP):
            r = c.get("/v1/scores/01000001", headers={"Origin": origin})
            assert r.status_code == 200 and r.json()["scores"]["toan"] == 7.75
            assert r.headers["access-control-allow-origin"] == origin
            assert "origin" in r.headers["vary"].lower()  # shared caches keep one per origin
            exposed = r.headers["access-control-expose-headers"].lower()
            assert "retry-after" in exposed and "etag" in exposed
        # errors of a read-only route are readable too, so the app can say what went wrong
        r = c.get("/v1/scores/01999999", headers={"Origin": ZALO})
        assert r.status_code == 404 and r.headers["access-control-allow-origin"] == ZALO
        r = c.get("/v1/stats/2026", headers={"Origin": ZALO})
        assert r.headers["access-control-allow-origin"] == ZALO
        pre = c.options("/v1/scores/01000001", headers={
            "Origin": ZALO, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "if-none-match"})
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == ZALO
        assert "GET" in pre.headers["access-control-allow-methods"]


def test_unlisted_origin_and_other_routes_get_nothing(data):
    with client(data, cors_origins=ZALO) as c:
        r = c.get("/v1/scores/01000001", headers={"Origin": OTHER})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
        pre = c.options("/v1/scores/01000001",
                        headers={"Origin": OTHER, "Access-Control-Request-Method": "GET"})
        assert pre.status_code == 400 and "access-control-allow-origin" not in pre.headers
        pre = c.options("/v1/scores/01000001",
                        headers={"Origin": ZALO, "Access-Control-Request-Method": "POST"})
        assert pre.status_code == 400
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            r = c.get(path, headers={"Origin": ZALO})
            assert "access-control-allow-origin" not in r.headers, path
        r = c.options("/healthz", headers={"Origin": ZALO, "Access-Control-Request-Method": "GET"})
        assert r.status_code == 405 and "access-control-allow-origin" not in r.headers


def test_origins_from_the_environment():
    s = load(environ={"DIEMTHI_CORS_ORIGINS": f"{ZALO},{ZALO_APP},http://127.0.0.1:5173"})
    assert s.cors_origins == (ZALO, ZALO_APP, "http://127.0.0.1:5173")
    assert load(environ={}).cors_origins == ()
    assert load(environ={"DIEMTHI_CORS_ORIGINS": ""}).cors_origins == ()


@pytest.mark.parametrize("bad", ["https://h5.zdn.vn/", "h5.zdn.vn", "https://h5.zdn.vn/zapps/1",
                                 "https://H5.zdn.vn"])
def test_an_origin_that_could_never_match_is_refused(bad):
    with pytest.raises(SettingsError, match="DIEMTHI_CORS_ORIGINS"):
        load(environ={"DIEMTHI_CORS_ORIGINS": bad})
