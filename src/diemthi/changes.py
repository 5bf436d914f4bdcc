"""A change file (after phúc khảo) against the snapshot it corrects.

The department receives a list of changed scores, not a new full file: rows of ``sbd``
and the changed subjects, optionally with the old values in ``<subject>_cu`` /
``<Môn> cũ`` columns. Each old value given must be what the base snapshot holds (so we
change the scores we serve, not a stale copy); an SBD must be in the base. The result is a
complete new snapshot, the base plus the changes, so everything that reads snapshots is
unchanged; changed candidates carry ``"updated_after_appeal": true``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import chain
from pathlib import Path
from typing import Iterable

import orjson

from . import history, store
from .dialects import OLD_SUFFIX, SBD, DialectError, Table
from .importer import (FileSummary, ImportRefused, ImportResult, Plan, Report, RowError,
                       _Converter, _manifest_files, file_records, finish, new_snapshot_id,
                       open_tables, parse_score, record, report_name, summarise)
from .reference import SUBJECTS, provinces
from .sbd import is_sbd
from .statuses import NAMES_VI, status_of

_KEYS = tuple(SUBJECTS)
_SUBJECT_COLUMNS = tuple((i, k, k) for i, k in enumerate(_KEYS))  # bodies in table order


@dataclass
class Candidate:
    """One candidate as the base snapshot holds them: scores in hundredths, statuses."""

    scores: dict[str, int]
    statuses: dict[str, str]
    language: str

    @classmethod
    def from_body(cls, stored: bytes) -> "Candidate":
        doc = orjson.loads(b"{" + stored)
        return cls({k: round(v * 100) for k, v in doc["scores"].items()},
                   dict(doc.get("statuses") or {}),
                   (doc.get("foreign_language") or {}).get("code", ""))

    def value(self, key: str) -> int | str | None:
        return self.scores.get(key, self.statuses.get(key))

    def set(self, key: str, value: int | str) -> None:
        if isinstance(value, int):
            self.scores[key] = value
            self.statuses.pop(key, None)
        else:
            self.statuses[key] = value
            self.scores.pop(key, None)

    def body(self, converter: _Converter) -> bytes:
        """The stored body, built as the importer builds it (totals included)."""
        taken = tuple(i for i, k in enumerate(_KEYS) if k in self.scores)
        text = converter.body(taken, self.language,
                              [self.scores[_KEYS[i]] for i in taken])[:-1]
        if self.statuses:
            text += ',"statuses":' + orjson.dumps(self.statuses).decode()
        return (text + ',"updated_after_appeal":true}').encode()


def _shown_value(value: int | str | None) -> str:
    if value is None:
        return "trống"
    if isinstance(value, str):
        return NAMES_VI.get(value, value)
    return f"{value / 100:g}"


def _cell_value(raw: str) -> int | str | None:
    """A change-file cell: hundredths, a status, None (empty) or an error reason."""
    value = parse_score(raw)
    if isinstance(value, str):
        status = status_of(raw.strip())
        if status is None:
            return RowReason(value)
        return status
    return value


class RowReason(str):
    """A cell that is neither a score nor a status: the reason, for the report."""


def import_changes(data_dir: Path, year: int, base_id: str, files: list[Path], *,
                   activate: bool = False, max_errors: int = 0, maps: Iterable[str] = (),
                   by: str | None = None, reason: str | None = None) -> ImportResult:
    """Build a new snapshot: ``base_id`` with the changes in ``files`` applied.

    Raises :class:`ImportRefused` (nothing built) when an old value disagrees with the
    base, an SBD is not in it, or a cell is bad, beyond ``max_errors`` rows.
    """
    try:
        result, changed, rows = _build(data_dir, year, base_id, files, activate=activate,
                                       max_errors=max_errors, maps=maps)
    except ImportRefused as exc:
        history.append(data_dir, "refused", year=year, snapshot=exc.snapshot_id,
                       report=exc.report, base=base_id, files=file_records(files), by=by,
                       reason=reason, error=str(exc),
                       bad_rows=exc.result.bad_rows if exc.result else None)
        raise
    record(data_dir, result, by, reason, rows=rows, base=base_id, changed=changed)
    return result


def _build(data_dir: Path, year: int, base_id: str, files: list[Path], *, activate: bool,
           max_errors: int, maps: Iterable[str]) -> tuple[ImportResult, int, int]:
    try:
        base = store.get_snapshot(data_dir, base_id)
    except store.StoreError as exc:
        raise ImportRefused(str(exc)) from exc
    if base.year != year:
        raise ImportRefused(f"bản chụp gốc {base_id} là của năm {base.year}, không phải {year}")
    tables = open_tables(files, maps)
    created = datetime.now(timezone.utc)
    summaries = summarise(tables)
    snapshot_id = new_snapshot_id(year, created, [s.sha256 for s in summaries])
    report = Report(data_dir / "reports" / report_name(snapshot_id))
    changed: dict[int, Candidate] = {}
    lines: dict[int, str] = {}  # SBD -> where it was changed first
    db = store.connect_readonly(base.path)
    try:
        for table, summary in zip(tables, summaries):
            _apply(table, summary, db, year, changed, lines, report)
    except DialectError as exc:
        report.close()
        raise ImportRefused(f"{exc}; không tạo bản chụp nào", snapshot_id=snapshot_id) \
            from exc
    finally:
        db.close()
    result = ImportResult(year, summaries, {}, {}, report.sample, [],
                          report_path=report.close(), error_count=report.count)
    if result.bad_rows > max_errors or not changed:
        why = (f"{result.bad_rows} dòng lỗi (cho phép tối đa {max_errors})"
               if result.bad_rows > max_errors else "không có điểm nào thay đổi")
        raise ImportRefused(f"không nhập: {why}; không tạo bản chụp nào", result,
                            snapshot_id)

    converter = _Converter(Plan("", year, (0, SBD), _SUBJECT_COLUMNS, None, len(_KEYS)))
    store.clean_partials(data_dir)
    writer = store.SnapshotWriter(data_dir, snapshot_id)
    bodies = [c.body(converter) for sbd, c in changed.items()]
    try:
        writer.copy_from(base.path)
        writer.replace(list(changed), bodies)
        distribution = _distribution(base.path, dict(zip(changed, bodies)))
    except BaseException:
        writer.abort()
        raise
    manifest = dict(base.manifest)
    manifest.update({
        "id": snapshot_id, "created_at": created.isoformat(timespec="milliseconds"),
        "base": base_id, "changed": len(changed), "changes": _manifest_files(summaries),
        "province_names": base.manifest.get("province_names") or provinces(year),
    })
    finish(data_dir, writer, manifest, result, activate, distribution)
    return result, len(changed), int(base.manifest.get("rows", 0))


def _distribution(base: Path, new: dict[int, bytes]) -> list[tuple[str, str, int, int]]:
    """The base's distribution tables with the changed candidates' old values taken out
    and their new ones put in (scores and combination totals), so ranks stay exact."""
    counts: Counter = Counter()
    db = store.connect_readonly(base)
    try:
        for key, province, value, count in db.execute(
                "SELECT key, province, value, count FROM distribution"):
            counts[(key, province, value)] += count
        marks = ",".join("?" * len(new))
        old = dict(db.execute(f"SELECT sbd, body FROM candidates WHERE sbd IN ({marks})",
                              list(new)))
    finally:
        db.close()
    for sign, bodies in ((-1, old), (1, new)):
        for sbd, body in bodies.items():
            doc = orjson.loads(b"{" + body)
            province = f"{sbd:08d}"[:2]
            for key, value in chain(doc["scores"].items(), doc["combinations"].items()):
                counts[(key, province, round(value * 100))] += sign
    return [(key, province, value, n) for (key, province, value), n in counts.items() if n]


def _apply(table: Table, summary: FileSummary, db, year: int, changed: dict[int, Candidate],
           first: dict[int, str], report: Report) -> None:
    """Check and apply one change file's rows; every bad cell goes to the report."""
    name = table.path.name
    known = set(provinces(year))
    for part in table.parts:
        cols = part.columns
        subjects = [(k, i) for k, i in cols.items() if k in SUBJECTS]
        olds = {k[:-len(OLD_SUFFIX)]: i for k, i in cols.items() if k.endswith(OLD_SUFFIX)}
        missing = [k for k in olds if k not in cols]
        if missing:
            raise DialectError(f"{name}: có cột điểm cũ '{part.headers[olds[missing[0]]]}' mà "
                               f"không có cột điểm mới của môn {SUBJECTS[missing[0]].name}")
        for chunk in part.chunks():
            for line, cells in zip(*chunk.table()):
                if not any(c.strip() for c in cells):
                    continue
                summary.rows += 1
                errors = _row(name, part.sheet, line, cells, cols, subjects, olds, part.headers,
                              db, known, changed, first)
                if errors:
                    summary.bad_rows += 1
                    report.add(errors)
                else:
                    summary.imported += 1


def _row(name: str, sheet: str, line: int, cells: list[str], cols: dict[str, int],
         subjects: list[tuple[str, int]], olds: dict[str, int], headers: list[str], db,
         known: set[str], changed: dict[int, Candidate], first: dict[int, str]
         ) -> list[RowError]:
    def error(column: str, value: str, why: str) -> list[RowError]:
        return [RowError(name, line, column, value, why, sheet)]

    if len(cells) < len(headers):
        cells = cells + [""] * (len(headers) - len(cells))
    sbd = cells[cols[SBD]].strip()
    if not is_sbd(sbd):
        return error(headers[cols[SBD]], sbd, "SBD phải gồm đúng 8 chữ số")
    if sbd[:2] not in known:
        return error(headers[cols[SBD]], sbd, f"mã tỉnh '{sbd[:2]}' không có trong danh mục")
    where = f"{sheet}!{line}" if sheet else str(line)
    n = int(sbd)
    if n in first:
        return error(headers[cols[SBD]], sbd, f"SBD đã sửa ở dòng {first[n]} của tệp sửa điểm")
    row = db.execute("SELECT body FROM candidates WHERE sbd = ?", (n,)).fetchone()
    if row is None:
        return error(headers[cols[SBD]], sbd, "SBD không có trong bản chụp gốc")
    candidate = Candidate.from_body(row[0])
    errors: list[RowError] = []
    updates: dict[str, int | str] = {}
    for key, i in subjects:
        if key in olds:
            raw_old = cells[olds[key]]
            if raw_old.strip():
                old = _cell_value(raw_old)
                if isinstance(old, RowReason):
                    errors += error(headers[olds[key]], raw_old, str(old))
                elif old != candidate.value(key):
                    errors += error(headers[olds[key]], raw_old,
                                    f"điểm cũ không khớp bản chụp gốc "
                                    f"({_shown_value(candidate.value(key))})")
        raw = cells[i]
        if not raw.strip():
            continue  # this subject does not change
        new = _cell_value(raw)
        if isinstance(new, RowReason):
            errors += error(headers[i], raw, str(new))
        elif new is not None:
            updates[key] = new
    if errors:
        return errors
    before = (dict(candidate.scores), dict(candidate.statuses))
    for key, value in updates.items():
        candidate.set(key, value)
    if (candidate.scores, candidate.statuses) != before:
        changed[n] = candidate
        first[n] = where
    return []
