"""JSON error bodies and responses, shared by every route (API, webhook, pages' API twin).

A leaf: it imports nothing of ours, so any module may use it without an import circle.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

JSON = b"application/json"


def error_body(code: str, message: str, **extra: Any) -> bytes:
    """``{"error": {"code", "message", ...}}``; the message is Vietnamese, for people."""
    return orjson.dumps({"error": {"code": code, "message": message, **extra}})


def error_response(status: int, code: str, message: str, headers: dict | None = None,
                   **extra: Any) -> Response:
    return Response(error_body(code, message, **extra), status, headers=headers,
                    media_type="application/json")
