"""Zalo's webhook signature: ``X-ZEvent-Signature: mac=<hex sha256(app_id + body +
timestamp + OA secret key)>``, with app_id and timestamp taken from the body."""

from __future__ import annotations

import hashlib
import hmac

HEADER = "x-zevent-signature"


def mac(app_id: str, body: bytes, timestamp: str, oa_secret_key: str) -> str:
    return hashlib.sha256(app_id.encode() + body + timestamp.encode()
                          + oa_secret_key.encode()).hexdigest()


def sign(app_id: str, body: bytes, timestamp: str, oa_secret_key: str) -> str:
    """The header value Zalo would send (tests and load tests sign with it)."""
    return "mac=" + mac(app_id, body, timestamp, oa_secret_key)


def verify(header: str | None, app_id: str, body: bytes, timestamp: str,
           oa_secret_key: str) -> bool:
    """Constant-time check of the header against the body."""
    if not header:
        return False
    given = header.strip()
    if given.lower().startswith("mac="):
        given = given[4:]
    expected = mac(app_id, body, timestamp, oa_secret_key)
    return hmac.compare_digest(given.lower().encode(), expected.encode())
