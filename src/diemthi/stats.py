"""``GET /v1/stats/{year}[/{province_code}|/national]``: phổ điểm documents as ready bytes.

The documents are built once per served snapshot (:mod:`diemthi.standing`); a request picks
the bytes and answers them with an ETag, ``Cache-Control`` and ``304`` as the lookup does.
"""

from __future__ import annotations

from typing import Callable

from . import messages
from .gate import error, snapshot_for
from .lookup import Lookup, Served
from .responses import JSON, etag_matches
from .settings import Settings
from .standing import NATIONAL


class StatsEndpoint:
    """Plain ASGI, like the lookup: no Request or Response objects."""

    def __init__(self, settings: Settings, lookup: Lookup):
        self.lookup = lookup
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
            return error(400, "invalid_year", messages.INVALID_YEAR)
        year = int(text)
        served = snapshot_for(self.lookup, year)
        if not isinstance(served, Served):
            return served
        body = served.stats_body(where)
        if body is None:
            if where == NATIONAL:
                return error(404, "national_not_found", messages.national_not_found(year))
            return error(404, "province_not_found", messages.province_not_found(where, year))
        etag = served.stats_etag(where)
        headers = [(b"etag", etag), (b"cache-control", self.cache_control)]
        conditions = [value for name, value in scope["headers"] if name == b"if-none-match"]
        if conditions and etag_matches(b",".join(conditions), etag):
            return 304, headers, b""
        headers.append((b"content-type", JSON))
        return 200, headers, body


