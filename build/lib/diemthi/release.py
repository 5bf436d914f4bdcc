"""Is exam year Y published now, and when will it be: the one rule, asked by the API, the
pages and the chatbot (through :meth:`diemthi.lookup.Lookup.release`).

A year's release time is kept with its activation pointer (``diemthi activate
--release-at``), so last year stays open while this year waits. ``serve --release-at``
(``DIEMTHI_RELEASE_AT``) is the global override: when set, it is every year's release time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Release:
    """When ``year`` is published; ``at`` None means it is not under embargo."""

    year: int
    at: datetime | None = None

    @property
    def timestamp(self) -> float:
        return self.at.timestamp() if self.at is not None else 0.0

    def published(self, now: float | None = None) -> bool:
        return self.at is None or (time.time() if now is None else now) >= self.timestamp

    def seconds_left(self, now: float | None = None) -> float:
        """How long until it is published; 0 once it is."""
        return max(0.0, self.timestamp - (time.time() if now is None else now))


def release_of(year: int, pointer_at: datetime | None, override: datetime | None) -> Release:
    """The release of ``year``: the global override when set, else the pointer's time."""
    return Release(year, override if override is not None else pointer_at)
