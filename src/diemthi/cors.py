"""CORS for the read-only routes, so a Zalo Mini App or another site can call the API.

Off unless ``DIEMTHI_CORS_ORIGINS`` lists origins. Only ``/v1/scores/...`` and
``/v1/stats/...`` answer cross-origin; the webhook, ``/metrics`` and the rest never do.
Starlette's :class:`~starlette.middleware.cors.CORSMiddleware` does the work (preflight,
``Vary: Origin``); this module only decides which paths it sees.
"""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

READ_ONLY = ("/v1/scores/", "/v1/stats/")
# What a page may read of our answers besides the safelisted headers: when to come back
# (429, 403 before the release) and the validator for a conditional request.
EXPOSED = ("Retry-After", "ETag")


class ReadOnlyCORS:
    """Send read-only paths through CORS for ``origins``; everything else goes straight by."""

    def __init__(self, app: ASGIApp, origins: tuple[str, ...]):
        self.app = app
        self.cors = CORSMiddleware(app, allow_origins=origins, allow_methods=("GET", "HEAD"),
                                   allow_headers=("If-None-Match",), expose_headers=EXPOSED,
                                   max_age=86400)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(READ_ONLY):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
