from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from diemthi.settings import SettingsError, load


def test_defaults():
    s = load(environ={})
    assert s.data_dir == Path("data") and s.port == 8000 and s.rate_limit == 0
    assert not s.zalo_enabled and s.release_at is None


def test_environment_then_flags():
    env = {"DIEMTHI_DATA_DIR": "/srv/d", "DIEMTHI_PORT": "9000", "DIEMTHI_CACHE_SIZE": "10",
           "DIEMTHI_ACCESS_LOG": "yes", "DIEMTHI_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1"}
    s = load(environ=env)
    assert (s.data_dir, s.port, s.cache_size, s.access_log) == (Path("/srv/d"), 9000, 10, True)
    assert len(s.trusted_proxies) == 2
    s = load({"port": 8080, "data_dir": None}, environ=env)
    assert s.port == 8080 and s.data_dir == Path("/srv/d")


def test_release_at_without_zone_is_vietnam_time():
    s = load(environ={"DIEMTHI_RELEASE_AT": "2026-07-12T08:00"})
    assert s.release_at == datetime(2026, 7, 12, 1, 0, tzinfo=timezone.utc)
    s = load(environ={"DIEMTHI_RELEASE_AT": "2026-07-12T08:00+07:00"})
    assert s.release_at.utcoffset() == timedelta(hours=7)


@pytest.mark.parametrize("env", [{"DIEMTHI_PORT": "x"}, {"DIEMTHI_PORT": "70000"},
                                 {"DIEMTHI_RELEASE_AT": "tomorrow"},
                                 {"DIEMTHI_ACCESS_LOG": "maybe"},
                                 {"DIEMTHI_TRUSTED_PROXIES": "not-an-ip"},
                                 {"DIEMTHI_CACHE_SIZE": "-1"}])
def test_bad_values_name_the_variable(env):
    with pytest.raises(SettingsError, match=next(iter(env)) + "|cổng"):
        load(environ=env)


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("15m", 900),
                                          ("48h", 172800), ("7d", 604800), ("1.5h", 5400)])
def test_durations(text, seconds):
    from diemthi.settings import parse_duration

    assert parse_duration(text) == seconds


def test_zalo_windows_from_the_environment():
    s = load(environ={"DIEMTHI_ZALO_FREE_WINDOW": "30s", "DIEMTHI_ZALO_REPLY_WINDOW": "2m",
                      "DIEMTHI_ZALO_MAX_SKEW": "1h"})
    assert (s.zalo_free_window, s.zalo_reply_window, s.zalo_max_skew) == (30, 120, 3600)
    d = load(environ={})
    assert (d.zalo_free_window, d.zalo_reply_window, d.zalo_max_skew) == (172800, 604800, 900)
    with pytest.raises(SettingsError, match="DIEMTHI_ZALO_REPLY_WINDOW"):
        load(environ={"DIEMTHI_ZALO_REPLY_WINDOW": "7 weeks"})


def test_secrets_never_print():
    env = {"DIEMTHI_ZALO_APP_ID": "123", "DIEMTHI_ZALO_OA_SECRET_KEY": "oa-very-secret",
           "DIEMTHI_ZALO_ACCESS_TOKEN": "access-tok", "DIEMTHI_ZALO_REFRESH_TOKEN": "refresh-tok",
           "DIEMTHI_ZALO_APP_SECRET": "app-sec"}
    s = load(environ=env)
    for text in (repr(s), str(s), f"{s}", repr([s])):
        assert not any(v in text for v in ("oa-very-secret", "access-tok", "refresh-tok",
                                           "app-sec"))
        assert text.count("Secret('**********')") == 4 and "zalo_app_id='123'" in text
    assert s.zalo_access_token == "access-tok"  # the client reads the real value


def test_year_limits_and_durations():
    s = load(environ={})
    assert s.year is None and s.max_connections >= 256 and s.max_header_bytes >= 8192
    assert 0 < s.header_timeout <= 60
    s = load({"year": "2026", "header_timeout": "5m", "reload_interval": "500"},
             environ={"DIEMTHI_MAX_CONNECTIONS": "300"})
    assert (s.year, s.header_timeout, s.reload_interval, s.max_connections) == (
        2026, 300.0, 500.0, 300)
    assert load(environ={"DIEMTHI_RELOAD_INTERVAL": "2s"}).reload_interval == 2.0
    assert load(environ={"DIEMTHI_ZALO_TIMEOUT": "30s"}).zalo_timeout == 30.0
    assert load(environ={"DIEMTHI_ZALO_TIMEOUT": "2.5"}).zalo_timeout == 2.5
    assert load(environ={"DIEMTHI_MAX_AGE": "5m"}).max_age == 300
    assert load({"max_age": "90"}, environ={}).max_age == 90
    assert load(environ={}).max_age == 300 and load(environ={}).zalo_timeout == 10.0
    for env in ({"DIEMTHI_YEAR": "0000"}, {"DIEMTHI_HEADER_TIMEOUT": "soon"},
                {"DIEMTHI_MAX_AGE": "1.5s"}, {"DIEMTHI_MAX_AGE": "-5m"},
                {"DIEMTHI_MAX_AGE": "inf"}, {"DIEMTHI_MAX_AGE": "1e400"},
                {"DIEMTHI_ZALO_TIMEOUT": "nan"}, {"DIEMTHI_RELOAD_INTERVAL": "1e308d"},
                {"DIEMTHI_ZALO_TIMEOUT": "-1s"}, {"DIEMTHI_ZALO_TIMEOUT": "fast"},
                {"DIEMTHI_HEADER_TIMEOUT": "0s"}, {"DIEMTHI_MAX_CONNECTIONS": "0"}):
        with pytest.raises(SettingsError, match=next(iter(env))):
            load(environ=env)
