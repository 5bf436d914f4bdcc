"""Numbers as Vietnamese readers write them: one formatter for pages and chatbot alike.

A leaf: it imports nothing of ours. Vietnamese uses a decimal comma ("7,75") and a dot
between thousands ("1.204").
"""

from __future__ import annotations

import math


def score(value: float) -> str:
    """7.75 -> '7,75'; 9.0 -> '9'; 25.5 -> '25,5' (to hundredths, trailing zeros dropped)."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text.replace(".", ",")


def thousands(value: int) -> str:
    """1204 -> '1.204'; 1150321 -> '1.150.321'."""
    return f"{value:,d}".replace(",", ".")


def percent(share: float) -> str:
    """A share (0.045) as a Vietnamese percentage to at most one decimal: '4,5%'.

    Tiny shares keep one significant digit rather than show as 0 ('0,02%')."""
    value = share * 100
    places = -math.floor(math.log10(value)) if 0 < value < 0.1 else 1
    text = f"{value:.{places}f}".rstrip("0").rstrip(".")
    return text.replace(".", ",") + "%"
