"""When a year's scores are published: the one place the chatbot asks.

Today the release time is the deployment's ``DIEMTHI_RELEASE_AT``; when release times
are kept per year with the activation pointer, only this module changes.
"""

from __future__ import annotations

from datetime import datetime

from ..messages import VIETNAM
from ..settings import Settings


def release_at(settings: Settings, year: int | None = None) -> datetime | None:
    """The moment ``year``'s scores are published (None: no embargo)."""
    return settings.release_at


def embargo_year(settings: Settings) -> int | None:
    """The exam year the embargo is for: the year of the release (in Vietnam time)."""
    moment = release_at(settings)
    return moment.astimezone(VIETNAM).year if moment else None


def embargoed(settings: Settings, now: float, year: int | None = None) -> bool:
    moment = release_at(settings, year)
    return moment is not None and now < moment.timestamp()
