"""The one release decision: may a year's scores be shown yet? Asked by the API and the pages.

Today one release time covers every year (``DIEMTHI_RELEASE_AT``); per-year times plug in
here, so both the JSON and the HTML answer 403 at the same moments.
"""

from __future__ import annotations

import time
from datetime import datetime


class Embargo:
    def __init__(self, release_at: datetime | None):
        self._release_at = release_at
        self._ts = release_at.timestamp() if release_at else 0.0

    def release_at(self, year: int | None = None) -> datetime | None:
        """When ``year``'s scores open (None: no embargo)."""
        return self._release_at

    def wait(self, year: int | None = None) -> float:
        """Seconds until ``year``'s scores may be shown; 0.0 once they may."""
        if not self._ts:
            return 0.0
        left = self._ts - time.time()
        return left if left > 0 else 0.0
