"""Official score files → validated rows → one snapshot, with every bad row reported.

The row loop is the importer's hot path: a score cell is validated once per distinct
string (a per-column memo), and each candidate's API response body is built here, once,
so the lookup service only fetches bytes. Chunks of rows are converted in worker
processes while the parent checks duplicates and writes SQLite.
"""

from __future__ import annotations

import csv
import ctypes
import gc
import hashlib
import multiprocessing
import os
import re
import signal
from array import array
from collections import Counter, deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import chain, compress, repeat
from operator import floordiv, itemgetter
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import orjson

from . import __version__, history, store
from .bodies import MAX_SCORE, body_formatter
from .dialects import (LANGUAGE_CODE, OLD_SUFFIX, SBD, Chunk, DialectError, Part, Table,
                       open_table, parse_maps, shown)
from .sbd import is_sbd
from .statuses import status_of
from .reference import COMBINATIONS, LANGUAGES, SUBJECTS, provinces, subjects_for

_NUMBER_RE = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")
_MEMO_LIMIT = 50_000  # distinct valid score cells remembered across chunks
SBD_SPACE = 10 ** 8  # SBDs are 8 digits


class ImportRefused(Exception):
    """The input was refused; nothing was built or activated. ``snapshot_id``: the id it
    would have had, which names its report (``reports/import-ID.csv``), once chosen."""

    def __init__(self, message: str, result: "ImportResult | None" = None,
                 snapshot_id: str | None = None):
        super().__init__(message)
        self.result = result
        self.snapshot_id = snapshot_id

    @property
    def report(self) -> str | None:
        """The report's file name, when one was written (once the id was chosen)."""
        return report_name(self.snapshot_id) if self.snapshot_id is not None else None


def report_name(snapshot_id: str) -> str:
    """An import's report, in DIR/reports/, named by the snapshot it builds (or would)."""
    return f"import-{snapshot_id}.csv"


@dataclass(frozen=True)
class RowError:
    file: str
    line: int
    column: str
    value: str
    reason: str  # Vietnamese, for staff
    sheet: str = ""  # a workbook's sheet: the line is "Sheet2!17"

    @property
    def where(self) -> str:
        return f"{self.sheet}!{self.line}" if self.sheet else str(self.line)

    def __str__(self) -> str:
        return (f"{self.file}:{self.where}: cột '{shown(self.column)}' = '{shown(self.value)}': "
                f"{self.reason}")


def parse_score(raw: str) -> int | None | str:
    """A score cell → hundredths, None when empty (did not sit), or a reason string."""
    text = raw.strip()
    if not text:
        return None
    if "," in text and "." not in text:
        text = text.replace(",", ".")  # decimal comma
    number = _NUMBER_RE.fullmatch(text)
    if number is None:
        return "điểm không phải là số"
    sign, whole, frac = number.group(1), number.group(2), number.group(3) or ""
    if sign or len(whole.lstrip("0")) > 2:
        return "điểm phải từ 0 đến 10"  # "-0" too: a sign is a typo, not a score
    if frac.rstrip("0")[2:]:
        return "điểm có quá hai chữ số thập phân"
    hundredths = int(whole.lstrip("0") or "0") * 100 + int((frac + "00")[:2])
    if hundredths > MAX_SCORE:
        return "điểm phải từ 0 đến 10"
    return hundredths


@dataclass(frozen=True)
class Plan:
    """What the row loop needs to know about one file; small and picklable."""

    file: str
    year: int
    sbd: tuple[int, str]
    subjects: tuple[tuple[int, str, str], ...]  # (cell index, key, header)
    language: tuple[int, str] | None
    width: int  # number of header cells
    sheet: str = ""  # a workbook's sheet; "" for CSV


@dataclass
class ChunkResult:
    """One chunk converted. Records travel between processes as two blobs (an array of
    SBDs and newline-joined bodies): far cheaper to pickle than a million tuples."""

    sbds: list[int] | array = field(default_factory=list)
    bodies: list[str] | bytes = field(default_factory=list)
    lines: Sequence[int] = field(default_factory=list)  # line of each record
    errors: list[RowError] = field(default_factory=list)
    # bad rows whose SBD is valid: a later row with that SBD is still a duplicate
    bad_sbds: list[int] | array = field(default_factory=list)
    bad_lines: list[int] | array = field(default_factory=list)
    bad_rows: int = 0
    rows: int = 0
    # (subject or combination, province) -> hundredths -> candidates: the distribution
    # tables of the snapshot, and exact count/mean/min/max without per-cell sums
    counts: dict[tuple[str, str], Counter] = field(default_factory=dict)
    provinces: Counter = field(default_factory=Counter)


@dataclass(frozen=True)
class _Format:
    """How rows of one pattern (the subjects sat, the language) are written and counted."""

    row: Callable[[Sequence[str]], str]  # a row's score cells -> its stored body
    taken: tuple[int, ...]  # the score cells filled, as positions among the plan's subjects
    combinations: list[tuple[str, list[int]]]  # code -> the positions of its three subjects


# One letter per subject column of a plan: a header names each subject once (13 at most).
_MARKS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


class _Converter:
    """Per-process state for converting rows: memos and body templates, built once.

    Rows share few patterns (which subjects were sat, which language); each pattern gets
    one compiled function that reads a row's score cells through the memo of valid cells
    and writes the stored body, scores and combination totals, in one ``%``. A row is
    recognised by its group, (the score cells filled, as letters; language; province),
    so the common row costs a handful of C-level calls: no list of its scores is made.
    Any other row (an error, a status, a cell not seen before, a row to pad) takes the
    slow way, cell by cell, which also teaches the memo and the groups. The rows of each
    group are kept until the end of the chunk, when their values are counted column by
    column (C-level Counters) into the distribution tables.
    """

    def __init__(self, plan: Plan):
        self.plan = plan
        self.keys = [key for _, key, _ in plan.subjects]
        self.provinces = set(provinces(plan.year))
        self.languages = LANGUAGES  # code -> name
        idxs = [idx for idx, _, _ in plan.subjects]
        self.scores: Callable[[Sequence[str]], tuple[str, ...]] = (
            itemgetter(*idxs) if len(idxs) > 1 else (lambda c: (c[idxs[0]],)))
        self.memo: dict[str, int] = {}  # cell -> hundredths, valid non-empty cells only
        self.formats: dict[tuple[tuple[int, ...], str], _Format] = {}
        self.compact: dict[tuple[tuple[int, ...], str], Callable[[Sequence[int]], str]] = {}
        # (cells filled as _MARKS, language, province) -> (format, this chunk's rows)
        self.groups: dict[tuple[str, str, str], tuple[_Format, list[Sequence[str]]]] = {}

    def format(self, taken: tuple[int, ...], language: str) -> _Format:
        """The pattern's row function (:func:`bodies.body_formatter` over cells) and
        combinations."""
        found = self.formats.get((taken, language))
        if found is None:
            keys, lang, combos = self._pattern(taken, language)
            found = self.formats[(taken, language)] = _Format(
                body_formatter(keys, lang, combos, taken, self.memo), taken,
                [(code, [taken[p] for p in positions]) for code, positions in combos])
        return found

    def body(self, taken: tuple[int, ...], language: str, values: Sequence[int]) -> str:
        """The stored body from scores in hundredths (a change file's candidate)."""
        fn = self.compact.get((taken, language))
        if fn is None:
            fn = self.compact[(taken, language)] = body_formatter(*self._pattern(taken,
                                                                                 language))
        return fn(values)

    def _pattern(self, taken: tuple[int, ...], language: str
                 ) -> tuple[list[str], tuple[str, str] | None, list[tuple[str, list[int]]]]:
        keys = [self.keys[i] for i in taken]
        combos = [(c.code, [keys.index(k) for k in c.subjects]) for c in COMBINATIONS.values()
                  if set(keys).issuperset(c.subjects)
                  and (c.language is None or c.language == language)]
        name = self.languages.get(language)
        return keys, (language, name) if name else None, combos

    def convert(self, chunk: Chunk) -> ChunkResult:
        """Validate rows and build their stored bodies; explain every bad row."""
        plan = self.plan
        out = ChunkResult()
        bodies, lines_out = out.bodies, out.lines
        sbd_i, width = plan.sbd[0], plan.width
        lang_i = plan.language[0] if plan.language else -1
        get_scores, groups, join = self.scores, self.groups, "".join
        marks = _MARKS[:len(self.keys)]
        good: list[str] = []  # SBDs of the rows imported, in order
        lines, rows = chunk.table()
        for line, cells in zip(lines, rows):
            sbd = cells[sbd_i]
            if len(cells) == width and is_sbd(sbd):
                vals = get_scores(cells)
                group = groups.get((join(compress(marks, vals)),
                                    cells[lang_i] if lang_i >= 0 else "", sbd[:2]))
                if group is not None:
                    try:
                        bodies.append(group[0].row(vals))  # type: ignore[union-attr]
                    except KeyError:
                        pass  # a cell not seen before (or a status): the slow way
                    else:
                        group[1].append(vals)
                        good.append(sbd)
                        lines_out.append(line)  # type: ignore[attr-defined]
                        continue
            self.slow_row(line, cells, out, good)
        out.sbds = list(map(int, good))
        out.rows = len(good) + out.bad_rows
        for n, count in Counter(map(floordiv, out.sbds, repeat(1_000_000))).items():
            out.provinces[f"{n:02d}"] = count
        memo_get, counts = self.memo.__getitem__, out.counts
        for (_, _, province), (fmt, seen) in groups.items():
            if not seen:
                continue
            # each filled column once, in hundredths; every cell of it is in the memo
            column = {i: list(map(memo_get, map(itemgetter(i), seen))) for i in fmt.taken}
            # Counter.update of an iterable counts in C, into the chunk's one Counter per
            # (key, province): no Counter per group merged item by item
            for i in fmt.taken:
                _counter(counts, (self.keys[i], province)).update(column[i])
            for code, positions in fmt.combinations:
                _counter(counts, (code, province)).update(
                    map(sum, zip(*[column[i] for i in positions])))
            seen.clear()
        if len(self.memo) > _MEMO_LIMIT:
            self.memo.clear()  # a file of countless spellings starts it again: memory stays flat
        return out

    def slow_row(self, line: int, cells: list[str], out: ChunkResult, good: list[str]
                 ) -> None:
        """One row cell by cell: its errors, statuses and new cells; the memo and the
        groups learn from it, so that the next row like it takes the fast way."""
        plan, errors = self.plan, out.errors
        width = plan.width
        if len(cells) != width:
            if not any(c.strip() for c in cells):
                return  # an empty row such as ';;;;' that spreadsheets leave
            if len(cells) < width or any(c.strip() for c in cells[width:]):
                out.bad_rows += 1
                errors.append(RowError(plan.file, line, "(cả dòng)", f"{len(cells)} ô",
                                       f"dòng có {len(cells)} ô, tiêu đề có {width} ô",
                                       plan.sheet))
                sbd = cells[plan.sbd[0]] if plan.sbd[0] < len(cells) else ""
                if is_sbd(sbd):  # its SBD is taken all the same, as any bad row's
                    out.bad_sbds.append(int(sbd))  # type: ignore[union-attr]
                    out.bad_lines.append(line)  # type: ignore[union-attr]
                return
        n_errors = len(errors)
        sbd = cells[plan.sbd[0]]
        if not is_sbd(sbd) or sbd[:2] not in self.provinces:
            if not any(c.strip() for c in cells):
                return  # an empty row of the header's width (';;' under 'SBD;Toán')
            sbd = self.check_sbd(sbd, line, errors)
        vals = self.scores(cells)
        taken, statuses = self.slow_scores(vals, line, errors)
        language = cells[plan.language[0]] if plan.language else ""
        if language and language not in self.languages:
            language = self.check_language(language, line, errors)
        if len(errors) != n_errors:
            out.bad_rows += 1
            if is_sbd(sbd):
                out.bad_sbds.append(int(sbd))  # type: ignore[union-attr]
                out.bad_lines.append(line)  # type: ignore[union-attr]
            return
        fmt = self.format(taken, language)
        # Its group, named as the fast way names a row whose filled cells are all scores.
        key = ("".join(_MARKS[i] for i in taken), language, sbd[:2])
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = (fmt, [])
        group[1].append(vals)
        body = fmt.row(vals)  # every cell in taken is in the memo now
        if statuses:  # beside the scores, never one of them
            body = body[:-1] + ',"statuses":' + orjson.dumps(statuses).decode() + "}"
        out.bodies.append(body)  # type: ignore[union-attr]
        good.append(sbd)
        out.lines.append(line)  # type: ignore[attr-defined]

    def check_sbd(self, sbd: str, line: int, errors: list[RowError]) -> str:
        sbd = sbd.strip()
        if not is_sbd(sbd):
            errors.append(RowError(self.plan.file, line, self.plan.sbd[1], sbd,
                                   "SBD phải gồm đúng 8 chữ số", self.plan.sheet))
        elif sbd[:2] not in self.provinces:
            errors.append(RowError(self.plan.file, line, self.plan.sbd[1], sbd,
                                   f"mã tỉnh '{sbd[:2]}' không có trong danh mục "
                                   f"năm {self.plan.year}", self.plan.sheet))
        return sbd

    def check_language(self, raw: str, line: int, errors: list[RowError]) -> str:
        code = raw.strip().upper()
        if code and code not in self.languages:
            errors.append(RowError(self.plan.file, line, self.plan.language[1],  # type: ignore
                                   raw, "mã ngoại ngữ phải là một trong N1..N7",
                                   self.plan.sheet))
        return code

    def slow_scores(self, vals: Sequence[str], line: int, errors: list[RowError]
                    ) -> tuple[tuple[int, ...], dict[str, str] | None]:
        """Cell by cell: the scores filled (now in the memo), the statuses, the errors."""
        taken, statuses, memo = [], None, self.memo
        for i, raw in enumerate(vals):
            h = memo.get(raw)
            if h is None:
                h = parse_score(raw)  # type: ignore[assignment]
                if isinstance(h, int):
                    memo[raw] = h  # bounded: cleared past _MEMO_LIMIT at the chunk's end
            if h is None:
                continue
            if isinstance(h, str):
                status = status_of(raw.strip())
                if status is not None:
                    statuses = statuses or {}
                    statuses[self.keys[i]] = status
                    continue
                errors.append(RowError(self.plan.file, line, self.plan.subjects[i][2], raw, h,
                                       self.plan.sheet))
                continue
            taken.append(i)
        return tuple(taken), statuses


def _counter(counts: dict[tuple[str, str], Counter], key: tuple[str, str]) -> Counter:
    found = counts.get(key)
    if found is None:
        found = counts[key] = Counter()
    return found


def _merge(into: dict[tuple[str, str], Counter], key: tuple[str, str], counted: Counter) -> None:
    if key in into:
        into[key].update(counted)
    else:
        into[key] = counted


_converters: dict[Plan, _Converter] = {}


def convert_chunk(plan: Plan, chunk: Chunk) -> ChunkResult:
    """Convert one chunk; the converter (and its memos) is reused across chunks."""
    conv = _converters.get(plan)
    if conv is None:
        conv = _converters[plan] = _Converter(plan)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a chunk makes ~10^5 short-lived containers and no cycles
    try:
        out = conv.convert(chunk)
    finally:
        if gc_was_enabled:
            gc.enable()
    out.sbds = array("q", out.sbds)
    out.bodies = "\n".join(out.bodies).encode()  # type: ignore[arg-type]
    out.lines = array("q", out.lines)
    out.bad_sbds = array("q", out.bad_sbds)
    out.bad_lines = array("q", out.bad_lines)
    return out


# --- orchestration -----------------------------------------------------------------------

SAMPLE_ERRORS = 1000  # bad cells kept in memory and shown; the report has every one


@dataclass
class SheetSummary:
    name: str
    rows: int = 0
    imported: int = 0
    bad_rows: int = 0


@dataclass
class FileSummary:
    name: str
    sha256: str
    dialect: str
    rows: int = 0
    imported: int = 0
    bad_rows: int = 0
    ignored: list[str] = field(default_factory=list)
    sheets: list[SheetSummary] = field(default_factory=list)  # workbooks only
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (sheet, why)


@dataclass
class SubjectStats:
    count: int
    mean: float
    min: float
    max: float


@dataclass
class ImportResult:
    year: int
    files: list[FileSummary]
    provinces: dict[str, int]
    subjects: dict[str, SubjectStats]
    errors: list[RowError]  # the first SAMPLE_ERRORS, in file order
    warnings: list[str]
    report_path: Path | None = None
    snapshot_id: str | None = None
    snapshot_path: Path | None = None
    activated: bool = False
    error_count: int = 0  # every bad cell, as in the report
    unchanged: bool = False  # skip_unchanged: the active snapshot has these very files

    @property
    def imported(self) -> int:
        return sum(f.imported for f in self.files)

    @property
    def bad_rows(self) -> int:
        return sum(f.bad_rows for f in self.files)


class _Inline(Executor):
    """Runs chunks in this process: small imports are not worth starting workers."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - raised by result(), as a worker's would be
            future.set_exception(exc)
        return future


def _worker_init(parent: int) -> None:
    """A converting worker: dies with its parent, and leaves Ctrl-C to it.

    A worker that took the terminal's SIGINT could die half-way through reading the task
    queue or writing a result, and the parent's executor would then wait in its shutdown
    for a message that never comes: the hang seen once in ~25 Ctrl-C tests. Only the
    parent reacts; it cancels what is queued and the workers finish their chunk and exit.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD)  # held by the parent while forking
    try:  # PR_SET_PDEATHSIG: the kernel kills us when the parent dies, even by SIGKILL
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: orphans end when their task queue breaks
    if os.getppid() != parent:  # it died before the line above ran
        os._exit(1)


_HELD = {signal.SIGINT, signal.SIGTERM}


def _pool(workers: int) -> Executor:
    """Worker processes, all forked here with SIGINT and SIGTERM held.

    A signal whose handler runs while fork() calls its at-fork hooks is swallowed by them
    ("Exception ignored in _releaseLock"): the import carried on as if never signalled, or
    stopped with a half-made pool whose worker the exit then waited for, forever. Held,
    the signal lands once the pool is whole, where the import's clean-up handles it; the
    pool's threads, started meanwhile, keep it held, so it reaches the main thread.
    """
    held = hasattr(signal, "pthread_sigmask")
    before = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD) if held else set()
    try:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                   initializer=_worker_init, initargs=(os.getpid(),))
        pool.submit(int)  # with "fork", the first task starts every worker and the manager
    finally:
        if held:
            signal.pthread_sigmask(signal.SIG_SETMASK, before)
    return pool


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _plan(table: Table, part: Part, year: int) -> Plan:
    cols, headers = part.columns, part.headers
    subjects = tuple((i, key, headers[i]) for key, i in cols.items() if key in SUBJECTS)
    lang = (cols[LANGUAGE_CODE], headers[cols[LANGUAGE_CODE]]) if LANGUAGE_CODE in cols \
        else None
    return Plan(table.path.name, year, (cols[SBD], headers[cols[SBD]]), subjects, lang,
                len(headers), part.sheet)


def _warnings(table: Table, year: int) -> list[str]:
    out = []
    if "ngoai_ngu" in table.columns and LANGUAGE_CODE not in table.columns:
        out.append(f"{table.path.name}: không có cột mã ngoại ngữ, nên không tính các tổ hợp "
                   "cần biết ngoại ngữ (A01, D01–D07) cho thí sinh của tệp này")
    examined = subjects_for(year)
    for key in table.columns:
        if key in SUBJECTS and key not in examined:
            out.append(f"{table.path.name}: môn '{SUBJECTS[key].name}' không thi năm {year}")
    for sheet, why in table.skipped:
        out.append(f"{table.path.name}: bỏ qua trang '{shown(sheet)}': {why}")
    return out


def new_snapshot_id(year: int, created: datetime, digests: list[str]) -> str:
    """Unique even for two imports of the same files in the same second (random salt)."""
    h = hashlib.sha256(("".join(digests) + created.isoformat()).encode() + os.urandom(16))
    return f"{year}-{created:%Y%m%dT%H%M%S}Z-{h.hexdigest()[:8]}"


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    """A report cell that Excel shows as text: '=HYPERLINK(...)' must not become a formula."""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


class Report:
    """The import report: every bad cell written as it is found, a bounded sample kept."""

    HEADER = ["tệp", "dòng", "cột", "giá trị", "lý do"]

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)  # staff and the service group
        self.fh = open(fd, "w", encoding="utf-8-sig", newline="")
        self.writer = csv.writer(self.fh)
        self.writer.writerow(self.HEADER)
        self.sample: list[RowError] = []
        self.count = 0

    def add(self, errors: Iterable[RowError]) -> None:
        for e in errors:
            self.count += 1
            if len(self.sample) < SAMPLE_ERRORS:
                self.sample.append(e)
            self.writer.writerow([_cell(e.file), e.where, _cell(e.column),
                                  _cell(shown(e.value, 200)), e.reason])

    def note(self, file: str, sheet: str, what: str) -> None:
        """A line about a whole sheet (rows read, or why it was skipped)."""
        self.writer.writerow([_cell(file), _cell(sheet), "(cả trang)", "", _cell(what)])

    def close(self) -> Path:
        self.fh.close()
        return self.path


ProgressFactory = Callable[[Table], object]  # returns a thing with update(n) and close()


def import_files(data_dir: Path, year: int, files: list[Path], *, activate: bool = False,
                 max_errors: int = 0, maps: Iterable[str] = (), jobs: int | None = None,
                 progress: ProgressFactory | None = None, by: str | None = None,
                 reason: str | None = None, skip_unchanged: bool = False) -> ImportResult:
    """Build one snapshot of ``year`` from all ``files``; refuse it all on bad rows.

    Raises :class:`ImportRefused` (nothing built, nothing activated) when a file cannot be
    read or there are more than ``max_errors`` bad rows; the report is written either way.
    Every outcome leaves a line in the history (``import``, ``activate`` or ``refused``).
    """
    try:
        result = _import(data_dir, year, files, activate=activate, max_errors=max_errors,
                         maps=maps, jobs=jobs, progress=progress, skip_unchanged=skip_unchanged)
    except ImportRefused as exc:
        history.append(data_dir, "refused", year=year, snapshot=exc.snapshot_id,
                       report=exc.report, files=file_records(files), by=by,
                       reason=reason, error=str(exc),
                       bad_rows=exc.result.bad_rows if exc.result else None)
        raise
    if not result.unchanged:
        record(data_dir, result, by=by, reason=reason)
    return result


def file_records(files: Iterable[Path | FileSummary]) -> list[dict]:
    """Names and sha256 of source files, as the history and manifests keep them."""
    out = []
    for f in files:
        if isinstance(f, FileSummary):
            out.append({"name": f.name, "sha256": f.sha256})
        else:
            path = Path(f)
            try:
                out.append({"name": path.name, "sha256": _sha256(path)})
            except OSError:
                out.append({"name": path.name, "sha256": None})
    return out


def open_tables(files: list[Path], maps: Iterable[str]) -> list[Table]:
    """Recognise every file first: one unreadable file refuses the whole import."""
    if not files:
        raise ImportRefused("chưa chỉ ra tệp điểm nào")
    try:
        folded_maps = parse_maps(list(maps))
    except DialectError as exc:
        raise ImportRefused(str(exc)) from exc
    tables = []
    for f in map(Path, files):
        try:
            tables.append(open_table(f, folded_maps))
        except DialectError as exc:  # named by its file, as every refusal of one is
            text = str(exc)
            raise ImportRefused(text if f.name in text else f"{f.name}: {text}") from exc
    return tables


def summarise(tables: list[Table]) -> list[FileSummary]:
    return [FileSummary(t.path.name, _sha256(t.path), t.describe, ignored=t.ignored,
                        skipped=list(t.skipped)) for t in tables]


def record(data_dir: Path, result: ImportResult, by: str | None, reason: str | None,
           rows: int | None = None, **extra: object) -> None:
    """The history lines of a built snapshot: its import, and its activation if any."""
    history.append(data_dir, "import", year=result.year, snapshot=result.snapshot_id,
                   files=file_records(result.files),
                   rows=result.imported if rows is None else rows,
                   bad_rows=result.bad_rows, by=by, reason=reason, **extra)
    if result.activated:
        history.append(data_dir, "activate", year=result.year, snapshot=result.snapshot_id,
                       by=by, reason=reason)


def _import(data_dir: Path, year: int, files: list[Path], *, activate: bool, max_errors: int,
            maps: Iterable[str], jobs: int | None, progress: ProgressFactory | None,
            skip_unchanged: bool) -> ImportResult:
    if not 2000 <= year <= 2100:
        raise ImportRefused(f"năm thi '{year}' không hợp lệ")
    tables = open_tables(files, maps)
    names = [t.path.name for t in tables]
    if len(set(names)) != len(names):
        raise ImportRefused("hai tệp trùng tên: " + ", ".join(sorted(names)))
    for t in tables:
        old = [h for p in t.parts for k, h in ((k, p.headers[i]) for k, i in p.columns.items())
               if k.endswith(OLD_SUFFIX)]
        if old:
            raise ImportRefused(f"{t.path.name}: cột '{shown(old[0])}' là điểm cũ của tệp sửa "
                                "điểm; tệp sửa điểm nhập bằng --base SNAPSHOT")

    created = datetime.now(timezone.utc)
    summaries = summarise(tables)
    digests = [s.sha256 for s in summaries]
    if skip_unchanged:
        same = _same_as_active(data_dir, year, summaries, max_errors)
        if same is not None:
            return ImportResult(year, summaries, {}, {}, [], [], snapshot_id=same.id,
                                snapshot_path=same.path, activated=True, unchanged=True)
    warnings = [w for t in tables for w in _warnings(t, year)]
    snapshot_id = new_snapshot_id(year, created, digests)
    store.clean_partials(data_dir)
    report = Report(data_dir / "reports" / report_name(snapshot_id))
    totals = _Totals(report)
    total = sum(t.size for t in tables)
    workers = jobs if jobs is not None else min(os.cpu_count() or 1, 4)
    pool: Executor = _Inline()
    if workers > 1 and total > (4 << 20):
        pool = _pool(workers)
    writer: store.SnapshotWriter | None = None
    # Chunks flow through the workers without a pause between files or sheets; the parent
    # takes their results in file order, a bounded number ahead: memory stays flat.
    pending: deque[tuple[Future, _Job]] = deque()
    bars = _Bars(progress)

    def take() -> None:
        future, job = pending.popleft()
        try:
            converted = future.result()
        except DialectError as exc:  # a file unreadable further down than its head
            raise _Unreadable(job.table.path.name, exc) from exc
        totals.absorb(converted, writer, job.plan, job.summaries, job.order)
        bars.update(job.table, job.size)

    try:
        writer = store.SnapshotWriter(data_dir, snapshot_id)
        try:
            for job, chunk in _jobs(tables, summaries, year):
                pending.append((pool.submit(convert_chunk, job.plan, chunk), job))
                while len(pending) > 2 * workers:
                    take()
        except _Unreadable:
            while pending:
                take()  # an earlier file's error is the one to report
            raise
        while pending:
            take()
        bars.close()
    except _Unreadable as exc:
        bars.close()
        writer.abort()  # type: ignore[union-attr]
        report.close()
        raise ImportRefused(f"{exc.name}: {exc.error}; không tạo bản chụp nào",
                            snapshot_id=snapshot_id) from exc
    except BaseException:
        bars.close()
        if writer is not None:
            writer.abort()  # Ctrl-C or a crash: no partial file stays behind
        report.close()
        raise
    finally:
        pool.shutdown(cancel_futures=True)

    for summary in summaries:
        for sheet in summary.sheets:
            report.note(summary.name, sheet.name, f"đọc {sheet.rows} dòng, nhập "
                                                  f"{sheet.imported}, lỗi {sheet.bad_rows}")
        for name, why in summary.skipped:
            report.note(summary.name, name, f"bỏ qua: {why}")
    result = ImportResult(year, summaries, dict(sorted(totals.provinces.items())),
                          _stats(totals.counts), report.sample, warnings,
                          report_path=report.close(), error_count=report.count)
    bad_rows = result.bad_rows
    if bad_rows > max_errors or result.imported == 0:
        writer.abort()
        why = (f"{bad_rows} dòng lỗi (cho phép tối đa {max_errors})" if bad_rows > max_errors
               else "không có dòng điểm nào")
        raise ImportRefused(f"không nhập: {why}; không tạo bản chụp nào", result,
                            snapshot_id)
    return finish(data_dir, writer, _manifest(result, snapshot_id, created, max_errors),
                  result, activate, totals.distribution())


def finish(data_dir: Path, writer: store.SnapshotWriter, manifest: dict,
           result: ImportResult, activate: bool,
           distribution: Iterable[tuple[str, str, int, int]] = ()) -> ImportResult:
    """Put the snapshot in place (whole or not at all), and serve it if asked.

    ``distribution``: (key, province, hundredths, candidates) rows, the snapshot's phổ
    điểm from which ranks are counted when it is served."""
    try:
        result.snapshot_path = writer.finish(manifest, distribution)
    except BaseException:
        writer.abort()
        raise
    result.snapshot_id = writer.id
    if activate:
        store.activate(data_dir, writer.id)
        result.activated = True
    return result


@dataclass(frozen=True)
class _Job:
    """Where a chunk's rows go: its file, sheet, plan and place in the import's order."""

    table: Table
    plan: Plan
    summaries: tuple[FileSummary, SheetSummary]
    order: int  # rows are ordered by (part, line): order | line
    size: int  # bytes, for progress


class _Unreadable(Exception):
    """A file turned out unreadable past its head (while cut into chunks or converted)."""

    def __init__(self, name: str, error: DialectError):
        super().__init__(f"{name}: {error}")
        self.name, self.error = name, error


def _jobs(tables: list[Table], summaries: list[FileSummary], year: int
          ) -> Iterator[tuple[_Job, Chunk]]:
    """Every chunk of every file and sheet, in order, with where its rows go."""
    order = 0
    for table, summary in zip(tables, summaries):
        for part in table.parts:
            plan = _plan(table, part, year)
            sheet = SheetSummary(part.sheet)
            if table.kind == "xlsx":
                summary.sheets.append(sheet)
            order += 1 << 32
            try:
                for chunk in part.chunks():
                    yield _Job(table, plan, (summary, sheet), order, len(chunk.data)), chunk
            except DialectError as exc:
                raise _Unreadable(table.path.name, exc) from exc


class _Bars:
    """One progress bar per file, opened at its first converted chunk (files are taken in
    order, so one bar is open at a time)."""

    def __init__(self, progress: ProgressFactory | None):
        self.progress = progress
        self.table: Table | None = None
        self.bar: object | None = None

    def update(self, table: Table, size: int) -> None:
        if self.progress is None:
            return
        if table is not self.table:
            self.close()
            self.table, self.bar = table, self.progress(table)
        self.bar.update(size)  # type: ignore[attr-defined]

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()  # type: ignore[attr-defined]
        self.table = self.bar = None


def _same_as_active(data_dir: Path, year: int, summaries: list[FileSummary],
                    max_errors: int) -> store.SnapshotInfo | None:
    """The active snapshot of ``year`` when it was built from these very files."""
    active = store.active_ids(data_dir).get(year)
    if active is None:
        return None
    info = store.get_snapshot(data_dir, active)
    built = [(f["name"], f["sha256"]) for f in info.manifest.get("files", [])]
    if built == [(f.name, f.sha256) for f in summaries] and not info.manifest.get("base") \
            and info.manifest.get("max_errors") == max_errors:
        return info
    return None


class _Claimed:
    """The SBDs of bad rows so far: a set while they are few (looked up a chunk at a time,
    in C), one bit per possible SBD past that (12.5 MB, however many: a file of nothing
    but bad rows keeps memory flat and every one of them is still told)."""

    FEW = 200_000  # ~10 MB as a set

    def __init__(self) -> None:
        self.few: set[int] = set()
        self.bits: bytearray | None = None

    def __bool__(self) -> bool:
        return bool(self.few) or self.bits is not None

    def add(self, sbds: Iterable[int]) -> None:
        if self.bits is None:
            self.few.update(sbds)
            if len(self.few) <= self.FEW:
                return
            self.bits, sbds, self.few = bytearray(SBD_SPACE // 8), self.few, set()
        bits = self.bits
        for n in sbds:
            bits[n >> 3] |= 1 << (n & 7)

    def among(self, sbds: Iterable[int]) -> set[int]:
        """Those of ``sbds`` that were claimed by a bad row."""
        if self.bits is None:
            return self.few.intersection(sbds)
        bits = self.bits
        return {n for n in sbds if bits[n >> 3] >> (n & 7) & 1}


class _Totals:
    """What the parent adds up from the converted chunks, in file order."""

    def __init__(self, report: Report):
        self.report = report
        self.provinces: Counter = Counter()
        # (key, province) -> hundredths -> candidates: the snapshot's distribution tables
        self.counts: dict[tuple[str, str], Counter] = {}
        # SBDs of the bad rows of the chunks absorbed so far: a later good row with one is
        # a duplicate all the same, however many rows are bad
        self.claimed = _Claimed()

    def absorb(self, r: ChunkResult, writer: store.SnapshotWriter, plan: Plan,
               summaries: tuple[FileSummary, SheetSummary], order: int) -> None:
        dups = self.write(writer, r, plan, order)
        errors = r.errors + dups
        if dups:
            errors.sort(key=lambda e: e.line)
        self.report.add(errors)
        for summary in summaries:
            summary.rows += r.rows
            summary.bad_rows += r.bad_rows + len(dups)
            summary.imported += len(r.sbds) - len(dups)
        self.provinces.update(r.provinces)
        for key, counted in r.counts.items():
            _merge(self.counts, key, counted)

    def write(self, writer: store.SnapshotWriter, r: ChunkResult, plan: Plan,
              order: int) -> list[RowError]:
        """Insert a chunk; a row whose SBD came before (good or bad) is an error, dropped."""
        here: dict[int, int] = {}  # this chunk's bad SBDs -> where the first one is
        for n, line in zip(r.bad_sbds, r.bad_lines):
            here.setdefault(n, order | line)
        sbds = r.sbds
        drop: list[int] = []
        if sbds and (here or self.claimed):
            earlier = self.claimed.among(sbds)  # bad in an earlier chunk
            suspects = earlier | (here.keys() & set(sbds)) if here else earlier
            if suspects:  # or bad earlier in this chunk: dropped, reported as duplicates
                drop = [k for k, n in enumerate(sbds) if n in suspects
                        and (n in earlier or here[n] < order | r.lines[k])]
        self.claimed.add(here)  # after: this chunk's own order was told apart above
        if not sbds:
            return []
        bodies = r.bodies.split(b"\n")  # type: ignore[union-attr]
        if drop:
            gone = set(drop)
            keep = [k for k in range(len(sbds)) if k not in gone]
            rejected = [keep[j] for j in writer.add([sbds[k] for k in keep],
                                                    [bodies[k] for k in keep])] + drop
        else:
            rejected = writer.add(sbds, bodies)
        dups: list[RowError] = []
        for k in sorted(rejected):
            n, body = sbds[k], bodies[k]
            sbd = f"{n:08d}"
            dups.append(RowError(plan.file, r.lines[k], plan.sbd[1], sbd,
                                 "SBD trùng với một dòng trước đó trong lần nhập này",
                                 plan.sheet))
            r.provinces[sbd[:2]] -= 1
            doc = orjson.loads(b"{" + body)
            for key, value in chain(doc["scores"].items(), doc["combinations"].items()):
                r.counts[(key, sbd[:2])][round(value * 100)] -= 1
        return dups

    def distribution(self) -> Iterator[tuple[str, str, int, int]]:
        return ((key, province, value, count) for (key, province), counted in self.counts.items()
                for value, count in counted.items() if count)


def _stats(counts: dict[tuple[str, str], Counter]) -> dict[str, SubjectStats]:
    whole: dict[str, Counter] = {}
    for (key, _), counted in counts.items():
        if key in SUBJECTS:
            whole.setdefault(key, Counter()).update(counted)
    out = {}
    for key in SUBJECTS:
        present = sorted(h for h, c in whole.get(key, {}).items() if c)
        if not present:
            continue
        count = sum(whole[key].values())
        mean = sum(h * c for h, c in whole[key].items()) / count / 100
        out[key] = SubjectStats(count, round(mean, 2), present[0] / 100, present[-1] / 100)
    return out


def _manifest(result: ImportResult, snapshot_id: str, created: datetime,
              max_errors: int) -> dict:
    return {
        "id": snapshot_id,
        "year": result.year,
        "created_at": created.isoformat(timespec="milliseconds"),
        "importer_version": __version__,
        "rows": result.imported,
        "bad_rows": result.bad_rows,
        "max_errors": max_errors,
        "files": _manifest_files(result.files),
        "provinces": result.provinces,
        "subjects": {k: vars(s) for k, s in result.subjects.items()},
        # what serving needs, kept with the data: not the installed package's table
        "province_names": provinces(result.year),
    }


def _manifest_files(files: list[FileSummary]) -> list[dict]:
    return [{"name": f.name, "sha256": f.sha256, "dialect": f.dialect, "rows": f.rows,
             "imported": f.imported, "bad_rows": f.bad_rows, "ignored": f.ignored,
             "sheets": [vars(s) for s in f.sheets],
             "skipped": [{"name": n, "reason": why} for n, why in f.skipped]}
            for f in files]
