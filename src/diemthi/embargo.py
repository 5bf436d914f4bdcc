"""The one release decision: may a year's scores be shown yet? Asked by the lookup API, the
stats API and the pages, so the JSON and the HTML answer 403 at the same moments.

Today one release time (``DIEMTHI_RELEASE_AT``) covers every year. :class:`Release` has the
shape of a per-year release (``at``, ``published()``, ``seconds_left()``), so callers do not
change when release times come per year: only where ``release(year)`` comes from does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Release:
    """When ``year`` is published; ``at`` None means it is not under embargo."""

    year: int | None
    at: datetime | None = None

    def published(self, now: float | None = None) -> bool:
        return self.seconds_left(now) == 0.0

    def seconds_left(self, now: float | None = None) -> float:
        """How long until it is published; 0.0 once it is."""
        if self.at is None:
            return 0.0
        return max(0.0, self.at.timestamp() - (time.time() if now is None else now))


class Embargo:
    """The release of each year from the settings' one release time."""

    def __init__(self, release_at: datetime | None):
        self.at = release_at

    def release(self, year: int | None = None) -> Release:
        return Release(year, self.at)
