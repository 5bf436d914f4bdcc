"""JSON error bodies and responses, shared by every route (API, webhook, pages' API twin).

A leaf: it imports nothing of ours, so any module may use it without an import circle.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.responses import Response

JSON = b"application/json"

# one element of an If-None-Match list: optional W/, a quoted opaque tag (RFC 9110, 8.8.3)
_ENTITY_TAG = re.compile(rb'[ \t]*(?:W/)?("[\x21\x23-\x7e\x80-\xff]*")[ \t]*(?:,|\Z)')
_EMPTY_ELEMENT = re.compile(rb"[ \t]*,")


def error_body(code: str, message: str, **extra: Any) -> bytes:
    """``{"error": {"code", "message", ...}}``; the message is Vietnamese, for people."""
    return orjson.dumps({"error": {"code": code, "message": message, **extra}})


def error_response(status: int, code: str, message: str, headers: dict | None = None,
                   **extra: Any) -> Response:
    return Response(error_body(code, message, **extra), status, headers=headers,
                    media_type="application/json")


def etag_matches(if_none_match: bytes, etag: bytes) -> bool:
    """Whether an ``If-None-Match`` value names ``etag`` (weak comparison, so ``W/`` is
    ignored) or is ``*``; the caller asks only when the resource exists. A malformed list
    matches nothing: the full response is always a safe answer."""
    if if_none_match.strip() == b"*":
        return True
    pos, end = 0, len(if_none_match)
    while pos < end:
        empty = _EMPTY_ELEMENT.match(if_none_match, pos)
        if empty:
            pos = empty.end()
            continue
        element = _ENTITY_TAG.match(if_none_match, pos)
        if element is None:
            return False
        if element.group(1) == etag:
            return True
        pos = element.end()
    return False
