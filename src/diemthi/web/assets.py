"""Our static files under content-hashed names, cacheable for a year.

The files are few and small: they are read once into memory, and each is served at
``/static/<stem>.<hash><suffix>`` (``site.3f9c2a1b7d.css``). A new version has a new name,
so a browser or edge never needs to revalidate one.
"""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path
from typing import Callable

IMMUTABLE = b"public, max-age=31536000, immutable"


class Assets:
    def __init__(self, folder: Path, prefix: str = "/static/"):
        self.prefix = prefix
        self.urls: dict[str, str] = {}  # "site.css" -> "/static/site.<hash>.css"
        self.files: dict[str, tuple[bytes, bytes]] = {}  # hashed name -> (type, bytes)
        for path in sorted(folder.iterdir()):
            if not path.is_file() or path.name.startswith("."):
                continue
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()[:10]
            hashed = f"{path.stem}.{digest}{path.suffix}"
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if kind.startswith("text/") or kind.endswith("javascript"):
                kind += "; charset=utf-8"
            self.urls[path.name] = prefix + hashed
            self.files[hashed] = (kind.encode(), data)

    def url(self, name: str) -> str:
        """The hashed URL of ``name`` (a template calls ``asset('site.css')``)."""
        return self.urls[name]

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        """``GET /static/{name}``: the file, or 404 for any name that is not one of ours."""
        found = self.files.get(scope["path_params"]["name"])
        if found is None:
            status, headers, body = 404, [(b"content-type", b"text/plain; charset=utf-8"),
                                          (b"cache-control", b"no-store")], b"not found"
        else:
            kind, body = found
            status, headers = 200, [(b"content-type", kind), (b"cache-control", IMMUTABLE),
                                    (b"x-content-type-options", b"nosniff")]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body",
                    "body": b"" if scope["method"] == "HEAD" else body})
