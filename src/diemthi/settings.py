"""One settings object, read once from flags and ``DIEMTHI_*`` environment variables.

Code receives a :class:`Settings`; nothing else reads the environment. A flag given on
the command line wins over the environment, which wins over the default.
"""

from __future__ import annotations

import ipaddress
import math
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


def _origins(text: str) -> tuple[str, ...]:
    """``https://h5.zdn.vn,zbrowser://h5.zdn.vn``: scheme://host[:port], no path, no slash."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        scheme, sep, rest = part.partition("://")
        if not sep or not scheme or not rest or "/" in rest or part != part.lower():
            raise ValueError(f"not an origin (scheme://host[:port], lower case): {part!r}")
        out.append(part)
    return tuple(out)


_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | float | int) -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``48h`` or ``7d`` (the one duration parser)."""
    if isinstance(text, (int, float)):
        return float(text)
    raw = text.strip().lower()
    unit = raw[-1:] if raw[-1:] in _UNITS and not raw[-1:].isdigit() else ""
    seconds = float(raw[:-1] if unit else raw) * _UNITS[unit]
    if not math.isfinite(seconds) or seconds < 0:  # nan, inf and 1e400 too
        raise ValueError(f"not a duration: {text!r}")
    return seconds


def parse_seconds(text: str | float | int) -> int:
    """Whole seconds from a duration (``300``, ``5m``): Cache-Control's max-age has no
    fractions."""
    seconds = parse_duration(text)
    if seconds != int(seconds):
        raise ValueError(f"not a whole number of seconds: {text!r}")
    return int(seconds)


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
    # known SBDs; ~1.2 KB each with ranks and equivalents (a full cache ~120 MiB)
    cache_size: int = 60_000
    negative_cache_size: int = 50_000  # unknown SBDs (404s)
    batch_size: int = 256  # cache misses sent to SQLite in one round trip, at most
    max_age: int = 300  # Cache-Control max-age, seconds (a duration: 300, 5m)
    reload_interval: float = 2.0  # how often a server checks the active pointers
    release_at: datetime | None = None  # embargo: lookups answer "not yet" until then
    rate_limit: float = 0.0  # requests per second per client; 0 = off
    rate_burst: int = 20
    trusted_proxies: tuple = ()  # networks whose X-Forwarded-For we believe
    access_log: bool = False
    # CORS for the read-only routes (/v1/scores, /v1/stats); off unless origins are listed,
    # e.g. the origins Zalo serves Mini Apps from: https://h5.zdn.vn,zbrowser://h5.zdn.vn
    cors_origins: tuple = ()
    # --workers N: the private directory where workers share metrics; `diemthi serve`
    # makes it (and sets PROMETHEUS_MULTIPROC_DIR to it), leave it unset
    metrics_dir: Path | None = None
    # Zalo OA chatbot; off unless app id and OA secret key are set
    zalo_app_id: str = ""
    zalo_oa_secret_key: str = ""
    zalo_access_token: str = ""
    zalo_refresh_token: str = ""
    zalo_app_secret: str = ""
    zalo_api_base: str = "https://openapi.zalo.me"
    zalo_oauth_base: str = "https://oauth.zaloapp.com"
    zalo_concurrency: int = 32  # replies in flight at once
    zalo_timeout: float = 10.0  # seconds per call to Zalo (a duration: 10, 10s)
    # province server: who may read /metrics (the app checks it as the edge does)
    metrics_allow: tuple = ()  # networks; empty = loopback only (see metrics_networks)
    # Zalo durable outbox, release push and message channels (#8, #14)
    zalo_send_rate: float = 50.0  # messages/s for the whole deployment (the OA's quota rules)
    zalo_free_window: float = 48 * 3600  # in-thread replies are free this long after a message
    zalo_reply_window: float = 7 * 86400  # cs by user_id allowed this long; older queue expires
    zalo_max_skew: float = 15 * 60  # signed events further than this from now are replays
    zalo_notify_changes: bool = False  # message registered users whose scores changed
    zalo_transaction: bool = False  # ZBS "Tin Giao dịch" template past the reply window
    zalo_refresh_every: float = 20 * 3600  # refresh the access token this old (Zalo's: 25 h)
    public_url: str = ""  # replies link <PUBLIC_URL>/tra-cuu/<SBD> when set; pages' og:url
    # chatbot understanding (issue 18): the Sở's answers file, where other provinces look,
    # SBDs answered per message
    chatbot_answers: Path | None = None
    chatbot_other_provinces_url: str = ""
    chatbot_max_sbds: int = 3
    # web pages (issue 10): finished result pages kept per snapshot, as bytes (~7 KB each)
    page_cache_size: int = 5_000
    # Hardening (#12): the exam year answered without ?year=, and the limits that let a
    # worker face the internet without a proxy in front (see server.py)
    year: int | None = None  # default: the latest year with an active pointer
    max_header_bytes: int = 16_384  # request line and headers; beyond: 431
    header_timeout: float = 10.0  # to receive a request's headers; beyond: 408, closed
    max_connections: int = 1000  # open connections per worker; beyond: 503, closed

    SECRETS = ("zalo_oa_secret_key", "zalo_access_token", "zalo_refresh_token",
               "zalo_app_secret")

    def __repr__(self) -> str:
        """Every field but the secrets, which print as Starlette's ``Secret`` does."""
        shown = (f"{f.name}=" + ("Secret('**********')" if f.name in self.SECRETS
                                 and getattr(self, f.name) else repr(getattr(self, f.name)))
                 for f in fields(self))
        return f"Settings({', '.join(shown)})"

    __str__ = __repr__

    @property
    def metrics_networks(self) -> tuple:
        return self.metrics_allow or _networks("127.0.0.0/8,::1/128")

    @property
    def zalo_enabled(self) -> bool:
        return bool(self.zalo_app_id and self.zalo_oa_secret_key)


_CASTS = {
    "data_dir": Path, "port": int, "workers": int, "cache_size": int,
    "negative_cache_size": int, "batch_size": int, "max_age": parse_seconds,
    "reload_interval": parse_duration,
    "release_at": parse_release_at, "rate_limit": float, "rate_burst": int,
    "trusted_proxies": _networks, "metrics_allow": _networks, "access_log": _bool,
    "cors_origins": _origins,
    "zalo_concurrency": int, "zalo_timeout": parse_duration,
    "zalo_send_rate": float, "zalo_free_window": parse_duration,
    "zalo_reply_window": parse_duration,
    "zalo_refresh_every": parse_duration, "zalo_max_skew": parse_duration,
    "zalo_notify_changes": _bool, "zalo_transaction": _bool,
    "chatbot_answers": Path, "chatbot_max_sbds": int, "page_cache_size": int,
    "year": int, "max_header_bytes": int, "header_timeout": parse_duration,
    "max_connections": int,
    "metrics_dir": Path,
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
                 "zalo_concurrency", "chatbot_max_sbds", "max_header_bytes", "max_connections"):
        if getattr(s, name) < (0 if "cache" in name else 1):
            raise SettingsError(f"{PREFIX}{name.upper()}: phải là số dương")
    if not 0 < s.port < 65536:
        raise SettingsError(f"cổng {s.port} không hợp lệ")
    for name in ("zalo_send_rate", "zalo_refresh_every"):
        if getattr(s, name) <= 0:
            raise SettingsError(f"{PREFIX}{name.upper()}: phải là số dương")
    if s.reload_interval <= 0 or s.rate_limit < 0 or s.max_age < 0:
        raise SettingsError("reload_interval, rate_limit, max_age không được âm")
    if s.year is not None and not 2000 <= s.year <= 2100:
        raise SettingsError(f"{PREFIX}YEAR: năm {s.year} không hợp lệ (2000..2100)")
    if s.header_timeout <= 0:
        raise SettingsError(f"{PREFIX}HEADER_TIMEOUT: phải lớn hơn 0")
