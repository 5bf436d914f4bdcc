"""What changed between two snapshots of one year (after phúc khảo): per candidate and
subject, the old and the new score. Combination totals follow from the scores and are
not listed."""

from __future__ import annotations

import csv
import sqlite3
from typing import IO, Iterator

import orjson

from . import store

HEADER = ("sbd", "subject", "old", "new")


def score_text(value: float | None) -> str:
    """A score as staff read it in a CSV: 7.75, 9 (empty: not sat)."""
    if value is None:
        return ""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def changed_scores(old: dict | None, new: dict | None) -> list[tuple[str, str, str]]:
    """(subject, old, new) for each subject whose score differs between two candidate
    documents (None: the candidate is missing from that snapshot)."""
    before = (old or {}).get("scores", {})
    after = (new or {}).get("scores", {})
    out = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            out.append((key, score_text(before.get(key)), score_text(after.get(key))))
    return out


def candidate(info: store.SnapshotInfo, sbd: str) -> dict | None:
    body = store.lookup(info, sbd)
    return orjson.loads(body) if body else None


def changes(old: store.SnapshotInfo, new: store.SnapshotInfo) -> Iterator[tuple[str, str, str, str]]:
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
        env_a, env_b = store.envelope(old), store.envelope(new)
        for number, body_a, body_b in rows:
            sbd = f"{number:08d}"
            doc_a = orjson.loads(env_a.body(sbd, body_a)) if body_a else None
            doc_b = orjson.loads(env_b.body(sbd, body_b)) if body_b else None
            for subject, before, after in changed_scores(doc_a, doc_b):
                yield sbd, subject, before, after
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
