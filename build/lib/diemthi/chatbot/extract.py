"""Finding candidate numbers in free text, as people type them.

"SBD 08000123", "tra diem 08000123", "08 000 123", "08.000.123", two or three numbers in
one message. A run of digits may be split by spaces, dots or dashes; groups are joined
until they make 8 digits. Runs of 7 or 9 digits are remembered so the reply can say that
an SBD has 8 digits.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

MAX_SBDS = 3
_RUN = re.compile(r"\d+(?:[ .\-]\d+)*")
_SEP = re.compile(r"[ .\-]")


@dataclass
class Found:
    sbds: list[str] = field(default_factory=list)  # up to MAX_SBDS, in order, no repeats
    wrong_length: list[str] = field(default_factory=list)  # 7 or 9 digit numbers
    more: bool = False  # there were more than MAX_SBDS


def _ascii_digits(text: str) -> str:
    """Full-width or other Unicode digits become ASCII; everything else stays."""
    return "".join(str(unicodedata.digit(c)) if c.isdigit() and not c.isascii()
                   and unicodedata.digit(c, None) is not None else c for c in text)


def find_sbds(text: str) -> Found:
    found = Found()
    text = _ascii_digits(unicodedata.normalize("NFC", text))
    for run in _RUN.findall(text):
        groups = _SEP.split(run)
        numbers: list[str] = []
        current = ""
        for group in groups:
            if len(group) == 8 and not current:
                numbers.append(group)
                continue
            current += group
            if len(current) == 8:
                numbers.append(current)
                current = ""
            elif len(current) > 8:  # overshot: start again from this group
                current = group if len(group) < 8 else ""
        joined = "".join(groups)
        if not numbers and len(joined) in (7, 9):
            found.wrong_length.append(joined)
        for number in numbers:
            if number in found.sbds:
                continue
            if len(found.sbds) == MAX_SBDS:
                found.more = True
                break
            found.sbds.append(number)
    return found
