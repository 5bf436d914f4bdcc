"""``GET /v1/stats/{year}[/{province_code}|/national]``: phổ điểm documents as ready bytes.

The documents are built once per served snapshot (:mod:`diemthi.standing`); a request picks
the bytes and answers them with an ETag, ``Cache-Control`` and ``304`` as the lookup does.
"""

from __future__ import annotations

from typing import Callable

from . import messages
from .embargo import Embargo
from .lookup import Lookup
from .responses import JSON, error_body
from .settings import Settings
from .standing import NATIONAL


class StatsEndpoint:
    """Plain ASGI, like the lookup: no Request or Response objects."""

    def __init__(self, settings: Settings, lookup: Lookup):
        self.lookup = lookup
        self.release = Embargo(settings.release_at).release  # the one release rule
        self.cache_control = f"public, max-age={settings.max_age}".encode()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        status, headers, body = self.answer(scope)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def answer(self, scope: dict) -> tuple[int, list, bytes]:
        params = scope["path_params"]
        text, where = params["year"], params.get("scope")
        if len(text) != 4 or not text.isascii() or not text.isdigit():
            return _error(400, "invalid_year", messages.INVALID_YEAR)
        year = int(text)
        release = self.release(year)
        if not release.published():
            return _error(403, "not_published", messages.not_published(release.at),
                          [(b"retry-after", str(max(1, int(release.seconds_left()))).encode()),
                           (b"cache-control", b"no-store")],
                          release_at=release.at.isoformat())  # type: ignore[union-attr]
        served = self.lookup.served.get(year)
        if served is None:
            return _error(404, "year_not_found", messages.year_not_found(year))
        body = served.stats_body(where)
        if body is None:
            if where == NATIONAL:
                return _error(404, "national_not_found", messages.national_not_found(year))
            return _error(404, "province_not_found", messages.province_not_found(where, year))
        etag = served.stats_etag(where)
        headers = [(b"etag", etag), (b"cache-control", self.cache_control)]
        for name, value in scope["headers"]:
            if name == b"if-none-match" and (value.strip() == b"*" or etag in value):
                return 304, headers, b""
        headers.append((b"content-type", JSON))
        return 200, headers, body


def _error(status: int, code: str, message: str, headers: list | None = None,
           **extra: object) -> tuple[int, list, bytes]:
    return (status, [(b"content-type", JSON), *(headers or [])],
            error_body(code, message, **extra))
