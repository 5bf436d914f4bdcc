"""Which snapshot answers for exam year Y now, or the error every route says instead.

One rule for the lookup, the statistics and the pages: a year with no pointer is
``404 year_not_found`` (never another year's data), a year under its release time is
``403 not_published`` with ``Retry-After``, and a year whose snapshot cannot be opened
here is ``503 not_ready``.
"""

from __future__ import annotations

from typing import Any

from . import messages
from .lookup import Lookup, Served
from .responses import JSON, error_body

Answer = tuple[int, list, bytes]


def error(status: int, code: str, message: str, headers: list | None = None,
          **extra: Any) -> Answer:
    """A JSON error as a raw ASGI answer (status, headers, body)."""
    return status, [(b"content-type", JSON), *(headers or [])], error_body(code, message, **extra)


def snapshot_for(lookup: Lookup, year: int) -> Served | Answer:
    """The served snapshot of ``year``, or the error answer that stands for it."""
    if year not in lookup.pointers:  # never another year's data
        if year in lookup.pointed:  # activated, but its pointer cannot be read now
            return error(503, "not_ready", messages.NOT_READY, [(b"retry-after", b"10")])
        return error(404, "year_not_found", messages.year_not_found(year))
    release = lookup.release(year)
    if release.at is not None and not release.published():
        wait = str(max(1, int(release.seconds_left()))).encode()
        return error(403, "not_published", messages.not_published(release.at),
                     [(b"retry-after", wait), (b"cache-control", b"no-store")],
                     release_at=release.at.isoformat())
    served = lookup.served.get(year)
    if served is None:  # activated, but its snapshot cannot be opened here
        return error(503, "not_ready", messages.NOT_READY, [(b"retry-after", b"10")])
    return served
