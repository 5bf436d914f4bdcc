"""The one SBD rule: eight ASCII digits, the first two a province code.

Every place that checks a candidate number (importer, API, pages, CLI, chatbot) calls
:func:`is_sbd`; whether the province code exists depends on the year and is checked by
the caller against :func:`diemthi.reference.provinces`.
"""

from __future__ import annotations

LENGTH = 8


def is_sbd(text: str) -> bool:
    """Eight ASCII digits (``"０８..."`` and ``"٠٨..."`` are not: ``isdigit`` alone allows them)."""
    return len(text) == LENGTH and text.isascii() and text.isdigit()


def province_code(sbd: str) -> str:
    """The first two digits: the province that registered the candidate."""
    return sbd[:2]
