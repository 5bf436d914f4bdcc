"""Recognising the dialects score files come in: headers, encodings, delimiters, XLSX.

Everything that guesses about a file's shape lives here, so the importer sees one thing:
a :class:`Table` with known columns and an iterator of row chunks.
"""

from __future__ import annotations

import codecs
import csv
import functools
import html
import io
import math
import re
import unicodedata
import zipfile
import zlib
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence, Union

from .reference import SUBJECTS
from .sbd import is_sbd

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


class DialectError(ValueError):
    """The file cannot be read as a score table; the message is for staff (Vietnamese)."""


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

#: A record longer than this is refused: no score row comes near it, and it bounds memory
#: whatever the input (a 200 MB line, a quote that is never closed).
MAX_RECORD_BYTES = 1 << 20
#: csv's own cap on one field, refused with the line instead of a traceback.
MAX_FIELD_CHARS = csv.field_size_limit()
#: XLSX caps, checked before reading: the zip's declared sizes bound what it inflates.
MAX_SHEET_XML_BYTES = 2 << 30
MAX_INFLATE_RATIO = 200  # real sheets inflate 5–30x; a zip bomb, hundreds or thousands
MAX_COLUMNS = 1024
MAX_ROWS = 1_048_576  # Excel's own last row


def shown(text: object, limit: int = 40) -> str:
    """A cell as it may be echoed to a terminal or a report: no control characters, short."""
    text = str(text)
    if len(text) > limit:
        text = text[:limit] + f"… ({len(text)} ký tự)"
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256
                   else f"\\u{ord(c):04x}" for c in text)


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


@dataclass(frozen=True)
class XlsxChunk:
    """Whole ``<row>`` elements of one sheet's XML, parsed where the work is done."""

    data: bytes
    book: str  # key of the workbook's shared strings in _BOOKS (inherited by workers)
    sheet: str
    after_row: int  # rows up to this one (title, header) are not data
    sbd_column: int  # a number there lost its leading zero
    width: int  # header cells: rows are padded to it (XLSX leaves trailing cells out)
    next_row: int  # the row number of the first <row> without an r attribute

    def table(self) -> tuple[Sequence[int], list[list[str]]]:
        strings = _BOOKS[self.book]
        plain = _xlsx_rows_plain(self, strings)
        return plain if plain is not None else _xlsx_rows(self, strings)


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
                why = ("có dấu ngoặc kép mở mà không đóng" if b'"' in pending
                       else "không có dấu xuống dòng")
                raise DialectError(f"dòng {line}: bản ghi dài quá {MAX_RECORD_BYTES >> 20} MB "
                                   f"({why})")


_HEAD_BYTES = 1 << 16
_HEAD_ROWS = 30  # title rows we look through for the header row


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
            rows = list(csv.reader(lines[:_HEAD_ROWS], delimiter=delimiter))
        except csv.Error:
            continue
        found = _find_header(rows, maps)
        if found and (best is None or len(found[1]) > len(best[2])):
            best = (delimiter, found[0], found[1], rows[found[0]])
    if best is None:
        try:
            rows = list(csv.reader(lines[:_HEAD_ROWS], delimiter=";" if ";" in lines[0] else ","))
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


# --- XLSX, streamed ---------------------------------------------------------------------
#
# A sheet's XML is inflated block by block and cut at <row> boundaries; the cells are found
# by one regular expression per chunk, in the worker processes. Nothing holds a whole
# sheet: memory stays flat whatever the rows, and a stray cell at XFD1048576 is one cell.

_NS = rb"(?:[A-Za-z_][\w.-]*:)?"  # an optional namespace prefix (x:row, x:c)
_ROW_START = re.compile(b"<" + _NS + rb"row\b")
_ITEM = re.compile(
    b"<" + _NS + rb"(row)\b(?:(?=[^>]*?\sr=\"(\d+)\"))?[^>]*>"  # 1: row, 2: its number
    rb"|<" + _NS + rb"c\b(?:(?=[^>]*?\sr=\"([A-Z]+)(\d+)\"))?"  # 3, 4: column, row
    rb"(?:(?=[^>]*?\st=\"(\w+)\"))?[^>]*?"  # 5: type
    rb"(?:/>|>(?:<" + _NS + rb"f\b[^>]*?(?:/>|>.*?</" + _NS + rb"f>))?"  # a formula: its value
    rb"(?:<" + _NS + rb"v>([^<]*)</" + _NS + rb"v>)?"  # 6: the value
    rb"(.*?)</" + _NS + rb"c>)",  # 7: the rest (inline strings)
    re.S)
_TEXT = re.compile(b"<" + _NS + rb"t(?:\s[^>]*)?>([^<]*)</" + _NS + rb"t>")
_SI = re.compile(b"<" + _NS + rb"si>(.*?)</" + _NS + rb"si>|<" + _NS + rb"si/>", re.S)
_ENTITY = re.compile(r"&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);")


def _unescape(text: str) -> str:
    if "&" not in text:
        return text
    return _ENTITY.sub(lambda m: html.unescape(m.group(0)), text)


def _column_index(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ch - 64
    return n - 1


def _column_letters(index: int) -> str:
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


class SharedStrings:
    """A workbook's shared strings as one blob and offsets: compact, and shared as is
    with forked workers (no per-string objects whose reference counts would copy pages)."""

    def __init__(self, blob: bytes, offsets: array):
        self.blob = blob
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        return self.blob[self.offsets[i]:self.offsets[i + 1]].decode("utf-8")


_BOOKS: dict[str, SharedStrings] = {}


def _number(text: str, memo: dict[str, str]) -> str:
    """A number cell as text, without float noise (0.1+0.2 → 0.3), memoised."""
    out = memo.get(text)
    if out is not None:
        return out
    try:
        value = round(float(text), 9)
    except (ValueError, OverflowError):
        value = None
    if value is None or value != value or value in (math.inf, -math.inf):
        out = text  # not a number we can print: the importer says why
    elif value.is_integer() and abs(value) < 1e15:
        out = str(int(value))
    else:
        out = repr(value)
    if len(memo) < 100_000:
        memo[text] = out
    return out


_NUMBER_MEMO: dict[str, str] = {}


def _xlsx_rows(chunk: XlsxChunk, strings: SharedStrings) -> tuple[list[int], list[list[str]]]:
    """Row numbers and cells of a chunk of sheet XML; empty rows and title rows dropped."""
    lines: list[int] = []
    rows: list[list[str]] = []
    width, sbd_column, after = chunk.width, chunk.sbd_column, chunk.after_row
    blank = [""] * width  # rows are padded to the header (XLSX leaves empty cells out)
    cells: list[str] = blank.copy()
    filled = False
    row, col = chunk.next_row - 1, -1
    numbers, columns = _NUMBER_BYTES_MEMO, _COLUMN_MEMO
    for is_row, row_no, letters, cell_row, kind, value, rest in _ITEM.findall(chunk.data):
        if is_row:
            if filled and row > after:
                lines.append(row)
                rows.append(cells)
                cells = blank.copy()
            elif filled:
                cells = blank.copy()
            filled = False
            row = int(row_no) if row_no else row + 1
            if row > MAX_ROWS:
                raise DialectError(f"{chunk.sheet}!{row}: quá {MAX_ROWS} dòng của Excel")
            col = -1
            continue
        if letters:
            col = columns.get(letters)
            if col is None:
                col = columns[letters] = _column_index(letters)
        else:
            col += 1
        if not value and not rest:
            continue
        if not kind or kind == b"n":
            text = numbers.get(value)
            if text is None:
                text = _number(value.decode("latin-1"), _NUMBER_MEMO)
                if len(numbers) < 100_000:
                    numbers[value] = text
            if col == sbd_column and len(text) < 8 and text.isdigit():
                text = text.zfill(8)  # a number: the leading zero was lost
        elif kind == b"s":
            try:
                text = strings[int(value)]
            except (ValueError, IndexError):
                raise DialectError(f"{chunk.sheet}!{row}: ô chỉ tới chuỗi dùng chung "
                                   f"không có ({shown(value.decode('latin-1'))})") from None
        elif kind == b"inlineStr":
            text = _clean(b"".join(_TEXT.findall(rest)))
        else:  # str (a formula's text), e (error), b (boolean), d (ISO date)
            text = _clean(value)
        if not text:
            continue
        if col >= width:
            if col >= MAX_COLUMNS:
                raise DialectError(f"{chunk.sheet}!{_column_letters(col)}{row}: có dữ liệu "
                                   f"ngoài vùng đọc (quá {MAX_COLUMNS} cột); hãy xóa ô đó "
                                   "rồi lưu lại")
            if col >= len(cells):
                cells += [""] * (col + 1 - len(cells))
        cells[col] = text
        filled = True
    if filled and row > after:
        lines.append(row)
        rows.append(cells)
    return lines, rows


_NUMBER_BYTES_MEMO: dict[bytes, str] = {}

# What Excel, LibreOffice and openpyxl write for plain cells: no prefix, r first, a value
# or an inline string, nothing else. Fewer groups and no look-arounds: about twice as fast
# as _ITEM with its Python loop; a chunk with any other cell is read by _xlsx_rows.
_PLAIN = re.compile(
    rb'<row r="(\d+)"[^>]*>'
    rb'|<c r="([A-Z]+)\d+"(?: s="\d+")?(?: t="(\w+)")?(?: s="\d+")?'
    rb'(?:/>|><v>([^<]*)</v></c>|><is><t>([^<]*)</t></is></c>)')


def _xlsx_rows_plain(chunk: XlsxChunk, strings: SharedStrings
                     ) -> tuple[list[int], list[list[str]]] | None:
    """:func:`_xlsx_rows` for chunks of plain cells only; None for any other chunk."""
    data = chunk.data
    if b"<row>" in data or b"<c>" in data:
        return None
    items = _PLAIN.findall(data)
    if len(items) != data.count(b"<row ") + data.count(b"<c "):
        return None  # a formula, a rich or prefixed cell: the general reader
    lines: list[int] = []
    rows: list[list[str]] = []
    width, sbd_column, after = chunk.width, chunk.sbd_column, chunk.after_row
    blank = [""] * width
    cells, filled, row = blank.copy(), False, 0
    numbers, columns = _NUMBER_BYTES_MEMO, _COLUMN_MEMO
    for row_no, letters, kind, value, inline in items:
        if row_no:
            if filled:
                if row > after:
                    lines.append(row)
                    rows.append(cells)
                cells, filled = blank.copy(), False
            row = int(row_no)
            continue
        col = columns.get(letters)
        if col is None:
            col = columns[letters] = _column_index(letters)
        if not kind or kind == b"n":
            if not value:
                continue
            text = numbers.get(value)
            if text is None:
                text = _number(value.decode("latin-1"), _NUMBER_MEMO)
                if len(numbers) < 100_000:
                    numbers[value] = text
            if col == sbd_column and len(text) < 8 and text.isdigit():
                text = text.zfill(8)  # a number: the leading zero was lost
        elif kind == b"s":
            try:
                text = strings[int(value)]
            except (ValueError, IndexError):
                return None
        elif kind == b"inlineStr":
            text = _clean(inline)
        else:
            text = _clean(value)
        if not text:
            continue
        if col >= width or row > MAX_ROWS:
            return None  # the general reader pads, or names the cell it refuses
        cells[col] = text
        filled = True
    if filled and row > after:
        lines.append(row)
        rows.append(cells)
    return lines, rows
_COLUMN_MEMO: dict[bytes, int] = {}


def _clean(raw: bytes) -> str:
    if raw.isascii():  # an SBD, a language code: nothing to normalise
        return _unescape(raw.decode("ascii")).strip()
    return unicodedata.normalize("NFC", _unescape(raw.decode("utf-8", "replace"))).strip()


def _zip_error(path: Path, exc: BaseException) -> DialectError:
    return DialectError(f"{path.name}: không đọc được tệp bảng tính ({shown(exc, 120)})")


def _inflate(path: Path, member: str, cut_at: Callable[[bytes], int], label: str,
             block_bytes: int = 1 << 20) -> Iterator[bytes]:
    """A zip member inflated block by block, cut where ``cut_at`` says a whole item ends."""
    try:
        with zipfile.ZipFile(path) as zf, zf.open(member) as fh:
            pending = b""
            block = fh.read(block_bytes)
            while True:
                ahead = fh.read(block_bytes) if block else b""  # the last block goes whole
                data = pending + block if pending else block
                if not ahead:
                    if data:
                        yield data
                    return
                block = ahead
                cut = cut_at(data)
                if cut > 0:
                    yield data[:cut]
                pending = data[cut:] if cut > 0 else data
                if len(pending) > 8 * MAX_RECORD_BYTES:
                    raise DialectError(f"{path.name}: {label}: một dòng dài quá "
                                       f"{8 * MAX_RECORD_BYTES >> 20} MB")
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, KeyError) as exc:
        raise _zip_error(path, exc) from None


def _last_row_start(data: bytes) -> int:
    """Where the last <row> element starts: everything before it is whole rows."""
    at = max(data.rfind(b"<row ", 0), data.rfind(b"<row>", 0))
    if at < 0 and b":row" in data:
        starts = [m.start() for m in _ROW_START.finditer(data)]
        at = starts[-1] if starts else -1
    return at


_NUMBERED_ROW = re.compile(rb'<row\b[^>]*?\sr="(\d+)"')


def _sheet_chunks(path: Path, member: str, book: str, sheet: str, after_row: int,
                  sbd_column: int, width: int, block_bytes: int = 1 << 20
                  ) -> Iterator[XlsxChunk]:
    next_row = 1
    for data in _inflate(path, member, _last_row_start, sheet, block_bytes):
        yield XlsxChunk(data, book, sheet, after_row, sbd_column, width, next_row)
        # The row after the chunk's last: its number, when it has one, is found from the end
        # at once; counting every row costs the parent three scans of the chunk.
        last = _NUMBERED_ROW.match(data, max(data.rfind(b"<row "), 0))
        if last is not None and b"<row>" not in data[last.end():] \
                and b":row" not in data[last.end():]:
            next_row = int(last.group(1)) + 1
        else:
            next_row += data.count(b"<row ") + data.count(b"<row>") + (
                len(_ROW_START.findall(data)) if b":row" in data else 0)


def _head_rows(path: Path, member: str, book: str, sheet: str, sbd_column: int
               ) -> list[tuple[int, list[str]]]:
    """The first non-empty rows of a sheet (enough to find its header), no more."""
    out: list[tuple[int, list[str]]] = []
    read = 0
    for chunk in _sheet_chunks(path, member, book, sheet, 0, sbd_column, 0, 1 << 16):
        out += zip(*chunk.table())  # type: ignore[arg-type]
        read += len(chunk.data)
        if len(out) >= _HEAD_ROWS or read > 4 * MAX_RECORD_BYTES:
            break
    return out[:_HEAD_ROWS]


def _attrs(tag: bytes) -> dict[str, str]:
    return {k.decode().split(":")[-1]: html.unescape(v.decode("utf-8", "replace"))
            for k, v in re.findall(rb'([\w:.-]+)="([^"]*)"', tag)}


def _worksheets(zf: zipfile.ZipFile) -> list[tuple[str, str | None]]:
    """(sheet name, zip member or None for a chart sheet), in workbook order."""
    book = "xl/workbook.xml"
    rels = zf.read("xl/_rels/workbook.xml.rels")
    targets = {}
    for tag in re.findall(rb"<(?:\w+:)?Relationship\b[^>]*>", rels):
        a = _attrs(tag)
        target = a.get("Target", "")
        target = target.lstrip("/") if target.startswith("/") else "xl/" + target
        targets[a.get("Id")] = (target, a.get("Type", "").endswith("/worksheet"))
    out = []
    for tag in re.findall(rb"<(?:\w+:)?sheet\b[^>]*>", zf.read(book)):
        a = _attrs(tag)
        target, is_sheet = targets.get(a.get("id"), ("", False))
        out.append((a.get("name", "?"), target if is_sheet else None))
    return out


def _shared_strings(path: Path, zf: zipfile.ZipFile) -> SharedStrings:
    blob, offsets = bytearray(), array("q", [0])
    if "xl/sharedStrings.xml" in zf.namelist():
        for data in _inflate(path, "xl/sharedStrings.xml",
                             lambda d: d.rfind(b"</si>") + 5 if b"</si>" in d else 0,
                             "sharedStrings"):
            for m in _SI.finditer(data):
                content = m.group(1) or b""
                texts = _TEXT.findall(content.split(b"<rPh", 1)[0]) if content else []
                blob += _clean(b"".join(texts)).encode()
                offsets.append(len(blob))
    return SharedStrings(bytes(blob), offsets)


def _check_sizes(path: Path, zf: zipfile.ZipFile) -> None:
    """Refuse a zip bomb before inflating a byte: the declared sizes bound what is read."""
    for info in zf.infolist():
        if not info.filename.endswith(".xml"):
            continue
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > MAX_SHEET_XML_BYTES or (info.file_size > (16 << 20)
                                                     and ratio > MAX_INFLATE_RATIO):
            raise DialectError(
                f"{path.name}: {info.filename} giải nén ra {info.file_size >> 20} MB từ "
                f"{info.compress_size >> 10} KB (gấp {ratio:.0f} lần); tệp bảng tính thật "
                f"không như vậy (tối đa {MAX_SHEET_XML_BYTES >> 30} GB, gấp "
                f"{MAX_INFLATE_RATIO} lần), nên không đọc")


def _open_xlsx(path: Path, maps: dict[str, str]) -> Table:
    try:
        with zipfile.ZipFile(path) as zf:
            _check_sizes(path, zf)
            sheets = _worksheets(zf)
            sizes = {i.filename: i.file_size for i in zf.infolist()}
            strings = _shared_strings(path, zf)
    except (zipfile.BadZipFile, zlib.error, OSError, KeyError, EOFError) as exc:
        raise _zip_error(path, exc) from None
    st = path.stat()
    book = f"{path.resolve()}:{st.st_mtime_ns}:{st.st_size}"
    _BOOKS[book] = strings

    def sheet(name: str, member: str | None):
        if member is None:
            return None
        return (functools.partial(_head_rows, path, member, book, name),
                lambda after, sbd, width: _sheet_chunks(path, member, book, name, after,
                                                        sbd, width),
                sizes.get(member, 0))

    return _classify(path, "xlsx", maps, [(name, sheet(name, member))
                                          for name, member in sheets])


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
        raise _zip_error(path, exc) from None
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

        sources.append((name, (lambda sbd, rows=rows: rows(sbd)[:_HEAD_ROWS], chunks, 0)))
    return _classify(path, "xlsx", maps, sources)


def _calamine_cell(value: object) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return _number(repr(value), _NUMBER_MEMO)
    return unicodedata.normalize("NFC", str(value)).strip()
