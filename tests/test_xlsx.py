"""The streamed XLSX reader (diemthi.xlsx), through open_table as the importer meets it:
layouts offices publish, every sheet, caps and refusals, and its two cell readers."""

from pathlib import Path

import pytest

from diemthi.dialects import DialectError, open_table
from tests.conftest import write


def write_xlsx(path: Path, rows: list[list[object]], title_rows: int = 2) -> Path:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    for i in range(title_rows):
        ws.append([f"SỞ GIÁO DỤC VÀ ĐÀO TẠO - dòng tiêu đề {i + 1}"])
    for row in rows:
        ws.append(row)
    wb.save(path)
    return path


def test_xlsx_as_offices_publish_it(tmp_path: Path):
    path = write_xlsx(tmp_path / "f.xlsx", [
        ["STT", "SBD", "Toán", "Ngữ văn", "Ngoại ngữ", "Mã môn ngoại ngữ"],
        [1, 4000001, 7.75, 5.83, None, None],  # a number that lost its leading zero
        [2, "04000002", 10, 6, 8.4, "N1"],
    ])
    table = open_table(path)
    assert table.kind == "xlsx" and table.header_line == 3 and table.ignored == ["STT"]
    lines, rows = next(table.chunks()).table()
    assert list(lines) == [4, 5]
    assert rows[0][1:4] == ["04000001", "7.75", "5.83"]
    assert rows[1][1:] == ["04000002", "10", "6", "8.4", "N1"]


def write_book(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(row)
    wb.save(path)
    return path


def rows_of(table) -> list[tuple[str, int, list[str]]]:
    out = []
    for part in table.parts:
        for chunk in part.chunks():
            out += [(part.sheet, n, cells) for n, cells in zip(*chunk.table())]
    return out


def test_every_sheet_repeated_header_none_and_a_summary(tmp_path: Path):
    path = write_book(tmp_path / "f.xlsx", {
        "Sheet1": [["Danh sách điểm"], ["SBD", "Toán", "Ngữ văn"], ["01000001", 7, 8]],
        "Sheet2": [["Ngữ văn", "SBD", "Toán"], [6, "01000002", 5.5]],  # header, new order
        "Sheet3": [[1000003, 9, 9.25]],  # no header: goes on in Sheet1's layout
        "Trống": [],
        "Tổng hợp": [["Tỉnh", "Số thí sinh"], ["Hà Nội", 3]],
    })
    table = open_table(path)
    assert [p.sheet for p in table.parts] == ["Sheet1", "Sheet2", "Sheet3"]
    assert [p.header_line for p in table.parts] == [2, 1, 0]
    assert table.parts[1].columns == {"ngu_van": 0, "sbd": 1, "toan": 2}
    assert table.skipped[0] == ("Trống", "trang trống")
    assert table.skipped[1][0] == "Tổng hợp" and "Tỉnh" in table.skipped[1][1]
    assert rows_of(table) == [("Sheet1", 3, ["01000001", "7", "8"]),
                              ("Sheet2", 2, ["6", "01000002", "5.5"]),
                              ("Sheet3", 1, ["01000003", "9", "9.25"])]


def test_xlsx_float_noise_rounded_and_rows_padded(tmp_path: Path):
    path = write_book(tmp_path / "f.xlsx", {"S": [["SBD", "Toán", "Văn", "Ghi chú"],
                                                  ["01000001", 0.1 + 0.2, 7.000000000000001],
                                                  [], ["01000002", None, 5]]})
    assert rows_of(open_table(path)) == [("S", 2, ["01000001", "0.3", "7", ""]),
                                         ("S", 4, ["01000002", "", "5", ""])]


def _zip_with_sheet(path: Path, sheet_xml: bytes) -> Path:
    """A minimal workbook whose one sheet is the given XML (hostile files are made so)."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", '<workbook><sheets><sheet name="Sheet1" sheetId="1" '
                                      'r:id="rId1"/></sheets></workbook>')
        z.writestr("xl/_rels/workbook.xml.rels",
                   '<Relationships><Relationship Id="rId1" Type="http://schemas.openxmlformats'
                   '.org/officeDocument/2006/relationships/worksheet" '
                   'Target="worksheets/sheet1.xml"/></Relationships>')
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as fh:
            fh.write(sheet_xml)
    return path


HEAD_XML = (b'<worksheet><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>SBD</t></is></c>'
            b'<c r="B1" t="inlineStr"><is><t>To\xc3\xa1n</t></is></c></row>'
            b'<row r="2"><c r="A2" t="inlineStr"><is><t>01000001</t></is></c>'
            b'<c r="B2"><v>5</v></c></row>')


def test_stray_cell_at_xfd1048576_is_refused_by_name(tmp_path: Path):
    xml = HEAD_XML + b'<row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData></worksheet>'
    with pytest.raises(DialectError, match=r"Sheet1!XFD1048576: có dữ liệu ngoài vùng đọc"):
        rows_of(open_table(_zip_with_sheet(tmp_path / "stray.xlsx", xml)))


def test_zip_bomb_refused_before_inflating(tmp_path: Path):
    import zipfile

    path = tmp_path / "bomb.xlsx"
    _zip_with_sheet(path, HEAD_XML + b"</sheetData></worksheet>")
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as z:
        with z.open("xl/worksheets/sheet2.xml", "w", force_zip64=True) as fh:
            block = b"<row/>" * (1 << 20)
            for _ in range(64):  # 400 MB of XML, a few hundred KB zipped
                fh.write(block)
    assert path.stat().st_size < 4 << 20
    with pytest.raises(DialectError, match=r"bomb.xlsx: xl/worksheets/sheet2.xml giải nén ra"):
        open_table(path)


def test_not_a_zip_and_a_truncated_one(tmp_path: Path):
    with pytest.raises(DialectError, match="không đọc được tệp bảng tính"):
        open_table(write(tmp_path / "f.xlsx", "SBD,Toán\n"))
    good = _zip_with_sheet(tmp_path / "g.xlsx", HEAD_XML + b"</sheetData></worksheet>")
    cut = tmp_path / "cut.xlsx"
    cut.write_bytes(good.read_bytes()[:-200])
    with pytest.raises(DialectError, match="cut.xlsx"):
        rows_of(open_table(cut))


def test_plain_cells_reader_agrees_with_the_general_one(tmp_path: Path):
    from diemthi.xlsx import _BOOKS, _xlsx_rows, _xlsx_rows_plain

    rows = [["Danh sách"], ["SBD", "Toán", "Văn", "Ngoại ngữ", "Mã NN"]]
    rows += [[f"0100{i:04d}" if i % 3 else 1000000 + i, i % 11, None, 0.1 + 0.2 if i % 2
              else "Miễn", "N1" if i % 5 else None] for i in range(1, 500)]
    table = open_table(write_book(tmp_path / "f.xlsx", {"S": rows}))
    for chunk in table.chunks():
        plain = _xlsx_rows_plain(chunk, _BOOKS[chunk.book])
        assert plain is not None and plain == _xlsx_rows(chunk, _BOOKS[chunk.book])
        assert plain[1][2] == ["01000003", "3", "", "0.3", "N1"]
    formula = _zip_with_sheet(tmp_path / "f2.xlsx", HEAD_XML.replace(
        b'<c r="B2"><v>5</v></c>', b'<c r="B2"><f>2+3</f><v>5</v></c>')
        + b"</sheetData></worksheet>")
    chunk = next(open_table(formula).chunks())
    assert _xlsx_rows_plain(chunk, _BOOKS[chunk.book]) is None  # the general reader takes it
    assert chunk.table() == ([2], [["01000001", "5"]])


def test_shared_strings_as_excel_writes_them(tmp_path: Path):
    import zipfile

    path = _zip_with_sheet(tmp_path / "excel.xlsx", (
        b'<worksheet xmlns="x"><sheetData><row r="1" spans="1:3"><c r="A1" s="1" t="s"><v>0</v>'
        b'</c><c r="B1" t="s"><v>1</v></c><c r="C1" t="s"><v>2</v></c></row>'
        b'<row r="2"><c r="A2" s="2" t="s"><v>3</v></c><c r="B2" s="3"><v>7.75</v></c>'
        b'<c r="C2" t="s"><v>4</v></c></row></sheetData></worksheet>'))
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("xl/sharedStrings.xml",
                   '<sst count="5"><si><t>SBD</t></si><si><r><t>To</t></r><r><rPr/><t>án'
                   '</t></r></si><si><t xml:space="preserve"> Ghi chú &amp; khác </t></si>'
                   '<si><t>01000001</t></si><si><t>A&lt;B</t></si></sst>')
    table = open_table(path)
    assert table.headers == ["SBD", "Toán", "Ghi chú & khác"]
    assert rows_of(table) == [("Sheet1", 2, ["01000001", "7.75", "A<B"])]


def test_an_import_refusing_a_stray_cell_names_the_file(tmp_path: Path):
    from diemthi.importer import ImportRefused, import_files

    for row in (3, 1048576):  # among the rows read for the header, and far below them
        xml = HEAD_XML + (f'<row r="{row}"><c r="XFD{row}"><v>1</v></c></row>'
                          "</sheetData></worksheet>").encode()
        book = _zip_with_sheet(tmp_path / f"stray-{row}.xlsx", xml)
        with pytest.raises(ImportRefused, match=rf"^stray-{row}\.xlsx: Sheet1!XFD{row}: "):
            import_files(tmp_path / "data", 2026, [book])
