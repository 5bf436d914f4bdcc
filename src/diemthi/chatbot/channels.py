"""Which Zalo channel carries a message, chosen at the moment it is sent.

Zalo prices a message by how it is addressed and by the age of the user's last message:
- in-thread (``recipient.message_id`` = the user's msg_id): free for the free window
  (48 h) after that message, up to 8 replies per incoming message;
- ``cs`` by ``recipient.user_id``: allowed while the last message is inside the reply
  window (7 days), charged (or taken from the OA's monthly quota);
- past that, only a ZBS "Tin Giao dịch" template (``transaction_education``) reaches
  the user, when the OA has it (``DIEMTHI_ZALO_TRANSACTION=1``);
- else the message is given up with the reason ``window``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .outbox import Latest, Message

REPLIES_PER_MESSAGE = 8  # Zalo's free in-thread replies per incoming message
MAX_TEXT = 2000  # characters in one Zalo text message
HEADER_MAX, TEXT_MAX, TEXT_ELEMENTS = 100, 250, 2
KEY_MAX, VALUE_MAX, EXTRA_ROWS = 35, 100, 5
TEMPLATE_TYPE = "transaction_education"


@dataclass(frozen=True)
class Route:
    channel: str  # reply | cs | transaction
    recipient: dict[str, str]
    thread: str | None = None  # the msg_id an in-thread reply counts against


@dataclass(frozen=True)
class Windows:
    free: float  # seconds
    reply: float
    transaction: bool


def choose(message: Message, latest: Latest | None, now: float, windows: Windows,
           in_flight: dict[str, int]) -> Route | None:
    """The channel for ``message`` now, or None (given up: ``window``).

    ``in_flight`` counts in-thread sends under way per msg_id, so concurrent sends
    never exceed the 8 replies together.
    """
    def in_thread(msg_id: str | None, at: float | None, used: int) -> Route | None:
        if msg_id is None or at is None or now - at >= windows.free:
            return None
        if used + in_flight.get(msg_id, 0) >= REPLIES_PER_MESSAGE:
            return None
        return Route("reply", {"message_id": msg_id}, thread=msg_id)

    route = in_thread(message.reply_to, message.reply_to_at, message.replies_used)
    if route is None and latest is not None:
        route = in_thread(latest.msg_id, latest.at, latest.replies_used)
    if route is not None:
        return route
    if latest is not None and now - latest.at < windows.reply:
        return Route("cs", {"user_id": message.user_id})
    if windows.transaction and message.template:
        return Route("transaction", {"user_id": message.user_id})
    return None


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Texts of at most ``limit`` characters, cut at line ends where possible."""
    parts: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit + 1)
        if cut <= 0:
            cut = limit
        parts.append(text[:cut].rstrip("\n"))
        text = text[cut:].lstrip("\n")
    if text or not parts:
        parts.append(text)
    return parts


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def transaction_payload(header: str, sbd: str, rows: list[tuple[str, str]],
                        lines: list[str], public_url: str = "") -> dict[str, Any]:
    """A ``transaction_education`` template within Zalo's limits: a header (≤ 100),
    a table whose first row is "Mã thí sinh" (Zalo wants a key that starts with "Mã")
    and at most 5 more rows (key ≤ 35, value ≤ 100), the scores in at most two text
    elements (≤ 250 each), and a button to the result page when there is one."""
    table = [{"key": "Mã thí sinh", "value": sbd}]
    table += [{"key": _clip(k, KEY_MAX), "value": _clip(v, VALUE_MAX)}
              for k, v in rows[:EXTRA_ROWS]]
    texts: list[str] = []
    current = ""
    for line in lines:
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) <= TEXT_MAX:
            current = candidate
            continue
        if current:
            texts.append(current)
        current = _clip(line, TEXT_MAX)
    if current:
        texts.append(current)
    if len(texts) > TEXT_ELEMENTS:
        texts = texts[:TEXT_ELEMENTS]
        texts[-1] = _clip(texts[-1].rstrip() + "\n…", TEXT_MAX)
    elements: list[dict[str, Any]] = [{"type": "header", "content": _clip(header, HEADER_MAX)},
                                      {"type": "table", "content": table}]
    elements += [{"type": "text", "content": t} for t in texts]
    payload: dict[str, Any] = {"template_type": TEMPLATE_TYPE, "language": "VI",
                               "elements": elements, "buttons": []}
    if public_url:
        payload["buttons"] = [{"type": "oa.open.url", "title": "Xem chi tiết",
                               "payload": {"url": result_url(public_url, sbd)}}]
    return payload


def result_url(public_url: str, sbd: str) -> str:
    return f"{public_url.rstrip('/')}/tra-cuu/{sbd}"
