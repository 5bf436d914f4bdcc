from pathlib import Path

import pytest

from diemthi.dialects import DialectError, fold_header, open_table, parse_maps, recognise
from tests.conftest import CAO_BANG, DA_NANG, need, to_cp1258, write

CAMEL = ("SBD,Toan,NguVan,NgoaiNgu,VatLy,HoaHoc,SinhHoc,LichSu,DiaLy,GDCD,KinhTePhapLuat,"
         "TinHoc,CongNgheCongNghiep,CongNgheNongNghiep,MaMonNgoaiNgu")
SNAKE = "sbd,toan,ngu_van,ngoai_ngu,vat_li,hoa_hoc,sinh_hoc,lich_su,dia_li,gdcd,ma_ngoai_ngu"
KEYS_CAMEL = ["sbd", "toan", "ngu_van", "ngoai_ngu", "vat_li", "hoa_hoc", "sinh_hoc", "lich_su",
              "dia_li", "gdcd", "gdktpl", "tin_hoc", "cn_cong_nghiep", "cn_nong_nghiep",
              "ma_ngoai_ngu"]


@pytest.mark.parametrize("header,key", [
    ("Số báo danh", "sbd"), ("SBD", "sbd"), ("Toán", "toan"), ("Ngữ văn", "ngu_van"),
    ("Vật lí", "vat_li"), ("Vật lý", "vat_li"), ("Hóa học", "hoa_hoc"), ("Hoá học", "hoa_hoc"),
    ("GDCD", "gdcd"), ("Giáo dục kinh tế và pháp luật", "gdktpl"),
    ("Mã môn ngoại ngữ", "ma_ngoai_ngu"), ("  Địa lý ", "dia_li"), ("cn_nong_nghiep",
                                                                    "cn_nong_nghiep"),
    ("STT", None), ("Tên tỉnh", None), ("Tổng điểm", None),
])
def test_headers_as_staff_type_them(header, key):
    assert recognise(header, {}) == key


def test_fold_header_handles_decomposed_text_and_d_stroke():
    import unicodedata
    assert fold_header(unicodedata.normalize("NFD", "Địa lí")) == "diali"


@pytest.mark.parametrize("header,keys", [(CAMEL, KEYS_CAMEL),
                                         (SNAKE, SNAKE.split(","))])
def test_header_dialects(tmp_path: Path, header, keys):
    table = open_table(write(tmp_path / "f.csv", header + "\n" + "01000001" + "," * header.count(",") + "\n"))
    assert sorted(table.columns) == sorted(keys)
    assert table.delimiter == ","


def test_real_files_are_recognised_without_flags():
    t = open_table(need(DA_NANG))
    assert (t.encoding, t.delimiter, t.header_line) == ("utf-8", ",", 1)
    t = open_table(need(CAO_BANG))
    assert (t.encoding, t.delimiter) == ("utf-8-sig", ";")
    assert t.columns["sbd"] == 0 and "gdktpl" in t.columns and "cn_nong_nghiep" in t.columns


def test_windows_1258_is_decoded_and_normalised(tmp_path: Path):
    text = "STT\tSố báo danh\tToán\tNgữ văn\r\n1\t01000001\t7,5\t8\r\n"
    table = open_table(write(tmp_path / "f.csv", text, encoding="cp1258"))
    assert table.encoding == "cp1258" and table.delimiter == "\t"
    assert table.headers[1] == "Số báo danh"  # NFC again, whatever cp1258 decomposed
    assert table.ignored == ["STT"]
    lines, rows = next(table.chunks()).table()
    assert list(lines) == [2] and rows[0][1:] == ["01000001", "7,5", "8"]


def test_unknown_headers_refused_with_a_hint(tmp_path: Path):
    with pytest.raises(DialectError, match="--map"):
        open_table(write(tmp_path / "f.csv", "ma,diem1,diem2\n01000001,5,6\n"))


def test_map_names_any_header(tmp_path: Path):
    path = write(tmp_path / "f.csv", "Mã thí sinh,Điểm môn Toán\n01000001,5\n")
    table = open_table(path, parse_maps(["Mã thí sinh=sbd", "Điểm môn Toán=toan"]))
    assert table.columns == {"sbd": 0, "toan": 1}
    with pytest.raises(DialectError, match="khóa"):
        parse_maps(["X=diem_toan"])


def test_two_columns_for_one_key_refused(tmp_path: Path):
    with pytest.raises(DialectError, match="hai cột"):
        open_table(write(tmp_path / "f.csv", "SBD,Vật lí,Vật lý\n01000001,5,6\n"))


def test_empty_and_missing_files(tmp_path: Path):
    with pytest.raises(DialectError, match="rỗng"):
        open_table(write(tmp_path / "f.csv", ""))
    with pytest.raises(DialectError, match="không có tệp"):
        open_table(tmp_path / "missing.csv")


def test_chunks_never_cut_a_quoted_field(tmp_path: Path):
    rows = "".join(f'0100{i:04d},"{i % 10},5",\n' for i in range(1, 400))
    rows += '01009999,"7,25","ghi\nchú"\n'
    path = write(tmp_path / "f.csv", "sbd,toan,ghi chú\n" + rows)
    table = open_table(path)
    got = []
    for chunk in table.parts[0].chunks(chunk_bytes=64):
        got += list(zip(*chunk.table()))
    assert len(got) == 400
    assert got[-1] == (401, ["01009999", "7,25", "ghi\nchú"])
    assert got[0] == (2, ["01000001", "1,5", ""])


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


def test_a_stray_quote_stays_linear_and_a_never_closed_one_is_refused(tmp_path: Path):
    rows = "".join(f"0100{i:04d},5,a\"b\n" if i == 2 else f"0100{i:04d},5,x\n"
                   for i in range(1, 5000))
    table = open_table(write(tmp_path / "q.csv", "sbd,toan,ghi chu\n" + rows))
    chunks = list(table.parts[0].chunks(chunk_bytes=4096))
    assert len(chunks) > 10  # cut at every block, not carried to the end
    got = [r for c in chunks for r in zip(*c.table())]
    assert len(got) == 4999 and got[1] == (3, ["01000002", "5", 'a"b'])
    bad = write(tmp_path / "open.csv", 'sbd,toan,ghi chu\n01000001,5,"mở\n'
                + "01000002,5,x\n" * 200_000)
    with pytest.raises(DialectError, match=r"dòng 2: bản ghi dài quá 1 MB \(có dấu ngoặc kép"):
        list(open_table(bad).chunks())


def test_a_line_with_no_newline_and_a_huge_field_are_refused_with_their_line(tmp_path):
    long_line = tmp_path / "long.csv"
    with open(long_line, "wb") as fh:
        fh.write(b"sbd,toan\n01000001,5\n")
        fh.write(b"9" * (3 << 20))
    with pytest.raises(DialectError, match=r"dòng 3: bản ghi dài quá 1 MB \(không có dấu"):
        list(open_table(long_line).chunks())
    field = write(tmp_path / "field.csv", "sbd,toan,x\n01000001,5,y\n01000002,5,"
                  + "z" * 200_000 + "\n")
    with pytest.raises(DialectError, match=r"dòng 3: có ô dài quá 131072 ký tự"):
        for chunk in open_table(field).chunks():
            chunk.table()


def test_a_cp1258_line_among_utf8_lines_is_named(tmp_path: Path):
    path = tmp_path / "mixed.csv"
    path.write_bytes("SBD,Toán,Họ tên\n01000001,5,Lê Văn A\n".encode()
                     + to_cp1258("01000002,6,Trần Thị B\n")
                     + b"01000003,7,x\n")
    with pytest.raises(DialectError, match=r"mixed.csv: dòng 3: bảng mã khác với dòng 1"):
        open_table(path)
