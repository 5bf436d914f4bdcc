"""When a year's scores are published, as the chatbot asks it: the one rule of
:mod:`diemthi.release`, through the lookup (each year's release time is kept with its
activation pointer; ``DIEMTHI_RELEASE_AT`` overrides them all).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..lookup import Lookup


def release_at(lookup: "Lookup", year: int | None = None) -> datetime | None:
    """The moment ``year``'s scores are published (None: no embargo); the current exam
    year when ``year`` is not given."""
    year = lookup.current_year if year is None else year
    return lookup.release(year).at if year is not None else None


def embargo_year(lookup: "Lookup") -> int | None:
    """The exam year under embargo now: the current one, while it is not published."""
    year = lookup.current_year
    return year if year is not None and not lookup.release(year).published() else None


def embargoed(lookup: "Lookup", now: float, year: int | None = None) -> bool:
    year = lookup.current_year if year is None else year
    return year is not None and not lookup.release(year).published(now)
