"""The limits of what we read from a score file, and the error that refuses one.

A leaf, shared by the readers (:mod:`diemthi.dialects` for CSV, XLS and ODS, and
:mod:`diemthi.xlsx`): one cap for each rule, whatever the format, and one way of showing a
cell in a message to staff.
"""

from __future__ import annotations


class DialectError(ValueError):
    """The file cannot be read as a score table; the message is for staff (Vietnamese)."""


#: A record longer than this is refused: no score row comes near it, and it bounds memory
#: whatever the input (a 200 MB line, a quote that is never closed).
MAX_RECORD_BYTES = 1 << 20
MAX_COLUMNS = 1024
MAX_ROWS = 1_048_576  # Excel's own last row
HEAD_ROWS = 30  # title rows we look through for the header row


def shown(text: object, limit: int = 40) -> str:
    """A cell as it may be echoed to a terminal or a report: no control characters, short."""
    text = str(text)
    if len(text) > limit:
        text = text[:limit] + f"… ({len(text)} ký tự)"
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256
                   else f"\\u{ord(c):04x}" for c in text)
