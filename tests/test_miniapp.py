"""The Zalo Mini App, built from its lock and driven in Debian's Chromium at phone size.

The app is built once for this module with the API address baked in, as a province builds
it (``DIEMTHI_MINIAPP_API``, ``DIEMTHI_MINIAPP_OA_ID``); it is served from one loopback
port and talks to the real ``diemthi`` server on another, so every lookup crosses origins
through ``DIEMTHI_CORS_ORIGINS``. The Zalo host is a stand-in the page gets before the app
loads (``window.__DIEMTHI_HOST__``, see ``miniapp/src/host.js``); it records what it is asked.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from diemthi.app import create_app
from diemthi.settings import load
from tests.servers import LiveServer, free_port

ROOT = Path(__file__).resolve().parent.parent
MINIAPP = ROOT / "miniapp"
AXE = ROOT / "tests" / "vendor" / "axe.min.js"
SHOTS = ROOT / "reports" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
OA_ID = "1234567890123456789"
PHONE = {"width": 360, "height": 740}
WAIT_MS = 20_000  # deadline for anything the page is waited on to show

ROWS = """sbd,toan,ngu_van,ngoai_ngu,vat_li,hoa_hoc,ma_ngoai_ngu
01000001,7.75,6.5,8.25,9,8.5,N1
01000002,5,6,,,,
48000001,9.5,8,,,,
"""

# The host stand-in: resolves, or rejects as zmp-sdk does outside Zalo (code -2000).
STAND_IN = """
window.__hostCalls = [];
window.__DIEMTHI_HOST__ = {
  followOA: (args) => { window.__hostCalls.push(["followOA", args]); return %(answer)s; },
  openChat: (args) => { window.__hostCalls.push(["openChat", args]); return %(answer)s; },
};
"""
RESOLVES = STAND_IN % {"answer": "Promise.resolve({})"}
REJECTS = STAND_IN % {"answer": "Promise.reject({code: -2000, message: 'not in Zalo'})"}


def need(ok: bool, what: str) -> None:
    """Skip loudly without a tool; under CI nothing skips."""
    if ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing under CI=true")
    pytest.skip(f"{what} is missing: the Mini App browser tests cannot run (make test installs it)")


# --- building and serving the app ------------------------------------------------------------

def npm_ci_if_stale() -> None:
    """``npm ci`` unless node_modules was installed from this very lock."""
    installed = MINIAPP / "node_modules" / ".package-lock.json"
    lock = MINIAPP / "package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=MINIAPP, check=True, timeout=600)


@pytest.fixture(scope="module")
def api_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def www(tmp_path_factory, api_port) -> Path:
    need(shutil.which("npm") is not None and shutil.which("node") is not None, "node/npm")
    npm_ci_if_stale()
    out = tmp_path_factory.mktemp("miniapp") / "www"
    env = {**os.environ, "DIEMTHI_MINIAPP_API": f"http://127.0.0.1:{api_port}",
           "DIEMTHI_MINIAPP_OA_ID": OA_ID}
    subprocess.run([str(MINIAPP / "node_modules" / ".bin" / "vite"), "build", "--outDir", str(out),
                    "--emptyOutDir", "--logLevel", "warn"], cwd=MINIAPP, env=env, check=True,
                   timeout=600)
    return out


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def app_url(www) -> str:
    """The built app on its own loopback origin (not the API's)."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def snapshot_dir(tmp_path_factory) -> Path:
    """A real snapshot, imported by the real command."""
    tmp = tmp_path_factory.mktemp("snapshot")
    data = tmp / "data"
    scores = tmp / "2026-scores.csv"
    scores.write_text(ROWS, encoding="utf-8")
    subprocess.run([sys.executable, "-m", "diemthi", "import", "--data-dir", str(data),
                    "--year", "2026", "--activate", str(scores)], check=True, timeout=300,
                   capture_output=True)
    return data


@contextmanager
def api(port: int, data_dir: Path, origin: str, **settings):
    """The real server on the port the app was built for, answering the app's origin."""
    app = create_app(load({"data_dir": str(data_dir), "cors_origins": origin,
                           "reload_interval": 0.2, **settings}))
    with LiveServer(app, port=port) as url:
        yield url


# --- the browser ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    need(CHROMIUM.exists(), "Debian's chromium (/usr/bin/chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "the playwright Python package")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


class Phone:
    """One page at 360×740 that records every request and lets none leave 127.0.0.1."""

    def __init__(self, browser, app_url: str, stand_in: str | None):
        self.context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True,
                                           locale="vi-VN", service_workers="block")
        self.requests: list[str] = []
        self.foreign: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._route)
        if stand_in:
            self.context.add_init_script(stand_in)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", self._console)
        self.page.goto(app_url + "/index.html")
        self.page.wait_for_selector('input[name="sbd"]', timeout=WAIT_MS)

    def _route(self, route) -> None:
        url = route.request.url
        self.requests.append(url)
        if urlsplit(url).hostname != "127.0.0.1":
            self.foreign.append(url)
            route.abort()
        else:
            route.continue_()

    def _console(self, msg) -> None:
        # A fetch refused while the API is away is logged by Chromium itself; it is expected.
        if msg.type == "error" and "Failed to load resource" not in msg.text \
                and "ERR_CONNECTION_REFUSED" not in msg.text:
            self.errors.append(msg.text)

    def lookup(self, text: str) -> None:
        self.page.fill('input[name="sbd"]', text)
        self.page.click('[data-action="lookup"]')

    def shot(self, name: str) -> None:
        """The whole screen at phone width: zmp-ui's page scrolls inside itself, so the
        viewport grows to the page's height for the picture and shrinks back."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        height = self.page.evaluate(
            "Math.max(...[...document.querySelectorAll('.zaui-page, body')].map(e => e.scrollHeight))")
        self.page.set_viewport_size({"width": PHONE["width"], "height": max(PHONE["height"], height)})
        self.page.screenshot(path=str(SHOTS / f"miniapp-{name}.png"))
        self.page.set_viewport_size(PHONE)

    def axe(self) -> list[dict]:
        """axe-core's serious and critical findings on the page as it is now."""
        self.page.add_script_tag(path=str(AXE))
        found = self.page.evaluate("async () => (await axe.run(document)).violations"
                                   ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length}))")
        return [v for v in found if v["impact"] in ("serious", "critical")]

    def api_requests(self, port: int) -> list[str]:
        return [u for u in self.requests if urlsplit(u).port == port]

    def close(self) -> None:
        assert self.foreign == [], f"requests left 127.0.0.1: {self.foreign}"
        assert self.errors == [], f"errors in the page: {self.errors}"
        self.context.close()


@pytest.fixture
def phone(browser, app_url):
    phones = []

    def make(stand_in: str | None = RESOLVES) -> Phone:
        p = Phone(browser, app_url, stand_in)
        phones.append(p)
        return p

    yield make
    for p in phones:
        p.close()


def text_of(page, selector: str) -> str:
    return page.locator(selector).inner_text(timeout=WAIT_MS)


def comma(value: float) -> str:
    """An independent rendering of a score: at most two decimals, decimal comma."""
    return f"{value:.2f}".rstrip("0").rstrip(".").replace(".", ",")


# --- the tests --------------------------------------------------------------------------------

def test_build_is_a_mini_app_within_budget(www):
    config = json.loads((www / "app-config.json").read_text(encoding="utf-8"))
    assert config["app"]["title"]
    assert config["listSyncJS"] and all((www / f).exists() for f in config["listSyncJS"])
    assert config["listCSS"] and all((www / f).exists() for f in config["listCSS"])
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "miniapp_size.py"), str(www)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "KB gzipped (JS + CSS), budget 150 KB: ok" in out.stdout


def test_known_sbd_shows_its_scores(phone, api_port, snapshot_dir, app_url):
    with api(api_port, snapshot_dir, app_url) as url:
        expected = httpx.get(f"{url}/v1/scores/01000001").json()
        p = phone()
        assert p.page.get_attribute('input[name="sbd"]', "inputmode") == "numeric"
        p.lookup(" 01 000.001 ")  # pasted with spaces and dots, as the server's rule allows
        p.page.wait_for_selector('[data-subject="toan"]', timeout=WAIT_MS)
        page = p.page
        # exactly what the API returned, in Vietnamese with decimal commas
        subjects = page.locator("[data-subject]")
        assert [subjects.nth(i).get_attribute("data-subject") for i in range(subjects.count())] \
            == list(expected["scores"])
        for key, value in expected["scores"].items():
            assert text_of(page, f'[data-subject="{key}"] > .score') == comma(value), key
        assert "Toán" in text_of(page, '[data-subject="toan"]')
        assert text_of(page, '[data-subject="toan"] .score') == "7,75"
        english = text_of(page, '[data-subject="ngoai_ngu"]')
        assert "Ngoại ngữ" in english and "Tiếng Anh" in english and "8,25" in english
        assert text_of(page, '[data-subject="vat_li"] .score') == "9"
        assert text_of(page, '[data-subject="ngu_van"] .score') == "6,5"
        combos = page.locator("[data-combination]")
        assert combos.count() == len(expected["combinations"])
        for code, total in expected["combinations"].items():
            assert text_of(page, f'[data-combination="{code}"] .score') == comma(total)
        assert text_of(page, '[data-combination="A00"] .score') == "25,25"
        assert "Vật lí" in text_of(page, '[data-combination="A00"]')
        assert "Thành phố Hà Nội" in page.inner_text("body")
        if "ranks" in expected:  # the "where do I stand" fields (issue 9), drawn as given:
            # toan 7.75 in a province of 2 (7.75, 5) and a nation of 3 (also 9.5)
            standing = text_of(page, '[data-standing="toan"]')
            assert "hạng 1 / 2 trong tỉnh" in standing
            assert "top 66,7% cả nước" in standing  # ceil((1 + 1) / 3 × 1000) / 10
            assert "hạng 1 / 1 trong tỉnh" in text_of(page, '[data-standing="A00"]')
            chart = page.locator('[data-chart="toan"]')
            chart.wait_for(timeout=WAIT_MS)  # phổ điểm, from /v1/stats
            assert "thí sinh" in chart.locator("svg").get_attribute("aria-label")
            assert chart.locator("svg text.you").text_content() == "7,75"  # the bar marked
        assert page.input_value('input[name="sbd"]') == "01000001"
        assert [u for u in p.api_requests(api_port) if "/v1/scores/" in u] \
            == [f"http://127.0.0.1:{api_port}/v1/scores/01000001"]
        p.shot("result")
        assert p.axe() == []


def test_unknown_and_malformed_sbd_get_clear_messages(phone, api_port, snapshot_dir, app_url):
    with api(api_port, snapshot_dir, app_url):
        p = phone()
        p.lookup("0100")
        assert "8 chữ số" in text_of(p.page, '[data-error="invalid_sbd"]')
        p.shot("invalid")
        assert p.api_requests(api_port) == []  # the wrong length never reaches the server
        p.lookup("01999999")
        message = text_of(p.page, '[data-screen="error"][data-error="not_found"]')
        assert "Không tìm thấy" in message and "01999999" in message
        assert p.page.locator('[data-subject]').count() == 0
        p.shot("not-found")
        assert p.axe() == []


def test_api_going_away_shows_the_error_and_retry_works_once_back(
        phone, api_port, snapshot_dir, app_url):
    with api(api_port, snapshot_dir, app_url):
        p = phone()
        p.lookup("01000002")
        p.page.wait_for_selector('[data-subject="toan"]', timeout=WAIT_MS)
    # the server is gone mid-use
    p.lookup("48000001")
    error = p.page.locator('[data-screen="error"]')
    error.wait_for(timeout=WAIT_MS)
    assert error.get_attribute("data-error") == "offline"
    assert "Không kết nối được" in error.inner_text()
    assert p.page.locator("[data-subject]").count() == 0
    p.shot("offline")
    assert p.axe() == []
    with api(api_port, snapshot_dir, app_url):
        p.page.click('[data-action="retry"]')
        p.page.wait_for_selector('[data-subject="toan"]', timeout=WAIT_MS)
        assert text_of(p.page, '[data-subject="toan"] .score') == "9,5"
        assert "Thành phố Đà Nẵng" in p.page.inner_text("body")


def test_busy_and_not_ready_servers_get_a_message_and_a_retry(
        phone, api_port, snapshot_dir, app_url, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with api(api_port, empty, app_url):  # nothing imported: 503 not_ready
        p = phone()
        p.lookup("01000001")
        error = p.page.locator('[data-screen="error"]')
        error.wait_for(timeout=WAIT_MS)
        assert error.get_attribute("data-error") == "server"
        assert p.page.locator('[data-action="retry"]').is_visible()
        p.shot("server-error")
        assert p.axe() == []
    with api(api_port, snapshot_dir, app_url, rate_limit=0.001, rate_burst=1):
        p.page.click('[data-action="retry"]')
        p.page.wait_for_selector('[data-subject="toan"]', timeout=WAIT_MS)
        p.lookup("01000002")  # the bucket is empty now: 429
        p.page.locator('[data-screen="error"][data-error="rate_limited"]').wait_for(timeout=WAIT_MS)
        assert "quá nhanh" in text_of(p.page, '[data-screen="error"]')
        assert p.page.locator('[data-action="retry"]').is_visible()


def release_in_a_day() -> str:
    return (datetime.now(timezone.utc) + timedelta(days=1)).replace(microsecond=0).isoformat()


def test_embargo_notify_asks_the_host_to_follow_then_open_the_chat(
        phone, api_port, snapshot_dir, app_url):
    release = release_in_a_day()
    with api(api_port, snapshot_dir, app_url, release_at=release):
        p = phone()
        p.lookup("01000001")
        p.page.wait_for_selector('[data-screen="embargo"]', timeout=WAIT_MS)
        vietnam = datetime.fromisoformat(release).astimezone(timezone(timedelta(hours=7)))
        assert text_of(p.page, "[data-release]") == vietnam.strftime("%H:%M ngày %d/%m/%Y")
        assert p.page.locator("[data-subject]").count() == 0
        p.shot("embargo")
        assert p.axe() == []
        notify = p.page.locator('[data-action="notify"]')
        assert notify.inner_text() == "Nhận điểm qua Zalo"
        notify.click()
        # it says why first, and asks the host for nothing yet
        dialog = p.page.locator('[data-dialog="notify"]')
        dialog.wait_for(timeout=WAIT_MS)
        assert "quan tâm" in dialog.inner_text() and "01000001" in dialog.inner_text()
        assert p.page.evaluate("window.__hostCalls") == []
        p.shot("notify-explain")
        assert p.axe() == []
        p.page.click('[data-action="notify-continue"]')
        p.page.wait_for_selector('[data-notify="done"]', timeout=WAIT_MS)
        calls = p.page.evaluate("window.__hostCalls")
        assert [name for name, _ in calls] == ["followOA", "openChat"]
        assert calls[0][1] == {"id": OA_ID}
        chat = calls[1][1]
        assert chat["type"] == "oa" and chat["id"] == OA_ID and "01000001" in chat["message"]
        p.shot("notify-done")


def test_a_host_that_refuses_is_handled_and_a_plain_browser_gets_the_oa_link(
        phone, api_port, snapshot_dir, app_url):
    with api(api_port, snapshot_dir, app_url, release_at=release_in_a_day()):
        p = phone(REJECTS)  # zmp-sdk outside Zalo: every host call rejects with -2000
        p.lookup("01000002")
        p.page.click('[data-action="notify"]', timeout=WAIT_MS)
        p.page.click('[data-action="notify-continue"]', timeout=WAIT_MS)
        failed = p.page.locator('[data-notify="failed"]')
        failed.wait_for(timeout=WAIT_MS)
        assert "01000002" in failed.inner_text()
        assert failed.locator("a").get_attribute("href") == f"https://zalo.me/{OA_ID}"
        assert [c[0] for c in p.page.evaluate("window.__hostCalls")] == ["followOA", "openChat"]
        p.shot("notify-failed")

        plain = phone(None)  # a mobile browser, no Zalo host at all: still looks up
        plain.lookup("01000002")
        link = plain.page.locator('a[data-action="notify"]')
        link.wait_for(timeout=WAIT_MS)
        assert link.get_attribute("href") == f"https://zalo.me/{OA_ID}"
        assert plain.page.locator('[data-action="notify-continue"]').count() == 0
        plain.shot("browser-embargo")
    with api(api_port, snapshot_dir, app_url):
        plain.page.click('[data-action="lookup"]')
        plain.page.wait_for_selector('[data-subject="toan"]', timeout=WAIT_MS)
        assert text_of(plain.page, '[data-subject="toan"] .score') == "5"


@contextmanager
def silent_api(port: int):
    """Something on the API's port that takes connections and never answers."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def hold() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        sock.close()


def test_a_request_that_never_ends_times_out_and_offline_is_said(
        phone, api_port, snapshot_dir, app_url):
    with silent_api(api_port):
        p = phone()
        p.lookup("01000001")
        from playwright.sync_api import expect

        expect(p.page.locator("[data-action='lookup']")).to_be_disabled()  # one at a time
        error = p.page.locator('[data-screen="error"][data-error="timeout"]')
        error.wait_for(timeout=3 * WAIT_MS)  # the app's own deadline is 10 s
        assert "quá lâu" in error.inner_text()
        p.shot("timeout")
        assert p.axe() == []
    p.context.set_offline(True)
    p.page.click('[data-action="retry"]')
    offline = p.page.locator('[data-screen="error"][data-error="offline"]')
    offline.wait_for(timeout=WAIT_MS)
    assert "kết nối mạng" in offline.inner_text()
    p.context.set_offline(False)
    with api(api_port, snapshot_dir, app_url):
        p.page.click('[data-action="retry"]')
        p.page.wait_for_selector('[data-subject="toan"]', timeout=WAIT_MS)
