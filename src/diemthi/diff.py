"""The cells that differ between two snapshots: what a change file really changed.

One row per changed (candidate, subject), as ``diemthi diff`` prints it (CSV
``sbd,subject,old,new``); a status is written as its key (``absent``), a subject not sat
as empty. Combination totals follow from the scores and are not listed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import orjson

from . import store
from .reference import SUBJECTS


def _cells(stored: bytes | None) -> dict[str, str]:
    if stored is None:
        return {}
    doc = orjson.loads(b"{" + stored)
    out = {k: f"{v:g}" for k, v in doc.get("scores", {}).items()}
    out.update(doc.get("statuses") or {})
    return out


def changed_cells(old: Path, new: Path) -> Iterator[tuple[str, str, str, str]]:
    """(sbd, subject, old, new) for every cell that differs, in SBD and subject order."""
    db = store.connect_readonly(new)
    try:
        db.execute("ATTACH DATABASE ? AS old", (store.readonly_uri(old),))
        rows = db.execute(
            "SELECT n.sbd, o.body, n.body FROM candidates n LEFT JOIN old.candidates o "
            "USING (sbd) WHERE o.body IS NOT n.body "
            "UNION ALL SELECT o.sbd, o.body, NULL FROM old.candidates o "
            "WHERE o.sbd NOT IN (SELECT sbd FROM candidates) ORDER BY 1")
        order = {key: i for i, key in enumerate(SUBJECTS)}
        for sbd, before, after in rows:
            a, b = _cells(before), _cells(after)
            for key in sorted(a.keys() | b.keys(), key=lambda k: order.get(k, len(order))):
                if a.get(key, "") != b.get(key, ""):
                    yield f"{sbd:08d}", key, a.get(key, ""), b.get(key, "")
    finally:
        db.close()
