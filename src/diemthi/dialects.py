"""Recognising the dialects score files come in: headers, encodings, delimiters, XLSX.

Everything that guesses about a file's shape lives here, so the importer sees one thing:
a :class:`Table` with known columns and an iterator of row chunks. Reading a workbook's
XML, streamed, is :mod:`diemthi.xlsx`; the caps every reader keeps, :mod:`diemthi.limits`.
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, NoReturn, Sequence, Union

from . import xlsx
from .limits import HEAD_ROWS, MAX_COLUMNS, MAX_RECORD_BYTES, MAX_ROWS, DialectError, shown
from .reference import SUBJECTS
from .sbd import is_sbd
from .xlsx import XlsxChunk

#: Canonical column keys besides the subjects.
SBD = "sbd"
LANGUAGE_CODE = "ma_ngoai_ngu"
KEYS = (SBD, *SUBJECTS, LANGUAGE_CODE)

# Header aliases, written as people type them; compared after fold_header().
_ALIASES = {
    SBD: ["sbd", "Số báo danh", "SoBaoDanh", "so_bao_danh", "Số BD"],
    "toan": ["Toán", "Môn Toán"],
    "ngu_van": ["Ngữ văn", "NguVan", "Văn", "Môn Văn"],
    "ngoai_ngu": ["Ngoại ngữ", "NgoaiNgu", "Tiếng Anh"],
    "vat_li": ["Vật lí", "Vật lý", "VatLy", "VatLi", "Lý", "Lí"],
    "hoa_hoc": ["Hóa học", "Hoá học", "HoaHoc", "Hóa"],
    "sinh_hoc": ["Sinh học", "SinhHoc", "Sinh"],
    "lich_su": ["Lịch sử", "LichSu", "Sử"],
    "dia_li": ["Địa lí", "Địa lý", "DiaLy", "DiaLi", "Địa"],
    "gdcd": ["GDCD", "Giáo dục công dân"],
    "gdktpl": ["GDKTPL", "GD KT&PL", "Giáo dục kinh tế và pháp luật", "KinhTePhapLuat",
               "Kinh tế pháp luật", "KTPL"],
    "tin_hoc": ["Tin học", "TinHoc", "Tin"],
    "cn_cong_nghiep": ["Công nghệ công nghiệp", "CongNgheCongNghiep", "CN công nghiệp",
                       "CNCN"],
    "cn_nong_nghiep": ["Công nghệ nông nghiệp", "CongNgheNongNghiep", "CN nông nghiệp",
                       "CNNN"],
    LANGUAGE_CODE: ["Mã môn ngoại ngữ", "MaMonNgoaiNgu", "Mã ngoại ngữ", "MaNgoaiNgu"],
}


def fold_header(text: str) -> str:
    """Fold a header for matching: no diacritics, no case, letters and digits only."""
    text = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in text.lower() if c.isascii() and c.isalnum())


_FOLDED = {fold_header(alias): key for key, aliases in _ALIASES.items()
           for alias in (key, *aliases)}


def parse_maps(maps: list[str]) -> dict[str, str]:
    """``['Điểm Toán=toan', ...]`` → folded header → key, refusing unknown keys."""
    out = {}
    for item in maps:
        header, sep, key = item.rpartition("=")
        key = key.strip()
        if not sep or not header.strip():
            raise DialectError(f"--map '{item}': cần dạng 'TIÊU ĐỀ=khóa'")
        if key not in KEYS and key != "ignore":
            raise DialectError(f"--map '{item}': khóa '{key}' không có; dùng một trong: "
                               + ", ".join(KEYS) + ", ignore")
        out[fold_header(header)] = key
    return out


def recognise(header: str, maps: dict[str, str]) -> str | None:
    """The canonical key of a header cell, or None when we do not use that column.

    ``<subject>_cu`` / ``<Môn> cũ`` (an old value in a change file) is ``<key>_cu``.
    """
    folded = fold_header(header)
    key = maps.get(folded) or _FOLDED.get(folded)
    if key is None and folded.endswith("cu") and _FOLDED.get(folded[:-2]) in SUBJECTS:
        key = _FOLDED[folded[:-2]] + OLD_SUFFIX
    return None if key == "ignore" else key


OLD_SUFFIX = "_cu"

#: csv's own cap on one field, refused with the line instead of a traceback.
MAX_FIELD_CHARS = csv.field_size_limit()


@dataclass(frozen=True)
class CsvChunk:
    """Raw bytes of whole CSV records; decoded and parsed where the work is done."""

    data: bytes
    first_line: int
    encoding: str
    delimiter: str

    def table(self) -> tuple[Sequence[int], list[list[str]]]:
        """Line numbers and cells of the chunk's records."""
        try:
            text = self.data.decode(self.encoding)
        except UnicodeDecodeError as exc:
            line = self.first_line + self.data.count(b"\n", 0, exc.start)
            raise DialectError(f"dòng {line}: không đọc được theo bảng mã {self.encoding} "
                               f"(byte {self.data[exc.start:exc.start + 1]!r}); hãy lưu lại "
                               "tệp dưới dạng CSV UTF-8") from None
        reader = csv.reader(io.StringIO(text), delimiter=self.delimiter)
        try:
            if b'"' not in self.data:
                # No quoted field can span lines: one record per line (blank ones are []).
                rows = list(reader)
                return range(self.first_line, self.first_line + len(rows)), rows
            lines, rows, start = [], [], self.first_line
            for cells in reader:
                lines.append(start)  # where the record starts; a quoted field may span lines
                rows.append(cells)
                start = self.first_line + reader.line_num
            return lines, rows
        except csv.Error as exc:
            line = self.first_line + max(reader.line_num - 1, 0)
            why = (f"có ô dài quá {MAX_FIELD_CHARS} ký tự" if "field larger" in str(exc)
                   else f"không đọc được dòng CSV ({exc})")
            raise DialectError(f"dòng {line}: {why}") from None


@dataclass(frozen=True)
class RowsChunk:
    """Rows already split into cells (ODS/XLS through calamine), with their row numbers."""

    data: list[tuple[int, list[str]]]

    def table(self) -> tuple[Sequence[int], list[list[str]]]:
        return [n for n, _ in self.data], [cells for _, cells in self.data]


Chunk = Union[CsvChunk, RowsChunk, XlsxChunk]


@dataclass
class Part:
    """One run of rows under one header: a CSV file, or one sheet of a workbook."""

    sheet: str  # "" for CSV
    header_line: int
    headers: list[str]
    columns: dict[str, int]  # canonical key -> cell index
    ignored: list[str]
    chunks: Callable[[], Iterator[Chunk]] = field(repr=False)
    size: int = 0  # bytes, for progress


@dataclass
class Table:
    """One score file as the importer sees it: its parts, and the sheets it skipped."""

    path: Path
    kind: str  # "csv" or "xlsx"
    parts: list[Part]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (sheet, why)
    encoding: str = ""
    delimiter: str = ""

    @property
    def header_line(self) -> int:
        return self.parts[0].header_line

    @property
    def headers(self) -> list[str]:
        return self.parts[0].headers

    @property
    def columns(self) -> dict[str, int]:
        return self.parts[0].columns

    @property
    def ignored(self) -> list[str]:
        return self.parts[0].ignored

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)

    def chunks(self) -> Iterator[Chunk]:
        for part in self.parts:
            yield from part.chunks()

    @property
    def describe(self) -> str:
        if self.kind == "xlsx":
            sheets = ", ".join(p.sheet for p in self.parts)
            return f"XLSX, trang {sheets}, tiêu đề ở dòng {self.header_line}"
        delim = {",": "dấu phẩy", ";": "dấu chấm phẩy", "\t": "tab"}[self.delimiter]
        return f"CSV {self.encoding}, phân cách {delim}, tiêu đề ở dòng {self.header_line}"


# --- CSV -------------------------------------------------------------------------------

def _opener(delimiter: str) -> re.Pattern[bytes]:
    """A quote that opens a quoted field: at the start of a record or after a delimiter.
    A quote anywhere else is a literal character to csv, and to us."""
    return re.compile(b'(?:^|(?<=[' + re.escape(delimiter.encode()) + b'\\n]))"', re.M)


# The rest of a quoted field after its opening quote, up to its closing quote ("" inside).
_CLOSING = re.compile(rb'[^"]*(?:""[^"]*)*"')


def _safe_cut(data: bytes, opener: re.Pattern[bytes]) -> int:
    """The end of the last whole record in ``data`` (0: none), never inside a quoted field.

    Linear: jumps from one opening quote to its closing one with two C-level searches.
    """
    cut = i = 0
    while True:
        m = opener.search(data, i)
        end = m.start() if m else len(data)
        nl = data.rfind(b"\n", i, end)
        if nl >= 0:
            cut = nl + 1
        if m is None:
            return cut
        close = _CLOSING.match(data, m.end())
        if close is None:
            return cut  # the quoted field runs past this data: cut before it
        i = close.end()


def _first_end(data: bytes, opener: re.Pattern[bytes], limit: int) -> int:
    """The end of the first record of ``data`` (past its newline, never one inside a
    quoted field) when it ends within ``limit`` bytes, else 0. Stops at that end."""
    i = 0
    while True:
        nl = data.find(b"\n", i, limit)
        m = opener.search(data, i, nl if nl >= 0 else limit)  # a quoted field before it?
        if m is None:
            return nl + 1 if nl >= 0 else 0
        close = _CLOSING.match(data, m.end(), limit)
        if close is None:
            return 0  # the quoted field runs past the limit
        i = close.end()


def _csv_chunks(path: Path, start: int, first_line: int, encoding: str, delimiter: str,
                chunk_bytes: int = 1 << 20) -> Iterator[CsvChunk]:
    """Cut the file into chunks of whole records (never inside a quoted field).

    What is carried from one block to the next is at most one record, so memory and work
    stay linear whatever the quotes; a record that will not end within
    :data:`MAX_RECORD_BYTES` is refused with its line.
    """
    opener = _opener(delimiter)
    line = first_line
    with open(path, "rb") as fh:
        fh.seek(start)
        pending = b""
        while True:
            block = fh.read(chunk_bytes)
            data = pending + block if pending else block
            if pending and len(data) > MAX_RECORD_BYTES \
                    and not _first_end(data, opener, MAX_RECORD_BYTES + 1):
                # the record carried over does not end within the limit (newlines in its
                # quoted fields are part of it)
                _too_long(line, data[:MAX_RECORD_BYTES + 1])
            if not block:
                if data.strip():
                    yield CsvChunk(data, line, encoding, delimiter)
                return
            cut = data.rfind(b"\n") + 1
            # Balanced quotes before the cut (the common case, C-fast) make it safe; else
            # find the real record ends, as csv reads them.
            if b'"' in data and data.count(b'"', 0, cut) % 2:
                cut = _safe_cut(data, opener)
            if cut:
                yield CsvChunk(data[:cut], line, encoding, delimiter)
                line += data.count(b"\n", 0, cut)
            pending = data[cut:]
            if len(pending) > MAX_RECORD_BYTES:
                _too_long(line, pending)


def _too_long(line: int, record: bytes) -> NoReturn:
    """Refuse a record that runs past :data:`MAX_RECORD_BYTES`, saying what it looks like."""
    if b"\n" not in record:
        why = "không có dấu xuống dòng"
    elif b'"' in record:
        why = "có dấu ngoặc kép mở mà không đóng trong giới hạn đó"
    else:
        why = "quá dài"
    raise DialectError(f"dòng {line}: bản ghi dài quá {MAX_RECORD_BYTES >> 20} MB ({why})")


_HEAD_BYTES = 1 << 16


def sniff_encoding(head: bytes, full: bool = False) -> str:
    """UTF-8 with or without BOM, else Windows-1258 (Excel's legacy Vietnamese code page).

    A head where some lines are UTF-8 and others are not is refused naming the first line
    that disagrees: read as either, one part would be garbled.
    """
    if head.startswith(codecs.BOM_UTF8):
        encoding, body = "utf-8-sig", head[3:]
    else:
        encoding, body = "utf-8", head
    lines = body.split(b"\n")
    if full and len(lines) > 1:
        lines = lines[:-1]  # the last one may be cut in the middle of a character
    utf8, other = None, None
    for n, raw in enumerate(lines, start=1):
        if raw.isascii():
            continue
        try:
            raw.decode("utf-8")
            utf8 = utf8 or n
        except UnicodeDecodeError:
            other = other or n
        if utf8 and other:
            raise DialectError(f"dòng {max(utf8, other)}: bảng mã khác với dòng {min(utf8, other)} "
                               "(một phần UTF-8, một phần Windows-1258); hãy lưu lại tệp dưới "
                               "dạng CSV UTF-8")
    if other and encoding == "utf-8-sig":
        raise DialectError(f"dòng {other}: không đọc được theo bảng mã UTF-8 dù tệp có BOM "
                           "UTF-8; hãy lưu lại tệp dưới dạng CSV UTF-8")
    return "cp1258" if other else encoding


def _find_header(rows: list[list[str]], maps: dict[str, str]) -> tuple[int, dict[str, int]] | None:
    """The first row with an SBD column and at least one subject; its key → index map."""
    for i, cells in enumerate(rows):
        keys = [recognise(c, maps) if isinstance(c, str) else None for c in cells]
        if SBD in keys and any(k in SUBJECTS for k in keys):
            return i, {k: j for j, k in enumerate(keys) if k}
    return None


def _check_columns(path: Path, headers: list[str], maps: dict[str, str]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for j, h in enumerate(headers):
        key = recognise(h, maps)
        if key is None:
            continue
        if key in columns:
            raise DialectError(f"{path.name}: hai cột cùng là '{key}': "
                               f"'{shown(headers[columns[key]])}' và '{shown(h)}'; "
                               "dùng --map để chọn")
        columns[key] = j
    return columns


def _no_header(path: Path, rows: list[list[str]]) -> DialectError:
    seen = next((r for r in rows if any(str(c).strip() for c in r)), [])
    return DialectError(
        f"{path.name}: không tìm thấy dòng tiêu đề có cột SBD và ít nhất một môn thi "
        f"(dòng đầu: {shown(', '.join(map(str, seen[:16])), 200)}); "
        "dùng --map 'TIÊU ĐỀ=khóa'")


def open_table(path: Path, maps: dict[str, str] | None = None) -> Table:
    """Recognise a score file's dialect, without flags."""
    maps = maps or {}
    if not path.is_file():
        raise DialectError(f"{path}: không có tệp này")
    with open(path, "rb") as fh:
        head = fh.read(_HEAD_BYTES)
    if head.startswith(b"PK\x03\x04") or path.suffix.lower() in (".xlsx", ".xlsm"):
        return _open_xlsx(path, maps)
    if path.suffix.lower() in (".xls", ".ods"):
        return _open_calamine(path, maps)
    if not head.strip():
        raise DialectError(f"{path.name}: tệp rỗng")
    try:
        encoding = sniff_encoding(head, full=len(head) == _HEAD_BYTES)
    except DialectError as exc:
        raise DialectError(f"{path.name}: {exc}") from None
    text = head.decode(encoding, errors="replace")
    lines = text.splitlines(keepends=True)
    if len(head) == _HEAD_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last one may be cut
    best = None
    for delimiter in (",", ";", "\t"):
        try:
            rows = list(csv.reader(lines[:HEAD_ROWS], delimiter=delimiter))
        except csv.Error:
            continue
        found = _find_header(rows, maps)
        if found and (best is None or len(found[1]) > len(best[2])):
            best = (delimiter, found[0], found[1], rows[found[0]])
    if best is None:
        try:
            rows = list(csv.reader(lines[:HEAD_ROWS], delimiter=";" if ";" in lines[0] else ","))
        except csv.Error:
            rows = [[line[:200]] for line in lines[:1]]
        raise _no_header(path, rows)
    delimiter, index, _, headers = best
    headers = [unicodedata.normalize("NFC", h).strip() for h in headers]
    columns = _check_columns(path, headers, maps)
    # Bytes up to the data rows (utf-8-sig counts the BOM; single-byte codecs keep length).
    start = len("".join(lines[:index + 1]).encode(encoding, errors="replace"))
    size = path.stat().st_size
    part = Part("", index + 1, headers, columns,
                [h for h in headers if recognise(h, maps) is None and h],
                functools.partial(_csv_chunks, path, start, index + 2, encoding, delimiter), size)
    return Table(path, "csv", [part], encoding=encoding, delimiter=delimiter)


# --- workbooks: every sheet classified (XLSX read by diemthi.xlsx, XLS/ODS by calamine) ---

def _open_xlsx(path: Path, maps: dict[str, str]) -> Table:
    book, sheets = xlsx.open_book(path)

    def sheet(name: str, member: str | None, size: int):
        if member is None:
            return None
        return (functools.partial(xlsx.head_rows, path, member, book, name),
                lambda after, sbd, width: xlsx.sheet_chunks(path, member, book, name, after,
                                                            sbd, width),
                size)

    return _classify(path, "xlsx", maps, [(name, sheet(name, member, size))
                                          for name, member, size in sheets])


SheetSource = tuple[Callable[[int], list[tuple[int, list[str]]]],
                    Callable[[int, int, int], Iterator[Chunk]], int]


def _classify(path: Path, kind: str, maps: dict[str, str],
              sheets: list[tuple[str, SheetSource | None]]) -> Table:
    """Every sheet: the first with a header row starts the table; a later one adds its rows
    when it repeats that header (any order) or goes on with data rows in its layout; an
    empty one is skipped; anything else is skipped and named, never guessed at."""
    parts: list[Part] = []
    skipped: list[tuple[str, str]] = []
    first_rows: list[list[str]] = []
    for name, source in sheets:
        if source is None:
            skipped.append((name, "không phải trang dữ liệu (biểu đồ)"))
            continue
        head_of, chunks_of, size = source
        first = parts[0] if parts else None
        head = head_of(first.columns[SBD] if first else -1)
        if not head:
            skipped.append((name, "trang trống"))
            continue
        if first is None:
            found = _find_header([cells for _, cells in head], maps)
            if found is None:
                first_rows = first_rows or [cells for _, cells in head]
                skipped.append((name, "không có dòng tiêu đề có SBD và môn thi"))
                continue
            header_row, headers = head[found[0]]
            columns = _check_columns(path, headers, maps)
            parts.append(Part(name, header_row, headers, columns,
                              [h for h in headers if recognise(h, maps) is None and h],
                              functools.partial(chunks_of, header_row, columns[SBD],
                                                len(headers)), size))
            continue
        row_no, cells = head[0]
        if _find_header([cells], maps):
            columns = _check_columns(path, cells, maps)
            if set(columns) != set(first.columns):
                skipped.append((name, f"dòng {row_no} là tiêu đề khác trang {first.sheet}: "
                                      + shown(", ".join(cells), 120)))
                continue
            parts.append(Part(name, row_no, cells, columns,
                              [h for h in cells if recognise(h, maps) is None and h],
                              functools.partial(chunks_of, row_no, columns[SBD], len(cells)),
                              size))
        elif len(cells) <= len(first.headers) and is_sbd(cells[first.columns[SBD]].strip()
                                                         if len(cells) > first.columns[SBD]
                                                         else ""):
            parts.append(Part(name, 0, first.headers, first.columns, first.ignored,
                              functools.partial(chunks_of, 0, first.columns[SBD],
                                                len(first.headers)), size))
        else:
            skipped.append((name, f"không phải dòng điểm (dòng {row_no}: "
                                  f"{shown(', '.join(cells), 120)})"))
    if not parts:
        raise _no_header(path, first_rows)
    return Table(path, kind, parts, skipped)


def _open_calamine(path: Path, maps: dict[str, str]) -> Table:
    """XLS and ODS, which calamine reads whole (rare, and small, in practice)."""
    from python_calamine import CalamineWorkbook

    try:
        book = CalamineWorkbook.from_path(str(path))
        sheets = [(name, book.get_sheet_by_name(name)) for name in book.sheet_names]
    except Exception as exc:  # noqa: BLE001 - calamine raises its own error types per format
        raise xlsx.unreadable_book(path, exc) from None
    sources = []
    for name, sheet in sheets:
        if (sheet.total_width or 0) > MAX_COLUMNS or (sheet.total_height or 0) > MAX_ROWS:
            raise DialectError(f"{path.name}: trang {name} rộng {sheet.total_width} cột, "
                               f"cao {sheet.total_height} dòng: quá vùng đọc")
        start = (sheet.start or (0, 0))[0]
        raw = sheet.to_python(skip_empty_area=False)

        def rows(sbd: int, raw=raw, start=start) -> list[tuple[int, list[str]]]:
            out = []
            for n, r in enumerate(raw, start=start + 1):
                cells = [_calamine_cell(c) for c in r]
                if 0 <= sbd < len(r) and isinstance(r[sbd], (int, float)) \
                        and len(cells[sbd]) < 8:
                    cells[sbd] = cells[sbd].zfill(8)
                if any(cells):
                    out.append((n, cells))
            return out

        def chunks(after: int, sbd: int, width: int, rows=rows) -> Iterator[Chunk]:
            body = [(n, c + [""] * (width - len(c))) for n, c in rows(sbd) if n > after]
            for i in range(0, len(body), 20000):
                yield RowsChunk(body[i:i + 20000])

        sources.append((name, (lambda sbd, rows=rows: rows(sbd)[:HEAD_ROWS], chunks, 0)))
    return _classify(path, "xlsx", maps, sources)


def _calamine_cell(value: object) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return xlsx.number_text(repr(value))
    return unicodedata.normalize("NFC", str(value)).strip()
