"""Gzipped weight of a built Zalo Mini App (JS + CSS), as `make miniapp` prints it.

    python3 scripts/miniapp_size.py miniapp/www

Exits 1 when the total passes the budget of issue 20 (150 KB, 1 KB = 1024 bytes).
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

BUDGET = 150 * 1024


def weights(www: Path) -> dict[str, int]:
    """Each built JS and CSS file under ``www`` -> its size gzipped at level 9."""
    files = sorted(p for p in www.rglob("*") if p.suffix in (".js", ".css") and p.is_file())
    return {str(p.relative_to(www)): len(gzip.compress(p.read_bytes(), 9)) for p in files}


def main(argv: list[str]) -> int:
    www = Path(argv[1] if len(argv) > 1 else "miniapp/www")
    sizes = weights(www)
    if not sizes:
        print(f"miniapp: nothing built under {www}", file=sys.stderr)
        return 1
    for name, size in sizes.items():
        print(f"  {size / 1024:7.1f} KB  {name}")
    total = sum(sizes.values())
    verdict = "ok" if total <= BUDGET else "OVER BUDGET"
    print(f"miniapp: {total / 1024:.1f} KB gzipped (JS + CSS), budget {BUDGET // 1024} KB: {verdict}")
    return 0 if total <= BUDGET else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
