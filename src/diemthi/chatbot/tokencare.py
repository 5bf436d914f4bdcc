"""Token care: will the OA's credentials hold on results day, and how old are they?

Zalo's access token lasts 25 hours and is refreshed ahead of expiry by
:meth:`ZaloClient.keep_fresh <diemthi.chatbot.zalo.ZaloClient.keep_fresh>`; the refresh
token works once and expires about three months after it was issued, so a bot idle since
last year dies on results morning unless someone looks a week before. This module is
that look: the token ages for ``/metrics`` (read from the saved file, the same in every
worker) and ``diemthi zalo check``, which calls Zalo's OA-info endpoint for real.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.core import GaugeMetricFamily

from ..settings import PREFIX, Settings
from .zalo import Retryable, Tokens, ZaloClient, ZaloError, token_ages

REFRESH_TOKEN_MAX_AGE = 80 * 86400  # Zalo's expires after ~90 days: act before that
REQUIRED = ("zalo_app_id", "zalo_oa_secret_key", "zalo_app_secret", "zalo_access_token",
            "zalo_refresh_token")


@dataclass
class CheckResult:
    oa_name: str | None = None
    access_age: float | None = None  # seconds
    refresh_age: float | None = None
    refreshed: bool = False
    problems: list[str] = field(default_factory=list)  # Vietnamese, for ops; empty = ready

    @property
    def ok(self) -> bool:
        return not self.problems


async def check(settings: Settings, now: float | None = None) -> CheckResult:
    """Refresh if the access token is due, ask Zalo who the OA is, and judge the ages."""
    result = CheckResult()
    missing = [PREFIX + name.upper() for name in REQUIRED if not getattr(settings, name)]
    if missing:
        result.problems.append("thiếu thông tin đăng nhập Zalo: " + ", ".join(missing))
        return result
    tokens = Tokens.load(settings)
    before = tokens.access
    async with httpx.AsyncClient(timeout=settings.zalo_timeout) as http:
        client = ZaloClient(settings, tokens, http)
        try:
            if time.time() - tokens.access_at >= settings.zalo_refresh_every:
                await client.refresh(tokens.access)
            result.oa_name = str((await client.get_oa()).get("name") or "")
        except ZaloError as exc:
            what = "làm mới token" if exc.reason == "refresh" else "gọi API của OA"
            result.problems.append(f"Zalo từ chối {what} ({exc}); cần ủy quyền lại OA trong "
                                   "trang quản lý ứng dụng Zalo và đặt token mới")
        except Retryable as exc:
            result.problems.append(f"không kết nối được tới Zalo ({exc})")
    result.refreshed = tokens.access != before
    ages = token_ages(settings.data_dir, now)
    if ages is not None:
        result.access_age, result.refresh_age = ages
        if result.refresh_age > REFRESH_TOKEN_MAX_AGE:
            result.problems.append(
                f"refresh token đã {result.refresh_age / 86400:.0f} ngày tuổi (Zalo hủy sau "
                "khoảng 90 ngày): ủy quyền lại OA trước ngày công bố điểm")
    return result


class TokenAgeCollector:
    """``diemthi_zalo_token_age_seconds`` and ``..._refresh_token_age_seconds``."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir

    def collect(self) -> Any:
        ages = token_ages(self.data_dir)
        if ages is None:
            return
        for name, doc, value in (
                ("diemthi_zalo_token_age_seconds", "Age of the Zalo access token (lasts 25 h)",
                 ages[0]),
                ("diemthi_zalo_refresh_token_age_seconds",
                 "Age of the Zalo refresh token (single-use, expires after ~3 months)",
                 ages[1])):
            gauge = GaugeMetricFamily(name, doc)
            gauge.add_metric([], value)
            yield gauge
