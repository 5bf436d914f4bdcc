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


def top_percent(rank: dict) -> str:
    """'top 4,5%' from a rank ``{"higher", "of", ...}``: the share of candidates at the
    candidate's place or above, rounded up to a tenth so that nobody reads 'top 0%'."""
    share = math.ceil((rank["higher"] + 1) * 1000 / rank["of"]) / 10
    return f"top {score(share)}%"
