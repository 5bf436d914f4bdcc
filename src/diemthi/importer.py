"""Official score files → validated rows → one snapshot, with every bad row reported.

The row loop is the importer's hot path: a score cell is validated once per distinct
string (a per-column memo), and each candidate's API response body is built here, once,
so the lookup service only fetches bytes. Chunks of rows are converted in worker
processes while the parent checks duplicates and writes SQLite.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import multiprocessing
import os
import re
from array import array
from collections import Counter, deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import chain, compress, repeat
from operator import floordiv, itemgetter
from pathlib import Path
from typing import Callable, Iterable, Sequence

import orjson

from . import __version__, store
from .dialects import LANGUAGE_CODE, SBD, Chunk, DialectError, Table, open_table, parse_maps
from .sbd import is_sbd
from .reference import COMBINATIONS, LANGUAGES, SUBJECTS, provinces, subjects_for

MAX_SCORE = 1000  # hundredths
_NUMBER_RE = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")
_MEMO_LIMIT = 50_000  # distinct strings remembered per column; garbage beyond is re-parsed
_SCORE_TEXT = [orjson.dumps(h / 100).decode() for h in range(MAX_SCORE + 1)]
_TOTAL_TEXT = [orjson.dumps(h / 100).decode() for h in range(3 * MAX_SCORE + 1)]


class ImportRefused(Exception):
    """The input was refused; nothing was built or activated."""

    def __init__(self, message: str, result: "ImportResult | None" = None):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class RowError:
    file: str
    line: int
    column: str
    value: str
    reason: str  # Vietnamese, for staff

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: cột '{self.column}' = '{self.value}': {self.reason}"


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
    if frac.rstrip("0")[2:]:
        return "điểm có quá hai chữ số thập phân"
    hundredths = int(whole) * 100 + int((frac + "00")[:2])
    if sign and hundredths or hundredths > MAX_SCORE:
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


@dataclass
class ChunkResult:
    """One chunk converted. Records travel between processes as two blobs (an array of
    SBDs and newline-joined bodies): far cheaper to pickle than a million tuples."""

    sbds: list[int] | array = field(default_factory=list)
    bodies: list[str] | bytes = field(default_factory=list)
    lines: Sequence[int] = field(default_factory=list)  # line of each record
    errors: list[RowError] = field(default_factory=list)
    bad_rows: int = 0
    rows: int = 0
    # (subject or combination, province) -> hundredths -> candidates: the distribution
    # tables of the snapshot, and exact count/mean/min/max without per-cell sums
    counts: dict[tuple[str, str], Counter] = field(default_factory=dict)
    provinces: Counter = field(default_factory=Counter)


class _Converter:
    """Per-process state for converting rows: memos and body templates, built once.

    Rows share few patterns (which subjects were sat, which language); each pattern gets
    one compiled function that formats a row's scores and combination totals into the
    stored body, so the common row costs a handful of C-level calls. The rows of each
    pattern and province are kept until the end of the chunk, when their values are
    counted column by column (C-level Counters) into the distribution tables.
    """

    def __init__(self, plan: Plan):
        self.plan = plan
        self.keys = [key for _, key, _ in plan.subjects]
        self.provinces = set(provinces(plan.year))
        self.languages = {code: ',"foreign_language":' + orjson.dumps(
            {"code": code, "name": name}).decode() for code, name in LANGUAGES.items()}
        self.memo: dict[str, int] = {}  # cell -> hundredths, valid non-empty cells only
        # (subjects sat, language) -> (body function, [(combination, its three positions)])
        self.formats: dict[tuple[tuple[int, ...], str],
                           tuple[Callable[[list[int]], str], list[tuple[str, list[int]]]]] = {}
        # (subjects sat, language, province) -> (body function, this chunk's score lists)
        self.patterns: dict[tuple[tuple[int, ...], str, str],
                            tuple[Callable[[list[int]], str], list[list[int]]]] = {}

    def parse(self, raw: str) -> int | None | str:
        """Parse an unseen cell; valid scores are memoised, errors are not."""
        value = parse_score(raw)
        if isinstance(value, int) and len(self.memo) < _MEMO_LIMIT:
            self.memo[raw] = value
        return value

    def pattern(self, taken: tuple[int, ...], language: str, province: str
                ) -> tuple[Callable[[list[int]], str], list[list[int]]]:
        """The body function of this pattern and the list of its rows in ``province``."""
        fn = self.formats.get((taken, language)) or self.compile(taken, language)
        found = self.patterns[(taken, language, province)] = (fn[0], [])
        return found

    def compile(self, taken: tuple[int, ...], language: str
                ) -> tuple[Callable[[list[int]], str], list[tuple[str, list[int]]]]:
        """The function that writes a body for rows of this pattern, and its combinations.

        For rows with toan, vat_li, hoa_hoc sat (no language) it is, for example::

            lambda v: '"scores":{"toan":%s,"vat_li":%s,"hoa_hoc":%s},"combinations":{"A00":%s}}'
                      % (S[v[0]], S[v[1]], S[v[2]], T[v[0]+v[1]+v[2]],)
        """
        keys = [self.keys[i] for i in taken]
        scores = ",".join(f'"{key}":%s' for key in keys)
        combos = [(c.code, [keys.index(k) for k in c.subjects]) for c in COMBINATIONS.values()
                  if set(keys).issuperset(c.subjects)
                  and (c.language is None or c.language == language)]
        template = ('"scores":{' + scores + "}" + self.languages.get(language, "")
                    + ',"combinations":{' + ",".join(f'"{code}":%s' for code, _ in combos)
                    + "}}")
        args = [f"S[v[{j}]]" for j in range(len(keys))]
        args += [f"T[v[{a}]+v[{b}]+v[{c}]]" for _, (a, b, c) in combos]
        # Generated like namedtuple's methods: one call and one % per row, no inner loop.
        source = f"lambda v: {template!r} % ({', '.join(args)},)" if args \
            else f"lambda v: {template!r}"
        fn = eval(source, {"S": _SCORE_TEXT, "T": _TOTAL_TEXT})  # noqa: S307 - our text only
        found = self.formats[(taken, language)] = (fn, combos)
        return found

    def convert(self, chunk: Chunk) -> ChunkResult:
        """Validate rows and build their stored bodies; explain every bad row."""
        plan = self.plan
        out = ChunkResult()
        sbds, bodies, lines, errors = out.sbds, out.bodies, out.lines, out.errors
        sbd_i, sbd_header = plan.sbd
        lang_i = plan.language[0] if plan.language else -1
        idxs = [idx for idx, _, _ in plan.subjects]
        get_scores = itemgetter(*idxs) if len(idxs) > 1 else (lambda c: (c[idxs[0]],))
        positions = range(len(idxs))
        memo_get, patterns, known_provinces = self.memo.get, self.patterns, self.provinces
        file, width = plan.file, plan.width
        for line, cells in zip(*chunk.table()):
            if len(cells) != width:
                if not any(c.strip() for c in cells):
                    continue  # an empty row such as ';;;;' that spreadsheets leave
                if len(cells) < width or any(c.strip() for c in cells[width:]):
                    out.rows += 1
                    out.bad_rows += 1
                    errors.append(RowError(file, line, "(cả dòng)", f"{len(cells)} ô",
                                           f"dòng có {len(cells)} ô, tiêu đề có {width} ô"))
                    continue
            out.rows += 1
            n_errors = len(errors)
            sbd = cells[sbd_i]
            if not is_sbd(sbd) or sbd[:2] not in known_provinces:
                sbd = self.check_sbd(sbd, line, errors)
            vals = get_scores(cells)
            values = list(map(memo_get, compress(vals, vals)))
            if None in values:  # a cell not seen before: parse cell by cell
                taken, values = self.slow_scores(vals, line, errors)
            else:
                taken = tuple(compress(positions, vals))
            language = cells[lang_i] if lang_i >= 0 else ""
            if language and language not in self.languages:
                language = self.check_language(language, line, errors)
            if len(errors) != n_errors:
                out.bad_rows += 1
                continue
            fmt, seen = (patterns.get((taken, language, sbd[:2]))
                         or self.pattern(taken, language, sbd[:2]))
            seen.append(values)
            bodies.append(fmt(values))  # type: ignore[union-attr]
            sbds.append(int(sbd))  # type: ignore[union-attr]
            lines.append(line)  # type: ignore[attr-defined]
        for n, count in Counter(map(floordiv, sbds, repeat(1_000_000))).items():
            out.provinces[f"{n:02d}"] = count
        for (taken, language, province), (_, seen) in self.patterns.items():
            if not seen:
                continue
            for j, i in enumerate(taken):
                _merge(out.counts, (self.keys[i], province), Counter(map(itemgetter(j), seen)))
            for code, positions in self.formats[(taken, language)][1]:
                _merge(out.counts, (code, province),
                       Counter(map(sum, map(itemgetter(*positions), seen))))
            seen.clear()
        return out

    def check_sbd(self, sbd: str, line: int, errors: list[RowError]) -> str:
        sbd = sbd.strip()
        if not is_sbd(sbd):
            errors.append(RowError(self.plan.file, line, self.plan.sbd[1], sbd,
                                   "SBD phải gồm đúng 8 chữ số"))
        elif sbd[:2] not in self.provinces:
            errors.append(RowError(self.plan.file, line, self.plan.sbd[1], sbd,
                                   f"mã tỉnh '{sbd[:2]}' không có trong danh mục "
                                   f"năm {self.plan.year}"))
        return sbd

    def check_language(self, raw: str, line: int, errors: list[RowError]) -> str:
        code = raw.strip().upper()
        if code and code not in self.languages:
            errors.append(RowError(self.plan.file, line, self.plan.language[1],  # type: ignore
                                   raw, "mã ngoại ngữ phải là một trong N1..N7"))
        return code

    def slow_scores(self, vals: tuple[str, ...], line: int,
                    errors: list[RowError]) -> tuple[tuple[int, ...], list[int]]:
        """Cell by cell, for rows with a string not seen before (or a bad one)."""
        taken, values = [], []
        for i, raw in enumerate(vals):
            h = self.memo.get(raw)
            if h is None:
                h = self.parse(raw)  # type: ignore[assignment]
            if h is None:
                continue
            if isinstance(h, str):
                errors.append(RowError(self.plan.file, line, self.plan.subjects[i][2], raw, h))
                continue
            taken.append(i)
            values.append(h)
        return tuple(taken), values


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
    return out


# --- orchestration -----------------------------------------------------------------------

@dataclass
class FileSummary:
    name: str
    sha256: str
    dialect: str
    rows: int = 0
    imported: int = 0
    bad_rows: int = 0
    ignored: list[str] = field(default_factory=list)


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
    errors: list[RowError]
    warnings: list[str]
    report_path: Path | None = None
    snapshot_id: str | None = None
    snapshot_path: Path | None = None
    activated: bool = False

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
        future.set_result(fn(*args, **kwargs))
        return future


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _plan(table: Table, year: int) -> Plan:
    cols = table.columns
    subjects = tuple((i, key, table.headers[i]) for key, i in cols.items() if key in SUBJECTS)
    lang = (cols[LANGUAGE_CODE], table.headers[cols[LANGUAGE_CODE]]) if LANGUAGE_CODE in cols \
        else None
    return Plan(table.path.name, year, (cols[SBD], table.headers[cols[SBD]]), subjects, lang,
                len(table.headers))


def _warnings(table: Table, year: int) -> list[str]:
    out = []
    if "ngoai_ngu" in table.columns and LANGUAGE_CODE not in table.columns:
        out.append(f"{table.path.name}: không có cột mã ngoại ngữ, nên không tính các tổ hợp "
                   "cần biết ngoại ngữ (A01, D01–D07) cho thí sinh của tệp này")
    examined = subjects_for(year)
    for key in table.columns:
        if key in SUBJECTS and key not in examined:
            out.append(f"{table.path.name}: môn '{SUBJECTS[key].name}' không thi năm {year}")
    return out


def _new_snapshot_id(year: int, created: datetime, digests: list[str], data_dir: Path) -> str:
    salt = 0
    while True:
        h = hashlib.sha256(("".join(digests) + created.isoformat() + str(salt)).encode())
        snapshot_id = f"{year}-{created:%Y%m%dT%H%M%S}Z-{h.hexdigest()[:8]}"
        if not store.snapshot_path(data_dir, snapshot_id).exists():
            return snapshot_id
        salt += 1


def write_report(path: Path, errors: list[RowError]) -> Path:
    """Every bad row, one line per bad cell, as a CSV staff can open in Excel."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["tệp", "dòng", "cột", "giá trị", "lý do"])
        for e in errors:
            w.writerow([e.file, e.line, e.column, e.value, e.reason])
    return path


ProgressFactory = Callable[[Table], object]  # returns a thing with update(n) and close()


def import_files(data_dir: Path, year: int, files: list[Path], *, activate: bool = False,
                 max_errors: int = 0, maps: Iterable[str] = (), jobs: int | None = None,
                 progress: ProgressFactory | None = None) -> ImportResult:
    """Build one snapshot of ``year`` from all ``files``; refuse it all on bad rows.

    Raises :class:`ImportRefused` (nothing built, nothing activated) when a file cannot be
    read or there are more than ``max_errors`` bad rows; the report is written either way.
    """
    if not 2000 <= year <= 2100:
        raise ImportRefused(f"năm thi '{year}' không hợp lệ")
    if not files:
        raise ImportRefused("chưa chỉ ra tệp điểm nào")
    try:
        folded_maps = parse_maps(list(maps))
        tables = [open_table(Path(f), folded_maps) for f in files]
    except DialectError as exc:
        raise ImportRefused(str(exc)) from exc
    names = [t.path.name for t in tables]
    if len(set(names)) != len(names):
        raise ImportRefused("hai tệp trùng tên: " + ", ".join(sorted(names)))

    created = datetime.now(timezone.utc)
    digests = [_sha256(t.path) for t in tables]
    summaries = [FileSummary(t.path.name, d, t.describe, ignored=t.ignored)
                 for t, d in zip(tables, digests)]
    warnings = [w for t in tables for w in _warnings(t, year)]
    snapshot_id = _new_snapshot_id(year, created, digests, data_dir)
    totals = _Totals()
    total = sum(t.size for t in tables if t.kind == "csv")
    workers = jobs if jobs is not None else min(os.cpu_count() or 1, 4)
    pool: Executor = _Inline()
    if workers > 1 and total > (4 << 20):
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    writer = store.SnapshotWriter(data_dir, snapshot_id)
    try:
        for table, summary in zip(tables, summaries):
            plan = _plan(table, year)
            bar = progress(table) if progress else None
            pending: deque[tuple[Future, int]] = deque()  # bounded: memory stays flat
            for chunk in chain(table.chunks(), [None]):  # None: the end, take what is left
                if chunk is not None:
                    pending.append((pool.submit(convert_chunk, plan, chunk), len(chunk.data)))
                while pending and (chunk is None or len(pending) > 2 * workers):
                    future, size = pending.popleft()
                    totals.absorb(future.result(), writer, plan, summary)
                    if bar is not None:
                        bar.update(size)  # type: ignore[attr-defined]
            if bar is not None:
                bar.close()  # type: ignore[attr-defined]
    except DialectError as exc:  # a file unreadable further down than its head
        writer.abort()
        raise ImportRefused(f"{table.path.name}: {exc}; không tạo bản chụp nào") from exc
    except BaseException:
        writer.abort()  # Ctrl-C or a crash: no partial file stays behind
        raise
    finally:
        pool.shutdown(cancel_futures=True)

    errors = sorted(totals.errors, key=lambda e: (names.index(e.file), e.line))
    result = ImportResult(year, summaries, dict(sorted(totals.provinces.items())),
                          _stats(totals.counts), errors, warnings,
                          report_path=write_report(
                              data_dir / "reports" / f"import-{snapshot_id}.csv", errors))
    bad_rows = result.bad_rows
    if bad_rows > max_errors or result.imported == 0:
        writer.abort()
        why = (f"{bad_rows} dòng lỗi (cho phép tối đa {max_errors})" if bad_rows > max_errors
               else "không có dòng điểm nào")
        raise ImportRefused(f"không nhập: {why}; không tạo bản chụp nào", result)
    try:
        result.snapshot_path = writer.finish(
            _manifest(result, snapshot_id, created, max_errors),
            ((key, province, value, count) for (key, province), counted in totals.counts.items()
             for value, count in counted.items() if count))
    except BaseException:
        writer.abort()
        raise
    result.snapshot_id = snapshot_id
    if activate:
        store.activate(data_dir, snapshot_id)
        result.activated = True
    return result


@dataclass
class _Totals:
    """What the parent adds up from the converted chunks, in file order."""

    errors: list[RowError] = field(default_factory=list)
    provinces: Counter = field(default_factory=Counter)
    counts: dict[tuple[str, str], Counter] = field(default_factory=dict)

    def absorb(self, r: ChunkResult, writer: store.SnapshotWriter, plan: Plan,
               summary: FileSummary) -> None:
        dups = _write(writer, r, plan)
        self.errors += r.errors + dups
        summary.rows += r.rows
        summary.bad_rows += r.bad_rows + len(dups)
        summary.imported += len(r.sbds) - len(dups)
        self.provinces.update(r.provinces)
        for key, counted in r.counts.items():
            _merge(self.counts, key, counted)


def _write(writer: store.SnapshotWriter, r: ChunkResult, plan: Plan) -> list[RowError]:
    """Insert a chunk; a row whose SBD is already in the snapshot is an error, dropped."""
    dups: list[RowError] = []
    if not r.sbds:
        return dups
    bodies = r.bodies.split(b"\n")  # type: ignore[union-attr]
    for k in writer.add(r.sbds, bodies):
        n, body = r.sbds[k], bodies[k]
        sbd = f"{n:08d}"
        dups.append(RowError(plan.file, r.lines[k], plan.sbd[1], sbd,
                             "SBD trùng với một dòng trước đó trong lần nhập này"))
        r.provinces[sbd[:2]] -= 1
        doc = orjson.loads(b"{" + body)
        for key, value in chain(doc["scores"].items(), doc["combinations"].items()):
            r.counts[(key, sbd[:2])][round(value * 100)] -= 1
    return dups


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
        "files": [{"name": f.name, "sha256": f.sha256, "dialect": f.dialect, "rows": f.rows,
                   "imported": f.imported, "bad_rows": f.bad_rows, "ignored": f.ignored}
                  for f in result.files],
        "provinces": result.provinces,
        "subjects": {k: vars(s) for k, s in result.subjects.items()},
    }
