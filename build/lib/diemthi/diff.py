"""What changed between two snapshots of one year (after phúc khảo): per candidate and
subject, the old and the new value.

One row per changed (candidate, subject), as ``diemthi diff`` prints it (CSV
``sbd,subject,old,new``); a score as staff read it (7.75, 9), a status as its key
(``absent``), a subject not sat as empty. Combination totals follow from the scores and
are not listed. The chatbot's change notice uses the same comparison.
"""

from __future__ import annotations

import csv
import sqlite3
from typing import IO, Iterator

import orjson

from . import store
from .reference import SUBJECTS

HEADER = ("sbd", "subject", "old", "new")
_ORDER = {key: i for i, key in enumerate(SUBJECTS)}


def score_text(value: float | None) -> str:
    """A score as staff read it in a CSV: 7.75, 9 (empty: not sat)."""
    if value is None:
        return ""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def cells(doc: dict | None) -> dict[str, str]:
    """Subject → what the candidate has in it: a score, or a status by its key."""
    if doc is None:
        return {}
    out = {key: score_text(value) for key, value in doc.get("scores", {}).items()}
    out.update(doc.get("statuses") or {})
    return out


def changed_scores(old: dict | None, new: dict | None) -> list[tuple[str, str, str]]:
    """(subject, old, new) for each subject that differs between two candidate documents
    (None: the candidate is missing from that snapshot), in the subjects' order."""
    before, after = cells(old), cells(new)
    return [(key, before.get(key, ""), after.get(key, ""))
            for key in sorted(before.keys() | after.keys(),
                              key=lambda k: (_ORDER.get(k, len(_ORDER)), k))
            if before.get(key, "") != after.get(key, "")]


def candidate(info: store.SnapshotInfo, sbd: str) -> dict | None:
    body = store.lookup(info, sbd)
    return orjson.loads(body) if body else None


def changes(old: store.SnapshotInfo,
            new: store.SnapshotInfo) -> Iterator[tuple[str, str, str, str]]:
    """(sbd, subject, old, new) for every changed (candidate, subject), in SBD order.

    SQLite compares the stored bodies (one join over both files); only the rows that
    differ are parsed.
    """
    db = sqlite3.connect("file::memory:", uri=True)  # so ATTACH takes URIs
    try:
        db.execute("ATTACH DATABASE ? AS a", (store.readonly_uri(old.path),))
        db.execute("ATTACH DATABASE ? AS b", (store.readonly_uri(new.path),))
        rows = db.execute(
            "SELECT a.sbd, a.body, b.body FROM a.candidates a LEFT JOIN b.candidates b "
            "USING (sbd) WHERE b.body IS NULL OR a.body != b.body "
            "UNION ALL SELECT b.sbd, NULL, b.body FROM b.candidates b "
            "WHERE b.sbd NOT IN (SELECT sbd FROM a.candidates) ORDER BY 1")
        for number, body_a, body_b in rows:
            doc_a = orjson.loads(b"{" + body_a) if body_a else None
            doc_b = orjson.loads(b"{" + body_b) if body_b else None
            for subject, before, after in changed_scores(doc_a, doc_b):
                yield f"{number:08d}", subject, before, after
    finally:
        db.close()


def write_csv(rows: Iterator[tuple[str, str, str, str]], out: IO[str]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    return count
