"""XLSX, streamed: a workbook's sheets read as chunks of rows, its caps checked first.

A sheet's XML is inflated block by block and cut at <row> boundaries; the cells are found
by one regular expression per chunk, in the worker processes. Nothing holds a whole
sheet: memory stays flat whatever the rows, and a stray cell at XFD1048576 is one cell.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
import zipfile
import zlib
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from .limits import (HEAD_ROWS, MAX_COLUMNS, MAX_RECORD_BYTES, MAX_ROWS, DialectError,
                     shown)

#: Checked before reading: the zip's declared sizes bound what it inflates.
MAX_SHEET_XML_BYTES = 2 << 30
MAX_INFLATE_RATIO = 200  # real sheets inflate 5–30x; a zip bomb, hundreds or thousands


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
_NUMBER_BYTES_MEMO: dict[bytes, str] = {}  # a number cell's bytes -> its text
_SBD_BYTES_MEMO: dict[bytes, str] = {}  # the same in the SBD column (zeros put back)
_COLUMN_MEMO: dict[bytes, int] = {}  # b"AB" -> 27


def _remember_number(value: bytes, sbd: bool) -> str:
    """A number cell's text as the importer reads it, remembered by its bytes; in the SBD
    column with the leading zeros a number lost. Both cell loops look in the memo first,
    inline: this is their slow path."""
    text = _number(value.decode("latin-1"), _NUMBER_MEMO)
    if sbd and len(text) < 8 and text.isdigit():
        text = text.zfill(8)
    memo = _SBD_BYTES_MEMO if sbd else _NUMBER_BYTES_MEMO
    if len(memo) < 100_000:
        memo[value] = text
    return text


# What Excel, LibreOffice and openpyxl write for plain cells: no prefix, r first, a value
# or an inline string, nothing else. Fewer groups and no look-arounds: about twice as fast
# as _ITEM with its Python loop; a chunk with any other cell is read by _xlsx_rows.
_PLAIN = re.compile(
    rb'<row r="(\d+)"[^>]*>'
    rb'|<c r="([A-Z]+)\d+"(?: s="\d+")?(?: t="(\w+)")?(?: s="\d+")?'
    rb'(?:/>|><v>([^<]*)</v></c>|><is><t>([^<]*)</t></is></c>)')


def _keep(lines: list[int], rows: list[list[str]], row: int, cells: list[str],
          after: int) -> None:
    """A finished row with something in it, unless it is the header or above it."""
    if row > after:
        lines.append(row)
        rows.append(cells)


def _xlsx_rows(chunk: XlsxChunk, strings: SharedStrings) -> tuple[list[int], list[list[str]]]:
    """Row numbers and cells of a chunk of sheet XML; empty rows and title rows dropped."""
    lines: list[int] = []
    rows: list[list[str]] = []
    width, sbd_column, after = chunk.width, chunk.sbd_column, chunk.after_row
    blank = [""] * width  # rows are padded to the header (XLSX leaves empty cells out)
    cells: list[str] = blank.copy()
    filled = False
    row, col = chunk.next_row - 1, -1
    numbers, sbd_numbers, columns = _NUMBER_BYTES_MEMO, _SBD_BYTES_MEMO, _COLUMN_MEMO
    for is_row, row_no, letters, cell_row, kind, value, rest in _ITEM.findall(chunk.data):
        if is_row:
            if filled:
                _keep(lines, rows, row, cells, after)
                cells, filled = blank.copy(), False
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
            text = (sbd_numbers if col == sbd_column else numbers).get(value) \
                or _remember_number(value, col == sbd_column)
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
    if filled:
        _keep(lines, rows, row, cells, after)
    return lines, rows


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
    numbers, sbd_numbers, columns = _NUMBER_BYTES_MEMO, _SBD_BYTES_MEMO, _COLUMN_MEMO
    for row_no, letters, kind, value, inline in items:
        if row_no:
            if filled:
                _keep(lines, rows, row, cells, after)
                cells, filled = blank.copy(), False
            row = int(row_no)
            continue
        col = columns.get(letters)
        if col is None:
            col = columns[letters] = _column_index(letters)
        if not kind or kind == b"n":
            if not value:
                continue
            text = (sbd_numbers if col == sbd_column else numbers).get(value) \
                or _remember_number(value, col == sbd_column)
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
    if filled:
        _keep(lines, rows, row, cells, after)
    return lines, rows


def _clean(raw: bytes) -> str:
    if raw.isascii():  # an SBD, a language code: nothing to normalise
        return _unescape(raw.decode("ascii")).strip()
    return unicodedata.normalize("NFC", _unescape(raw.decode("utf-8", "replace"))).strip()


def unreadable_book(path: Path, exc: BaseException) -> DialectError:
    """The refusal of a spreadsheet its library or the zip cannot read."""
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
        raise unreadable_book(path, exc) from None


def _last_row_start(data: bytes) -> int:
    """Where the last <row> element starts: everything before it is whole rows."""
    at = max(data.rfind(b"<row ", 0), data.rfind(b"<row>", 0))
    if at < 0 and b":row" in data:
        starts = [m.start() for m in _ROW_START.finditer(data)]
        at = starts[-1] if starts else -1
    return at


_NUMBERED_ROW = re.compile(rb'<row\b[^>]*?\sr="(\d+)"')


def sheet_chunks(path: Path, member: str, book: str, sheet: str, after_row: int,
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


def head_rows(path: Path, member: str, book: str, sheet: str, sbd_column: int
               ) -> list[tuple[int, list[str]]]:
    """The first non-empty rows of a sheet (enough to find its header), no more."""
    out: list[tuple[int, list[str]]] = []
    read = 0
    for chunk in sheet_chunks(path, member, book, sheet, 0, sbd_column, 0, 1 << 16):
        out += zip(*chunk.table())  # type: ignore[arg-type]
        read += len(chunk.data)
        if len(out) >= HEAD_ROWS or read > 4 * MAX_RECORD_BYTES:
            break
    return out[:HEAD_ROWS]


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


def open_book(path: Path) -> tuple[str, list[tuple[str, str | None, int]]]:
    """Check a workbook's sizes (a zip bomb is refused before a byte is inflated), read
    its shared strings and its sheets: the book's key, by which its chunks find the
    strings (inherited by forked workers), and (name, zip member or None for a chart
    sheet, inflated size) per sheet, in workbook order."""
    try:
        with zipfile.ZipFile(path) as zf:
            _check_sizes(path, zf)
            sheets = _worksheets(zf)
            sizes = {i.filename: i.file_size for i in zf.infolist()}
            strings = _shared_strings(path, zf)
    except (zipfile.BadZipFile, zlib.error, OSError, KeyError, EOFError) as exc:
        raise unreadable_book(path, exc) from None
    st = path.stat()
    book = f"{path.resolve()}:{st.st_mtime_ns}:{st.st_size}"
    _BOOKS[book] = strings
    return book, [(name, member, sizes.get(member, 0) if member else 0)
                  for name, member in sheets]


def number_text(text: str) -> str:
    """A spreadsheet's number as text, without float noise (0.1+0.2 → 0.3)."""
    return _number(text, _NUMBER_MEMO)
