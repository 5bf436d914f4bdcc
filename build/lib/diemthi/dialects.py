"""Recognising the dialects score files come in: headers, encodings, delimiters, XLSX.

Everything that guesses about a file's shape lives here, so the importer sees one thing:
a :class:`Table` with known columns and an iterator of row chunks.
"""

from __future__ import annotations

import codecs
import csv
import io
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence, Union

from .reference import SUBJECTS

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
    """The canonical key of a header cell, or None when we do not use that column."""
    folded = fold_header(header)
    key = maps.get(folded) or _FOLDED.get(folded)
    return None if key == "ignore" else key


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


@dataclass(frozen=True)
class RowsChunk:
    """Rows already split into cells (XLSX), with their sheet row numbers."""

    data: list[tuple[int, list[str]]]

    def table(self) -> tuple[Sequence[int], list[list[str]]]:
        return [n for n, _ in self.data], [cells for _, cells in self.data]


Chunk = Union[CsvChunk, RowsChunk]


@dataclass
class Table:
    """One score file as the importer sees it."""

    path: Path
    kind: str  # "csv" or "xlsx"
    header_line: int
    headers: list[str]
    columns: dict[str, int]  # canonical key -> cell index
    ignored: list[str]
    encoding: str = ""
    delimiter: str = ""
    size: int = 0  # bytes (csv) or rows (xlsx), for progress
    _data_start: int = 0
    _rows: list[tuple[int, list[str]]] = field(default_factory=list, repr=False)

    def chunks(self, chunk_bytes: int = 1 << 20, chunk_rows: int = 20000) -> Iterator[Chunk]:
        if self.kind == "xlsx":
            for i in range(0, len(self._rows), chunk_rows):
                yield RowsChunk(self._rows[i:i + chunk_rows])
            return
        yield from _csv_chunks(self, chunk_bytes)

    @property
    def describe(self) -> str:
        if self.kind == "xlsx":
            return f"XLSX, tiêu đề ở dòng {self.header_line}"
        delim = {",": "dấu phẩy", ";": "dấu chấm phẩy", "\t": "tab"}[self.delimiter]
        return f"CSV {self.encoding}, phân cách {delim}, tiêu đề ở dòng {self.header_line}"


def _csv_chunks(table: Table, chunk_bytes: int) -> Iterator[CsvChunk]:
    """Cut the file into chunks of whole records (never inside a quoted field)."""
    line = table.header_line + 1
    with open(table.path, "rb") as fh:
        fh.seek(table._data_start)
        pending = b""
        while True:
            block = fh.read(chunk_bytes)
            data = pending + block
            if not block:
                if data.strip():
                    yield CsvChunk(data, line, table.encoding, table.delimiter)
                return
            cut = data.rfind(b"\n") + 1
            # A cut is safe only where the quotes before it are balanced.
            while cut and data.count(b'"', 0, cut) % 2:
                cut = data.rfind(b"\n", 0, cut - 1) + 1
            if not cut:
                pending = data
                continue
            yield CsvChunk(data[:cut], line, table.encoding, table.delimiter)
            line += data.count(b"\n", 0, cut)
            pending = data[cut:]


_HEAD_BYTES = 1 << 16
_HEAD_ROWS = 30  # title rows we look through for the header row


def sniff_encoding(head: bytes) -> str:
    """UTF-8 with or without BOM, else Windows-1258 (Excel's legacy Vietnamese code page)."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        return "cp1258"


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
                               f"'{headers[columns[key]]}' và '{h}'; dùng --map để chọn")
        columns[key] = j
    return columns


def _no_header(path: Path, rows: list[list[str]]) -> DialectError:
    seen = next((r for r in rows if any(str(c).strip() for c in r)), [])
    return DialectError(
        f"{path.name}: không tìm thấy dòng tiêu đề có cột SBD và ít nhất một môn thi "
        f"(dòng đầu: {', '.join(map(str, seen[:16]))}); dùng --map 'TIÊU ĐỀ=khóa'")


def open_table(path: Path, maps: dict[str, str] | None = None) -> Table:
    """Recognise a score file's dialect, without flags."""
    maps = maps or {}
    if not path.is_file():
        raise DialectError(f"{path}: không có tệp này")
    if path.suffix.lower() in (".xlsx", ".xlsm", ".xls", ".ods"):
        return _open_xlsx(path, maps)
    with open(path, "rb") as fh:
        head = fh.read(_HEAD_BYTES)
    if not head.strip():
        raise DialectError(f"{path.name}: tệp rỗng")
    if head.startswith(b"PK\x03\x04"):
        return _open_xlsx(path, maps)
    encoding = sniff_encoding(head)
    text = head.decode(encoding, errors="replace")
    lines = text.splitlines(keepends=True)
    if len(head) == _HEAD_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last one may be cut
    best = None
    for delimiter in (",", ";", "\t"):
        rows = list(csv.reader(lines[:_HEAD_ROWS], delimiter=delimiter))
        found = _find_header(rows, maps)
        if found and (best is None or len(found[1]) > len(best[2])):
            best = (delimiter, found[0], found[1], rows[found[0]])
    if best is None:
        raise _no_header(path, list(csv.reader(lines[:_HEAD_ROWS], delimiter=";" if ";" in
                                               lines[0] else ",")))
    delimiter, index, _, headers = best
    headers = [unicodedata.normalize("NFC", h).strip() for h in headers]
    columns = _check_columns(path, headers, maps)
    # Bytes up to the data rows (utf-8-sig counts the BOM; single-byte codecs keep length).
    start = len("".join(lines[:index + 1]).encode(encoding, errors="replace"))
    return Table(path, "csv", index + 1, headers, columns,
                 [h for h in headers if recognise(h, maps) is None and h],
                 encoding=encoding, delimiter=delimiter, size=path.stat().st_size,
                 _data_start=start)


def _xlsx_cell(value: object) -> str:
    """Cells as the importer's strings: numbers without float noise, dates refused later."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    return unicodedata.normalize("NFC", str(value)).strip()


def _open_xlsx(path: Path, maps: dict[str, str]) -> Table:
    from python_calamine import CalamineWorkbook  # only XLSX needs it

    try:
        book = CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # calamine raises its own error types per format
        raise DialectError(f"{path.name}: không đọc được tệp bảng tính ({exc})") from exc
    first_rows: list[list[str]] = []
    for name in book.sheet_names:
        sheet = book.get_sheet_by_name(name)
        raw = sheet.to_python(skip_empty_area=False)
        rows = [[_xlsx_cell(c) for c in r] for r in raw]
        found = _find_header(rows[:_HEAD_ROWS], maps)
        if found is None:
            first_rows = first_rows or rows[:_HEAD_ROWS]
            continue
        index, _ = found
        headers = rows[index]
        columns = _check_columns(path, headers, maps)
        sbd = columns[SBD]
        body = []
        for n, cells in enumerate(rows[index + 1:], start=index + 2):
            if not any(cells):
                continue
            if isinstance(raw[n - 1][sbd], (int, float)) and len(cells[sbd]) < 8:
                cells[sbd] = cells[sbd].zfill(8)  # a number: the leading zero was lost
            body.append((n, cells))
        return Table(path, "xlsx", index + 1, headers, columns,
                     [h for h in headers if recognise(h, maps) is None and h],
                     size=len(body), _rows=body)
    raise _no_header(path, first_rows)
