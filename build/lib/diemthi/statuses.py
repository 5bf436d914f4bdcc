"""Status marks in a score cell: exempt, absent, suspended, cancelled.

Official files write a word where a candidate has no score for a reason: ``Miễn``/``MT``
(exempt from the foreign language), ``Vắng``/``V`` (absent), ``Đình chỉ``/``ĐC``
(suspended), ``Hủy`` (paper cancelled). A status is stored beside the scores and shown,
never counted as a score: no total, no rank, not in any distribution.
"""

from __future__ import annotations

import unicodedata

EXEMPT, ABSENT, SUSPENDED, CANCELLED = "exempt", "absent", "suspended", "cancelled"

#: How a status reads to a student (chatbot, pages): "Ngoại ngữ: miễn thi".
NAMES_VI = {EXEMPT: "miễn thi", ABSENT: "vắng thi", SUSPENDED: "đình chỉ thi",
            CANCELLED: "hủy bài thi"}


def _fold(text: str) -> str:
    """No case, no accents, no spaces or dots: 'Đình chỉ' and 'dinh chi' and 'ĐC.' agree."""
    text = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D")).lower()
    return "".join(c for c in text if c.isascii() and c.isalnum())


_MARKS = {_fold(mark): status for status, marks in {
    EXEMPT: ("Miễn", "MT", "Miễn thi"),
    ABSENT: ("Vắng", "V", "Vắng thi"),
    SUSPENDED: ("Đình chỉ", "ĐC", "Đình chỉ thi"),
    CANCELLED: ("Hủy", "Huỷ", "Hủy bài", "Hủy bài thi"),
}.items() for mark in marks}


def status_of(cell: str) -> str | None:
    """The status a cell's text marks, or None when it is not a status mark."""
    if not cell or len(cell) > 20:
        return None
    return _MARKS.get(_fold(cell))
