"""Token care against the loopback stand-in of Zalo: refreshed ahead of expiry, ages in
/metrics, and `diemthi zalo check` saying whether results day would work."""

from __future__ import annotations

import time

import httpx
import orjson
from click.testing import CliRunner

from diemthi.app import create_app
from diemthi.chatbot.zalo import tokens_path
from diemthi.cli import cli
from diemthi.settings import PREFIX, load
from tests.chatbot_world import metric, say, settings, wait_for
from tests.servers import LiveServer


def save_tokens(data_dir, access_age: float, refresh_age: float) -> None:
    now = time.time()
    tokens_path(data_dir).write_bytes(orjson.dumps({
        "access_token": "access-0", "refresh_token": "refresh-0", "seed": "refresh-0",
        "access_at": now - access_age, "refresh_at": now - refresh_age}))


def test_a_token_nearing_expiry_is_refreshed_without_a_failed_send(zalo, data_dir):
    """Zalo's tokens die after 3 s here; we refresh at 1 s: no send ever meets -216."""
    zalo.token_lifetime = 3.0
    app = create_app(load(settings(data_dir, zalo.url, zalo_refresh_every="1s"), environ={}))
    with LiveServer(app) as url, httpx.Client(base_url=url) as c:
        deadline = time.monotonic() + 7
        n = 0
        while time.monotonic() < deadline:  # a student writes every 0.25 s for 7 s
            assert say(c, zalo, "tra điểm 08000123", f"m{n}", user=f"u{n}").status_code == 200
            n += 1
            time.sleep(0.25)
        wait_for(lambda: len(zalo.sent) == n)
        assert zalo.attempts == n  # every send went through at its first attempt
        assert len(zalo.refreshes) >= 2  # the token was renewed ahead, more than once
        ages = (metric(c, "diemthi_zalo_token_age_seconds"),
                metric(c, "diemthi_zalo_refresh_token_age_seconds"))
        assert 0 <= ages[0] < 3 and 0 <= ages[1] < 3
    saved = orjson.loads(tokens_path(data_dir).read_bytes())
    assert saved["refresh_token"] == f"refresh-{len(zalo.refreshes)}"  # the last one kept


def test_a_stale_token_is_refreshed_at_start_up(zalo, data_dir):
    save_tokens(data_dir, access_age=30 * 3600, refresh_age=10 * 86400)
    app = create_app(load(settings(data_dir, zalo.url), environ={}))
    with LiveServer(app):
        wait_for(lambda: len(zalo.refreshes) == 1)
        form = zalo.refreshes[0]["form"]
        assert form["refresh_token"] == "refresh-0" and form["grant_type"] == "refresh_token"
    assert orjson.loads(tokens_path(data_dir).read_bytes())["access_token"] == "access-1"


def zalo_check(data_dir, zalo_url: str, **extra: object):
    env = {PREFIX + k.upper(): str(v) for k, v in settings(data_dir, zalo_url, **extra).items()}
    return CliRunner().invoke(cli, ["zalo", "check", "--data-dir", str(data_dir)], env=env)


def test_zalo_check_good_credentials(zalo, data_dir):
    save_tokens(data_dir, access_age=21 * 3600, refresh_age=30 * 86400)  # due for a refresh
    result = zalo_check(data_dir, zalo.url)
    assert result.exit_code == 0, result.output
    assert f"OA: {zalo.oa_name}" in result.output and "Sẵn sàng" in result.output
    assert "Đã làm mới access token." in result.output and len(zalo.refreshes) == 1
    assert "Refresh token: 0.0 giờ" in result.output  # the refresh gave a new one


def test_zalo_check_refused_refresh_fails_clearly(zalo, data_dir):
    zalo.refuse_refresh = True
    save_tokens(data_dir, access_age=26 * 3600, refresh_age=30 * 86400)
    result = zalo_check(data_dir, zalo.url)
    assert result.exit_code == 1
    assert "Zalo từ chối làm mới token" in result.output and "ủy quyền lại OA" in result.output


def test_zalo_check_an_expired_access_token_it_cannot_renew(zalo, data_dir):
    zalo.refuse_refresh = True
    zalo.expired.add("access-0")  # Zalo says -216 although our clock thinks it is young
    save_tokens(data_dir, access_age=60, refresh_age=86400)
    result = zalo_check(data_dir, zalo.url)
    assert result.exit_code == 1 and "Zalo từ chối làm mới token" in result.output


def test_zalo_check_an_old_refresh_token(zalo, data_dir):
    save_tokens(data_dir, access_age=3600, refresh_age=81 * 86400)
    result = zalo_check(data_dir, zalo.url)
    assert result.exit_code == 1
    assert f"OA: {zalo.oa_name}" in result.output and "81 ngày tuổi" in result.output


def test_zalo_check_without_credentials(data_dir):
    result = CliRunner().invoke(cli, ["zalo", "check", "--data-dir", str(data_dir)], env={})
    assert result.exit_code == 1
    assert "thiếu thông tin đăng nhập Zalo" in result.output
    assert "DIEMTHI_ZALO_APP_ID" in result.output
