"""One settings object, read once from flags and ``DIEMTHI_*`` environment variables.

Code receives a :class:`Settings`; nothing else reads the environment. A flag given on
the command line wins over the environment, which wins over the default.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Mapping

PREFIX = "DIEMTHI_"


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names it."""


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def parse_release_at(text: str | None) -> datetime | None:
    """ISO time; without a zone it is Vietnam time (UTC+7), as staff would mean it."""
    if not text:
        return None
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone(timedelta(hours=7)))
    return moment


def _networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(part.strip(), strict=False)
                 for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    # cache: ready response bytes per snapshot
    cache_size: int = 200_000  # known SBDs
    negative_cache_size: int = 50_000  # unknown SBDs (404s)
    batch_size: int = 256  # cache misses sent to SQLite in one round trip, at most
    max_age: int = 300  # Cache-Control max-age, seconds
    reload_interval: float = 2.0  # how often a server checks the active pointers
    release_at: datetime | None = None  # embargo: lookups answer "not yet" until then
    rate_limit: float = 0.0  # requests per second per client; 0 = off
    rate_burst: int = 20
    trusted_proxies: tuple = ()  # networks whose X-Forwarded-For we believe
    access_log: bool = False
    # Zalo OA chatbot; off unless app id and OA secret key are set
    zalo_app_id: str = ""
    zalo_oa_secret_key: str = ""
    zalo_access_token: str = ""
    zalo_refresh_token: str = ""
    zalo_app_secret: str = ""
    zalo_api_base: str = "https://openapi.zalo.me"
    zalo_oauth_base: str = "https://oauth.zaloapp.com"
    zalo_queue_size: int = 10_000  # replies waiting to be sent; beyond, they are dropped
    zalo_concurrency: int = 32  # replies in flight at once
    zalo_timeout: float = 10.0
    zalo_retries: int = 3
    # web pages (issue 10): absolute links and Open Graph; finished result pages kept
    public_url: str = ""  # e.g. https://diemthi.example.vn (no trailing slash needed)
    page_cache_size: int = 5_000  # result pages per snapshot, as bytes (~7 KB each)

    @property
    def zalo_enabled(self) -> bool:
        return bool(self.zalo_app_id and self.zalo_oa_secret_key)


_CASTS = {
    "data_dir": Path, "port": int, "workers": int, "cache_size": int,
    "negative_cache_size": int, "batch_size": int, "max_age": int, "reload_interval": float,
    "release_at": parse_release_at, "rate_limit": float, "rate_burst": int,
    "trusted_proxies": _networks, "access_log": _bool, "zalo_queue_size": int,
    "zalo_concurrency": int, "zalo_timeout": float, "zalo_retries": int,
    "page_cache_size": int,
}


def load(overrides: Mapping[str, Any] | None = None,
         environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``overrides`` (flags; None means not given), then env, then defaults."""
    environ = os.environ if environ is None else environ
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    values: dict[str, Any] = {}
    for f in fields(Settings):
        env_name = PREFIX + f.name.upper()
        raw = overrides.get(f.name, environ.get(env_name))
        if raw is None:
            continue
        cast = _CASTS.get(f.name, str)
        try:
            values[f.name] = cast(raw) if isinstance(raw, str) or cast is Path else raw
        except ValueError as exc:
            source = f"--{f.name.replace('_', '-')}" if f.name in overrides else env_name
            raise SettingsError(f"{source}: giá trị không hợp lệ {raw!r} ({exc})") from exc
    settings = Settings(**values)
    _check(settings)
    return settings


def _check(s: Settings) -> None:
    for name in ("cache_size", "negative_cache_size", "page_cache_size", "batch_size", "workers", "rate_burst",
                 "zalo_queue_size", "zalo_concurrency"):
        if getattr(s, name) < (0 if "cache" in name else 1):
            raise SettingsError(f"{PREFIX}{name.upper()}: phải là số dương")
    if not 0 < s.port < 65536:
        raise SettingsError(f"cổng {s.port} không hợp lệ")
    if s.reload_interval <= 0 or s.rate_limit < 0 or s.max_age < 0:
        raise SettingsError("reload_interval, rate_limit, max_age không được âm")
