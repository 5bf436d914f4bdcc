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
    for size in (1_100_000, 2_000_000):  # a whole line over 1 MB, ending in the next block
        cells = write(tmp_path / f"wide-{size}.csv", "sbd,toan\n01000001,5\n"
                      + "5," * (size // 2) + "\n01000002,6\n")
        with pytest.raises(DialectError, match=r"dòng 3: bản ghi dài quá 1 MB \(không có dấu"):
            list(open_table(cells).chunks())
    # quoted fields with newlines in them: one record of 1.2 MB over many lines
    quoted = write(tmp_path / "quoted.csv", "sbd,toan,ghi chu\n" + "01000001,5,x\n" * 45_000
                   + '01000002,5,"' + "dòng\n" * 200_000 + '"\n01000003,6,y\n')
    with pytest.raises(DialectError, match=r"dòng 45002: bản ghi dài quá 1 MB \(có dấu ngoặc"):
        list(open_table(quoted).chunks())
    many = write(tmp_path / "many.csv", "sbd,toan,ghi chu\n"
                 + '01000001,5,"a\nb"\n' * 100_000)  # short quoted records, many blocks
    assert sum(c.data.count(b"\n") for c in open_table(many).chunks()) == 200_000
    fits = write(tmp_path / "fits.csv", "sbd,toan\n" + "01000001,5\n" * 200_000)
    assert sum(len(c.data) for c in open_table(fits).chunks()) > 2 << 20  # many blocks
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
