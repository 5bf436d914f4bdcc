"""The HTML pages through the real server on loopback: statuses, caching, what they say."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from diemthi.app import create_app
from diemthi.importer import import_files
from diemthi.settings import load
from tests.conftest import write
from tests.servers import LiveServer

HEADER = "sbd,toan,ngu_van,ngoai_ngu,vat_li,hoa_hoc,ma_ngoai_ngu\n"
ROWS = "01000001,7.75,6.5,8.25,9,8.5,N1\n01000002,5,6,,,,\n79000003,10,1,,,,\n"


def publish(data_dir: Path, tmp_path: Path, rows: str, year: int = 2026) -> str:
    f = write(tmp_path / f"scores-{year}.csv", HEADER + rows)
    return import_files(data_dir, year, [f], activate=True).snapshot_id


def serve(data_dir: Path, **settings: str) -> LiveServer:
    return LiveServer(create_app(load({"data_dir": str(data_dir), "reload_interval": 0.1,
                                       **settings})))


@pytest.fixture
def site(data_dir, tmp_path):
    publish(data_dir, tmp_path, ROWS)
    with serve(data_dir) as url:
        with httpx.Client(base_url=url) as client:
            yield client


def text_of(html: str) -> str:
    """The visible text, tags dropped and spaces folded, for asserting on sentences."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_home_has_the_form(site):
    r = site.get("/")
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    html = r.text
    assert '<html lang="vi">' in html
    assert '<form class="lookup" action="/tra-cuu" method="get">' in html
    assert re.search(r'<input id="sbd" name="sbd"[^>]*inputmode="numeric"', html)
    assert '<label for="sbd">' in html
    assert 'name="year"' not in html  # one year served: no choice to make
    assert "Tra cứu điểm thi" in text_of(html)


def test_security_headers_and_no_foreign_origin(site):
    for path in ("/", "/tra-cuu/01000001", "/tra-cuu/01999999", "/pho-diem"):
        r = site.get(path)
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        # every link, script and stylesheet is ours (relative), none from another origin
        for url in re.findall(r'(?:href|src|action)="([^"]*)"', r.text):
            assert url.startswith("/") and not url.startswith("//"), url
        assert "<style" not in r.text and " style=" not in r.text  # CSP forbids inline style


def test_static_assets_are_hashed_and_cached_for_a_year(site):
    html = site.get("/").text
    css = re.search(r'href="(/static/site\.[0-9a-f]{10}\.css)"', html).group(1)
    r = site.get(css)
    assert r.status_code == 200 and r.headers["content-type"] == "text/css; charset=utf-8"
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert b".chart .mine" in r.content
    assert site.get("/static/site.css").status_code == 404  # only hashed names are served
    assert site.get("/static/site.0000000000.css").status_code == 404


def test_form_redirects_to_the_result_page(site):
    r = site.get("/tra-cuu", params={"sbd": "01000001"})
    assert r.status_code == 303 and r.headers["location"] == "/tra-cuu/01000001"
    r = site.get("/tra-cuu", params={"sbd": " 0100 0001 ", "year": "2026"})
    assert r.status_code == 303 and r.headers["location"] == "/tra-cuu/01000001?year=2026"
    r = site.get("/tra-cuu", params={"sbd": "01000001", "year": ""})
    assert r.headers["location"] == "/tra-cuu/01000001"
    r = site.get("/tra-cuu", params={"sbd": "12ab"})
    assert r.status_code == 400 and "Số báo danh phải gồm đúng 8 chữ số" in r.text
    assert 'value="12ab"' in r.text  # the form keeps what was typed
    assert site.get("/tra-cuu", params={"sbd": "01000001", "year": "26"}).status_code == 400
    assert site.get("/tra-cuu").status_code == 400


def test_result_page_shows_what_the_api_says(site):
    r = site.get("/tra-cuu/01000001")
    assert r.status_code == 200
    text = text_of(r.text)
    for expected in ("01000001", "Thành phố Hà Nội", "2026", "Toán 7,75", "Ngữ văn 6,5",
                     "Ngoại ngữ (Tiếng Anh) 8,25", "Vật lí 9", "Hóa học 8,5",
                     "A00 Toán, Vật lí, Hóa học hạng 1 / 1 trong tỉnh 25,25",
                     "D01 Toán, Ngữ văn, Ngoại ngữ hạng 1 / 1 trong tỉnh 22,5"):
        assert expected in text, expected
    # ranks: toán 7,75 is first of the two in Hà Nội, second of three in the snapshot
    assert "Toán 7,75 hạng 1 / 2 trong tỉnh top 66,7% cả nước" in text
    assert "Ngữ văn 6,5 hạng 1 / 2 trong tỉnh top 33,4% cả nước" in text  # 1/3 rounded up
    # a chart per subject, the candidate's bar marked, named for screen readers
    charts = re.findall(r'<svg class="chart"[^>]*aria-label="([^"]*)"', r.text)
    assert len(charts) == 5
    assert "Phổ điểm môn Toán cả nước: 3 thí sinh; điểm của bạn 7,75" in charts
    assert r.text.count('<path class="mine"') == 5
    api = site.get("/v1/scores/01000001").json()
    assert len(re.findall(r'<li class="subject">', r.text)) == len(api["scores"])
    assert len(re.findall(r'<tr><th scope="row">', r.text)) == len(api["combinations"])
    assert '<meta name="robots" content="noindex">' in r.text
    assert '<meta property="og:title" content="Điểm thi THPT 2026 – SBD 01000001">' in r.text
    few = text_of(site.get("/tra-cuu/01000002").text)
    assert "Toán 5" in few and "Chưa đủ môn để tính tổng điểm tổ hợp" in few


def test_result_page_caching_follows_the_api(site):
    plain = {"Accept-Encoding": "identity"}
    r = site.get("/tra-cuu/01000001", headers=plain)
    api = site.get("/v1/scores/01000001")
    assert r.headers["cache-control"] == api.headers["cache-control"] == "public, max-age=300"
    assert r.headers["vary"] == "accept-encoding"
    etag = r.headers["etag"]
    same_snapshot = api.headers["etag"][:-1].rsplit("-", 1)[0]
    assert etag.startswith(same_snapshot) and etag != api.headers["etag"]
    assert site.get("/tra-cuu/01000001", headers=plain).content == r.content  # cached bytes
    again = site.get("/tra-cuu/01000001", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert site.get("/tra-cuu/01000001", headers={"If-None-Match": '"x"'}).status_code == 200
    head = site.head("/tra-cuu/01000001", headers=plain)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(r.content)


def test_a_page_asked_again_is_sent_gzipped(site):
    first = site.get("/tra-cuu/01000002", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in first.headers  # as rendered: compressing costs as much
    second = site.get("/tra-cuu/01000002", headers={"Accept-Encoding": "gzip, br"})
    assert second.headers["content-encoding"] == "gzip"
    assert int(second.headers["content-length"]) < len(first.content) / 2
    assert second.content == first.content  # httpx decoded it: the same page
    assert second.headers["etag"] == first.headers["etag"][:-1] + '.gz"'
    gone = site.get("/tra-cuu/01000002", headers={"If-None-Match": second.headers["etag"]})
    assert gone.status_code == 304
    plain = site.get("/tra-cuu/01000002", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == first.content


@pytest.mark.parametrize("path,status,says", [
    ("/tra-cuu/01999999", 404, "Không tìm thấy"),
    ("/tra-cuu/0100000", 400, "Số báo danh phải gồm đúng 8 chữ số"),
    ("/tra-cuu/%D9%A0%D9%A1000001", 400, "Số báo danh phải gồm đúng 8 chữ số"),
    ("/tra-cuu/01000001?year=2025", 404, "Chưa có điểm thi năm 2025"),
    ("/tra-cuu/01000001?year=20x6", 400, "Năm thi không hợp lệ"),
    ("/pho-diem?year=2025", 404, "Chưa có điểm thi năm 2025"),
    ("/pho-diem?province=abc", 400, "Mã tỉnh, thành phố gồm 2 chữ số"),
])
def test_error_pages_have_the_api_status(site, path, status, says):
    r = site.get(path)
    assert r.status_code == status and r.headers["content-type"].startswith("text/html")
    assert says in text_of(r.text)
    assert '<meta name="robots" content="noindex">' in r.text
    api_path = path.replace("/tra-cuu/", "/v1/scores/")
    if api_path.startswith("/v1/"):
        assert site.get(api_path).status_code == status


def test_unknown_sbd_says_how_to_check(site):
    text = text_of(site.get("/tra-cuu/01999999").text)
    assert "Không tìm thấy" in text and "giấy báo dự thi" in text and "2 chữ số đầu" in text


def test_embargo_page_with_release_time_and_countdown(data_dir, tmp_path):
    publish(data_dir, tmp_path, ROWS)
    later = datetime.now(timezone.utc) + timedelta(hours=2)
    with serve(data_dir, release_at=later.isoformat()) as url:
        r = httpx.get(url + "/tra-cuu/01000001")
        api = httpx.get(url + "/v1/scores/01000001")
        home = httpx.get(url + "/")
    assert r.status_code == api.status_code == 403
    assert r.headers["cache-control"] == "no-store" and int(r.headers["retry-after"]) > 7000
    when = later.astimezone(timezone(timedelta(hours=7))).strftime("%H:%M ngày %d/%m/%Y")
    assert when in text_of(r.text) and "chưa được công bố" in text_of(r.text)
    assert f'data-release="{later.isoformat()}"' in r.text  # what the countdown counts to
    assert re.search(r'<script src="/static/countdown\.[0-9a-f]{10}\.js" defer>', r.text)
    assert home.status_code == 200 and when in text_of(home.text)


def test_no_snapshot_is_503(data_dir):
    with serve(data_dir) as url:
        r = httpx.get(url + "/tra-cuu/01000001")
        assert r.status_code == 503 and r.headers["retry-after"] == "10"
        assert "đang nạp dữ liệu" in text_of(r.text)
        assert httpx.get(url + "/pho-diem").status_code == 503
        assert httpx.get(url + "/").status_code == 200


def test_years_to_choose_from(data_dir, tmp_path):
    publish(data_dir, tmp_path, "01000001,5,5,,,,\n", year=2025)
    publish(data_dir, tmp_path, "01000001,9,9,,,,\n", year=2026)
    with serve(data_dir) as url:
        home = httpx.get(url + "/").text
        assert re.search(r'<select id="year" name="year">\s*<option value="2026" selected>'
                         r'2026</option>\s*<option value="2025">2025</option>', home)
        assert "Toán 9" in text_of(httpx.get(url + "/tra-cuu/01000001").text)
        old = text_of(httpx.get(url + "/tra-cuu/01000001?year=2025").text)
        assert "Toán 5" in old and "năm 2025" in old and "tương đương" not in old
        # last year's equivalent: the only 2025 score, 5, had nobody above it
        now = text_of(httpx.get(url + "/tra-cuu/01000001").text)
        assert "Toán 9 hạng 1 / 1 trong tỉnh năm 2025 tương đương 5 điểm" in now


def test_public_url_makes_absolute_links(data_dir, tmp_path):
    publish(data_dir, tmp_path, ROWS)
    with serve(data_dir, public_url="https://diemthi.example.vn/") as url:
        html = httpx.get(url + "/tra-cuu/01000001").text
    assert '<meta property="og:url" content="https://diemthi.example.vn/tra-cuu/01000001">' in html
    assert '<link rel="canonical" href="https://diemthi.example.vn/tra-cuu/01000001">' in html


def test_pages_are_cached_per_snapshot(data_dir, tmp_path):
    publish(data_dir, tmp_path, ROWS)
    with serve(data_dir) as url:
        first = httpx.get(url + "/tra-cuu/01000001")
        assert "Toán 7,75" in text_of(first.text)
        publish(data_dir, tmp_path, ROWS.replace("7.75", "8.5"))
        deadline = datetime.now() + timedelta(seconds=20)
        while True:  # the watcher picks up the new activation: a new page, a new ETag
            r = httpx.get(url + "/tra-cuu/01000001")
            if "Toán 8,5" in text_of(r.text) or datetime.now() > deadline:
                break
            time.sleep(0.05)
        assert "Toán 8,5" in text_of(r.text) and r.headers["etag"] != first.headers["etag"]
        stale = httpx.get(url + "/tra-cuu/01000001",
                          headers={"If-None-Match": first.headers["etag"]})
        assert stale.status_code == 200


def test_pho_diem_page(site):
    r = site.get("/pho-diem")
    assert r.status_code == 200
    assert r.headers["etag"] and r.headers["cache-control"] == "public, max-age=300"
    text = text_of(r.text)
    # toán: 7,75, 5 and 10; the mean 7,58; the lower median 7,75; one 10, nobody at 1 or below
    assert "Toán 3 thí sinh · trung bình 7,58 · trung vị 7,75 · điểm ≤ 1: 0 · điểm 10: 1" in text
    assert "Ngữ văn 3 thí sinh" in text and "điểm ≤ 1: 1" in text
    assert "A00: Toán, Vật lí, Hóa học 1 thí sinh" in text
    options = re.findall(r'<option value="([^"]*)"( selected)?>([^<]*)</option>', r.text)
    assert [(v, label) for v, _, label in options] == [
        ("", "Tất cả thí sinh (cả nước)"), ("01", "Thành phố Hà Nội"),
        ("79", "Thành phố Hồ Chí Minh")]
    r = site.get("/pho-diem", params={"province": "79"})
    assert r.status_code == 200
    assert "Toán 1 thí sinh · trung bình 10 · trung vị 10" in text_of(r.text)
    assert '<option value="79" selected>' in r.text
    assert site.get("/pho-diem", params={"province": "02"}).status_code == 404
    assert site.get("/pho-diem", params={"province": "national"}).status_code == 404
    etag = r.headers["etag"]
    again = site.get("/pho-diem", params={"province": "79"}, headers={"If-None-Match": etag})
    assert again.status_code == 304


def test_the_nations_published_figures(data_dir, tmp_path):
    """With the ministry's phổ điểm imported, charts and 'top X%' use the nation's figures
    and phổ điểm offers 'Cả nước' (the bundled 2026 file: 1.192.437 candidates in toán)."""
    from diemthi import national

    publish(data_dir, tmp_path, ROWS)
    national.import_bundled(data_dir, 2026)
    with serve(data_dir) as url:
        deadline = time.monotonic() + 20
        while True:  # the watcher picks up the national figures like an activation
            text = text_of(httpx.get(url + "/tra-cuu/01000001").text)
            if "1.192.437" in text or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        # toán 7,75: 186.539 candidates above it nationally, rounded up to a tenth
        assert "Toán 7,75 hạng 1 / 2 trong tỉnh top 15,7% cả nước" in text
        assert "Phổ điểm Toán cả nước: 1.192.437 thí sinh" in text
        r = httpx.get(url + "/pho-diem", params={"province": "national"})
        assert r.status_code == 200
        assert ('<option value="national" selected>Cả nước (số liệu Bộ GD&amp;ĐT)</option>'
                in r.text)
        assert "Toán 1.192.437 thí sinh" in text_of(r.text)


def test_page_traffic_is_counted_by_route(site):
    site.get("/tra-cuu/01000001")
    site.get("/tra-cuu/01999999")
    site.get("/pho-diem")
    text = site.get("/metrics").text
    assert 'diemthi_http_requests_total{route="/tra-cuu/{sbd}",status="200"} 1.0' in text
    assert 'diemthi_http_requests_total{route="/tra-cuu/{sbd}",status="404"} 1.0' in text
    assert 'diemthi_http_requests_total{route="/pho-diem",status="200"} 1.0' in text
