"""The chatbot reads messages as students and parents write them (issue 18).

``CASES`` is the table: each message with the SBDs that must be answered, the numbers that
must never be looked up, and words the reply must hold. It runs twice: through
:func:`understand.read` alone, and through the real webhook of a real server whose
replies go to the loopback stand-in of Zalo, read back as the student would read them.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import httpx
import orjson
import pytest

from diemthi.app import create_app
from diemthi.chatbot import answers, replies, understand
from diemthi.importer import import_files
from diemthi.settings import load
from loadtests.zalo_standin import ZaloStandIn
from tests.chatbot_world import APP_ID, OA_SECRET, event, post
from tests.conftest import write
from tests.servers import LiveServer

OTHER_URL = "https://diemthi.example.vn/tinh-khac"
OWN_DIEM_CHUAN = "Điểm chuẩn của các trường: xem https://so.example.vn/diem-chuan"
SERVED = {"08", "48"}
NOTHING = ("<no reply>",)

# reply words, as the student reads them
S123 = "SBD 08000123 – Tỉnh Tuyên Quang – năm 2026"
S124, S125, S126 = "SBD 08000124 –", "SBD 08000125 –", "SBD 08000126 –"
HELP = "Gửi số báo danh (8 chữ số)"
PHUC_KHAO, LIEN_HE = "phúc khảo", "liên hệ"
TOT_NGHIEP, QUEN = "công nhận tốt nghiệp", "giấy báo dự thi"
CAM_ON = "Không có gì"
CCCD = "căn cước công dân"
LIET = "Điểm liệt: Toán 0,75"


@dataclass(frozen=True)
class Case:
    text: str
    sbds: str = ""  # answered (looked up), space separated
    never: str = ""  # numbers that must not be looked up
    words: tuple[str, ...] = ()
    read: str | None = None  # what read() finds, when a year makes the answer differ

    @property
    def answered(self) -> list[str]:
        return self.sbds.split()


def c(text: str, sbds: str = "", never: str = "", *words: str, read: str | None = None) -> Case:
    return Case(text, sbds, never, words, read)


CASES = [
    # plain SBDs, every spelling
    c("08000123", "08000123", "", S123, "Toán: 7,75"),
    c("SBD 08000123", "08000123", "", S123),
    c("sbd: 08000123", "08000123", "", S123),
    c("Sbd08000123", "08000123", "", S123),
    c("tra diem 08000123", "08000123", "", S123),
    c("Tra điểm: 08 000 123", "08000123", "", S123),
    c("08-000-123", "08000123", "", S123),
    c("08.000.123", "08000123", "", S123),
    c("0800 0123", "08000123", "", S123),
    c("08 000123", "08000123", "", S123),
    c("0 8 0 0 0 1 2 3", "08000123", "", S123),
    c("sbd 080 001 23", "08000123", "", S123),
    c("số ０８０００１２３ ạ", "08000123", "", S123),
    c("08\u00a0000\u00a0123", "08000123", "", S123),
    c("SBD\u00a008\u00a0000\u00a0123", "08000123", "", S123),
    c("08\u202f000\u202f123", "08000123", "", S123),
    c("08\u2009000\u2009123", "08000123", "", S123),
    c("08\u3000000\u3000123", "08000123", "", S123),
    c("0800\u200b0123", "08000123", "", S123),
    c("08 – 000 – 123", "08000123", "", S123),
    c("08‑000‑123", "08000123", "", S123),
    c("cho em xin điểm sbd 08000123 ạ", "08000123", "", S123),
    c("cho e hoi diem sbd 08000123 voi a", "08000123", "", S123),
    c("SBD của em là 08000123", "08000123", "", S123),
    c("so bao danh 08000123", "08000123", "", S123),
    c("em ơi tra giúp chị sbd 08000123 nhé", "08000123", "", S123),
    c("08000123.", "08000123", "", S123),
    c("(08000123)", "08000123", "", S123),
    c("sbd:08000123, cảm ơn", "08000123", "", S123, CAM_ON),
    c("08000123\n", "08000123", "", S123),
    c("\t08000123\t", "08000123", "", S123),
    c("SBD 08000123 08000123", "08000123", "", S123),
    c("08000124, 08999999 và 08000125", "08000124 08999999 08000125", "", S124, S125,
      "Không tìm thấy số báo danh 08999999"),
    c("08000123\n08000124", "08000123 08000124", "", S123, S124),
    c("48000001", "48000001", "", "SBD 48000001 – Thành phố Đà Nẵng"),
    c("08000123 - 08000124", "08000123 08000124", "", S123, S124),
    c("08 000 123 08 000 124", "08000123 08000124", "", S123, S124),
    c("sbd 08000123 va 08000124", "08000123 08000124", "", S123, S124),
    c("SBD 08 999 998", "08999998", "", "Không tìm thấy số báo danh 08999998"),
    c("Sbd:08.000.125 ạ", "08000125", "", S125),
    # dates are never SBDs
    c("12.07.2026", "", "12072026", HELP),
    c("12/07/2026", "", "12072026", HELP),
    c("ngày 12-07-2026 sbd 08000124", "08000124", "12072026", S124),
    c("em sinh ngày 15.03.2008 sbd 08000123", "08000123", "15032008", S123),
    c("ngày sinh 20-10-2008, SBD 08000124", "08000124", "20102008", S124),
    c("20-10-2008 08000125", "08000125", "20102008", S125),
    c("ns 15/03/2008 sbd 08 000 123", "08000123", "15032008", S123),
    c("ngày sinh 15032008", "", "15032008", HELP),
    c("ngay sinh: 15 03 2008, sbd 08000123", "08000123", "15032008", S123),
    c("sinh ngày 1/3/2008 số báo danh 08000126", "08000126", "01032008", S126),
    c("15.03.2008", "", "15032008", HELP),
    c("dob 20.10.2008 candidate 08000123", "08000123", "20102008", S123),
    c("ngày thi 26/6/2026 em sbd 48000001", "48000001", "26062026", "SBD 48000001"),
    c("em thi ngày 26-06-2026 sbd 48000001", "48000001", "26062026", "SBD 48000001"),
    c("15-03-08 08000123", "08000123", "15030808", S123),
    c("08000123 sn 20/10/2008", "08000123", "20102008", S123),
    c("20.10.2008 08.000.124", "08000124", "20102008", S124),
    c("12.07.2026 12/07/2026", "", "12072026", HELP),
    c("Ngày Sinh 01.01.2008 Sbd 08000125", "08000125", "01012008", S125),
    c("ngày sinh 15/3/2008 sđt 0905123456 sbd 08000123", "08000123", "15032008 09051234",
      S123),
    c("ngày sinh 12.05.2008", "", "12052008", HELP),
    c("ngày sinh 12052008 sbd 08000124", "08000124", "12052008", S124),
    # phone numbers are never SBDs
    c("0905123456", "", "09051234 05123456", HELP),
    c("sdt 0905 12 34 56 sbd 08000123", "08000123", "09051234", S123),
    c("0905.123.456 08000124", "08000124", "09051234", S124),
    c("0905-123-456 sbd 08000125", "08000125", "09051234", S125),
    c("+84 905 123 456 sbd 08000123", "08000123", "84905123", S123),
    c("+84905123456 08000123", "08000123", "84905123", S123),
    c("(+84) 905 123 456, sbd 08000124", "08000124", "84905123", S124),
    c("84905123456 sbd 08000125", "08000125", "84905123", S125),
    c("sđt mẹ em 0912 345 678, sbd 08 000 123", "08000123", "09123456", S123),
    c("0812 345 678", "", "08123456", HELP),
    c("08 1234 5678", "", "08123456 12345678", HELP),
    c("0812345678 08000123", "08000123", "08123456", S123),
    c("08000123 0912345678", "08000123", "09123456", S123),
    c("liên hệ 028 3822 1234 sbd 08000123", "08000123", "02838221", S123, LIEN_HE),
    c("0167 123 4567 sbd 08000124", "08000124", "01671234", S124),
    c("sdt 0987654321", "", "09876543", HELP),
    c("số điện thoại 0386 123 456", "", "03861234", HELP),
    c("0905 123 456 08 000 123", "08000123", "09051234", S123),
    c("08 000 123 0905 123 456", "08000123", "09051234", S123),
    c("zalo em 0357.123.456 sbd 48.000.001", "48000001", "03571234", "SBD 48000001"),
    c("gọi 0908 123 123 nhé, sbd 08000126", "08000126", "09081231", S126),
    # classes and years are not joined to the SBD
    c("lớp 12 08000123", "08000123", "12080001", S123),
    c("lop 12 08000123", "08000123", "12080001", S123),
    c("lớp 12 08 000 123", "08000123", "12080001", S123),
    c("12A1 08000123", "08000123", "12080001", S123),
    c("12a3 sbd 08000124", "08000124", "", S124),
    c("lớp 12a3 08000125", "08000125", "", S125),
    c("em học lớp 12A1 trường THPT Chuyên, sbd 08000123", "08000123", "", S123),
    c("12a3 08 000 123", "08000123", "30800012", S123),
    c("hs lop 12 a1 sbd 08000126", "08000126", "", S126),
    c("lop 11 08000123", "08000123", "11080001", S123),
    c("10a2 năm 2026 08000123", "08000123", "", S123),
    c("2026 08000123", "08000123", "20260800", S123),
    c("năm 2026 sbd 08000123", "08000123", "", S123),
    c("2026 08 000 123", "08000123", "20260800", S123),
    c("2026 0800 0123", "08000123", "20260800", S123),
    c("năm 2025 sbd 08000123", "08000123", "", "SBD 08000123 – Tỉnh Lào Cai – năm 2025",
      "Toán: 6"),
    c("2025 08000123", "08000123", "", "năm 2025"),
    c("năm 2024 sbd 08000123", "", "08000123", "chưa có điểm thi năm 2024", "2025, 2026",
      read="08000123"),
    c("diem thi 2023 sbd 08000124", "", "08000124", "chưa có điểm thi năm 2023",
      read="08000124"),
    c("khóa 2023-2026 sbd 08000124", "08000124", "20232026", S124),
    c("năm học 2025-2026 sbd 08000125", "08000125", "20252026", S125),
    c("sinh năm 2008 sbd 08000123", "08000123", "", S123),
    c("lớp 12, sinh năm 2008, sbd 08000124", "08000124", "", S124),
    # CCCD, 9 digits, 7 digits, O for 0, other provinces, no province
    c("001208012345", "", "00120801 12080123", CCCD, QUEN),
    c("cccd 079 208 012 345", "", "07920801", CCCD),
    c("CCCD: 048208012345 ạ", "", "04820801 48208012", CCCD),
    c("so cccd cua em 001208012345, sbd 08000123", "08000123", "00120801", S123, CCCD),
    c("038 308 012 345", "", "03830801", CCCD),
    c("cmnd 123456789", "", "12345678", "9 chữ số"),
    c("080001234", "", "08000123", "9 chữ số"),
    c("sbd 0800 01234", "", "08000123", "9 chữ số"),
    c("8000123", "08000123", "", "mình tra 08000123", S123),
    c("sbd 8000124", "08000124", "", "mình tra 08000124", S124),
    c("8 000 125", "08000125", "", "mình tra 08000125", S125),
    c("sbd 8000999", "08000999", "", "mình tra 08000999",
      "Không tìm thấy số báo danh 08000999"),
    c("0800012", "", "00800012", "7 chữ số"),
    c("5123456", "", "05123456", "7 chữ số"),
    c("O8000123", "", "08000123", "Có phải bạn muốn gửi số báo danh 08000123", "O8000123"),
    c("sbd o8000123", "", "08000123", "Có phải bạn muốn gửi số báo danh 08000123"),
    c("08OOO123", "", "08000123", "Có phải bạn muốn gửi số báo danh 08000123"),
    c("0800O123", "", "08000123", "Có phải bạn muốn gửi số báo danh 08000123"),
    c("SBD: O8 000 123", "", "08000123", "Có phải bạn muốn gửi số báo danh 08000123"),
    c("ở Đà Nẵng, sbd 48OOOOO1", "", "48000001", "Có phải bạn muốn gửi số báo danh 48000001"),
    c("01000001", "", "01000001", "Thành phố Hà Nội", OTHER_URL, "Tỉnh Tuyên Quang"),
    c("sbd 79001234", "", "79001234", "Thành phố Hồ Chí Minh", OTHER_URL),
    c("79 001 234", "", "79001234", "Thành phố Hồ Chí Minh"),
    c("01000001 08000123", "08000123", "01000001", S123, "Thành phố Hà Nội"),
    c("99000123", "", "99000123", "không phải mã tỉnh"),
    c("sbd 02000123", "", "02000123", "(02) không phải mã tỉnh"),
    c("sbd 63000123", "", "63000123", "không phải mã tỉnh"),
    c("1000001", "", "01000001", "Thành phố Hà Nội"),
    # questions
    c("điểm chuẩn ngành y bao nhiêu ạ", "", "", OWN_DIEM_CHUAN),
    c("diem chuan dh bach khoa", "", "", OWN_DIEM_CHUAN),
    c("Em được 24 điểm thì đỗ trường nào ạ", "", "", OWN_DIEM_CHUAN),
    c("cho e hỏi điểm chuẩn năm nay", "", "", OWN_DIEM_CHUAN),
    c("đậu đại học không ad", "", "", OWN_DIEM_CHUAN),
    c("xét tuyển nguyện vọng thế nào", "", "", OWN_DIEM_CHUAN),
    c("08000123 đỗ trường nào", "08000123", "", S123, OWN_DIEM_CHUAN),
    c("phúc khảo như thế nào ạ", "", "", PHUC_KHAO, LIEN_HE),
    c("phuc khao den bao gio", "", "", PHUC_KHAO, "10 ngày"),
    c("muốn phúc khảo môn toán thì làm sao", "", "", PHUC_KHAO),
    c("pk mon van o dau", "", "", PHUC_KHAO),
    c("điểm sai rồi", "", "", PHUC_KHAO),
    c("sai điểm ạ", "", "", PHUC_KHAO),
    c("không phải điểm của em", "", "", PHUC_KHAO),
    c("ko phai diem cua em", "", "", PHUC_KHAO),
    c("08000123 sai điểm rồi", "08000123", "", S123, PHUC_KHAO),
    c("sbd 08000124 điểm này không phải điểm của em", "08000124", "", S124, PHUC_KHAO),
    c("chấm lại được không", "", "", PHUC_KHAO),
    c("tốt nghiệp khi nào có", "", "", TOT_NGHIEP),
    c("điểm xét tốt nghiệp tính thế nào", "", "", TOT_NGHIEP, "Điểm xét tốt nghiệp"),
    c("em có đỗ tốt nghiệp không ạ sbd 08000126", "08000126", "", S126, LIET, TOT_NGHIEP),
    c("công nhận tốt nghiệp", "", "", TOT_NGHIEP),
    c("dxtn bao nhieu", "", "", TOT_NGHIEP),
    c("bao giờ có giấy chứng nhận tn", "", "", TOT_NGHIEP),
    c("quên sbd", "", "", QUEN, "trường THPT"),
    c("em quên số báo danh rồi", "", "", QUEN),
    c("ko nhớ sbd thì tra sao", "", "", QUEN),
    c("mất giấy báo dự thi", "", "", QUEN),
    c("sbd của em là gì vậy ạ", "", "", QUEN),
    c("cảm ơn ad", "", "", CAM_ON),
    c("cám ơn nhiều ạ", "", "", CAM_ON),
    c("thanks", "", "", CAM_ON),
    c("tks ad", "", "", CAM_ON),
    c("ok em cảm ơn", "", "", CAM_ON),
    c("ok", "", "", *NOTHING),
    c("oke", "", "", *NOTHING),
    c("Ok ạ", "", "", *NOTHING),
    c("👍", "", "", *NOTHING),
    c("/-strong", "", "", *NOTHING),
    c("dạ vâng ạ", "", "", *NOTHING),
    c("hotline của sở là gì", "", "", LIEN_HE),
    c("liên hệ ai ạ", "", "", LIEN_HE),
    c("xin chào", "", "", HELP),
    c("alo", "", "", HELP),
    c("hello", "", "", HELP),
    c("cho em hỏi", "", "", HELP),
    c("tra điểm", "", "", HELP),
    c("em muốn tra điểm thi", "", "", HELP),
    c("What is my score?", "", "", "candidate number"),
    c("How can I check my exam result", "", "", "candidate number"),
    c("my candidate number is 08000123", "08000123", "", S123),
    # asked subjects, combinations, điểm liệt
    c("08000126", "08000126", "", S126, LIET, "không được công nhận tốt nghiệp"),
    c("điểm lý 08000124", "08000124", "", S124, "Vật lí: không có điểm (không dự thi)"),
    c("sbd 08000124 điểm hóa với sinh", "08000124", "", "Hóa học: không có điểm",
      "Sinh học: không có điểm"),
    c("điểm anh 08000125", "08000125", "", "Ngoại ngữ: không có điểm (không dự thi)"),
    c("khối D01 08000124", "08000124", "",
      "Tổ hợp D01: chưa tính được vì không có điểm Ngoại ngữ"),
    c("khoi d1 48000001", "48000001", "", "Tổ hợp D01: chưa tính được",
      "không ghi bạn thi ngoại ngữ nào"),
    c("tổ hợp D01 48000002", "48000002", "", "cần Tiếng Anh, bạn thi Tiếng Pháp"),
    c("khối A 08000123", "08000123", "", "A00 25,25"),
    c("a00 08000124", "08000124", "",
      "Tổ hợp A00: chưa tính được vì không có điểm Vật lí, Hóa học"),
    c("điểm toán 08000123", "08000123", "", "Toán: 7,75"),
    c("D07 sbd 08000123", "08000123", "", "D07 24,5"),
    c("môn địa 08000124", "08000124", "", "Địa lí: không có điểm"),
    c("khối C00 sbd 08000124", "08000124", "", "không có điểm Lịch sử, Địa lí"),
    c("điểm thi của thí sinh 08000123", "08000123", "", S123),
    # more SBDs than the limit: the rest are named
    c("08000123 08000124 08000125 08000126", "08000123 08000124 08000125", "08000126",
      "chưa tra: 08000126"),
    c("08000123, 08000124, 08000125, 48000001, 48000002", "08000123 08000124 08000125",
      "48000001 48000002", "chưa tra: 48000001, 48000002"),
]


def test_the_table_is_big_enough():
    assert len(CASES) >= 150
    assert len({case.text for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.text[:40])
def test_read(case: Case):
    reading = understand.read(case.text, served=SERVED)
    expected = case.read.split() if case.read is not None else case.answered
    assert reading.sbds == expected
    if case.read is None:  # a year not served: read, but not looked up (the webhook test)
        for number in case.never.split():
            assert number not in reading.sbds


def test_read_finds_what_the_numbers_are():
    r = understand.read("ngày sinh 15.03.2008, sđt 0905 123 456, lớp 12A1, năm 2026, "
                        "cccd 001208012345, sbd 08000123")
    assert (r.dates, r.phones, r.classes, r.years, r.cccd, r.sbds) == (
        ["15.03.2008"], ["0905123456"], ["12A1"], [2026], ["001208012345"], ["08000123"])


def test_read_limit_and_order():
    r = understand.read("48000002 08000001 48000003 08000004", max_sbds=2)
    assert r.sbds == ["48000002", "08000001"] and r.skipped == ["48000003", "08000004"]
    assert understand.read("08000001 08000002", max_sbds=1).skipped == ["08000002"]


# -- replies ------------------------------------------------------------------------------

DOC = {"sbd": "08000126", "year": 2026, "province": {"code": "08", "name": "Tỉnh Tuyên Quang"},
       "scores": {"toan": 1.0, "ngu_van": 6.0}, "combinations": {}}


def test_scores_mark_liet_and_statuses():
    text = replies.scores({**DOC, "statuses": {"ngoai_ngu": "exempt", "vat_li": "absent",
                                              "hoa_hoc": "suspended", "sinh_hoc": "cancelled"}},
                          ["ngoai_ngu", "vat_li", "hoa_hoc", "sinh_hoc", "lich_su", "toan"])
    assert "⚠ Điểm liệt: Toán 1." in text
    assert "• Ngoại ngữ: miễn thi" in text and "• Vật lí: vắng thi" in text
    assert "• Hóa học: đình chỉ thi" in text and "• Sinh học: hủy bài thi" in text
    assert text.count("miễn thi") == 1  # a status said once, asked about or not
    assert "• Lịch sử: không có điểm (không dự thi)" in text
    assert text.count("Toán") == 2  # the score line and the điểm liệt line, nothing more
    fine = replies.scores({**DOC, "scores": {"toan": 1.25}})
    assert "liệt" not in fine


def test_choose_year_never_gives_another_years_data():
    assert replies.choose_year([], [2025, 2026], 2026) == 2026
    assert replies.choose_year([], [2025, 2026], 2025) == 2025  # DIEMTHI_YEAR=2025
    assert replies.choose_year([], [2025, 2026], 2027) is None  # current, not served
    assert replies.choose_year([], [2025, 2026], None) is None
    assert replies.choose_year([2025], [2025, 2026], 2026) == 2025
    assert replies.choose_year([2024], [2025, 2026], 2026) is None
    assert replies.choose_year([2023, 2026], [2025, 2026], 2025) == 2026
    assert replies.choose_year([], [], None) is None


def test_events_and_the_media_memory():
    settings = load({}, environ={})
    recent = replies.Recent(seconds=600)
    assert replies.for_event("user_send_image", "u1", recent, settings) == [replies.MEDIA]
    assert replies.for_event("user_send_audio", "u1", recent, settings) == []
    assert replies.for_event("user_send_file", "u2", recent, settings) == [replies.MEDIA]
    assert replies.for_event("user_send_sticker", "u3", recent, settings) == []
    assert replies.for_event("follow", "u1", recent, settings) == [replies.welcome(3)]
    expiring = replies.Recent(seconds=0.05)
    assert expiring.first("u1") and not expiring.first("u1")
    deadline = time.monotonic() + 5
    while not expiring.first("u1"):  # the memory forgets after its window
        assert time.monotonic() < deadline
        time.sleep(0.01)


# -- answers and settings -----------------------------------------------------------------

def test_answers_defaults_and_override(tmp_path):
    shipped = answers.load(None)
    assert set(shipped) == set(answers.KEYS) and all(v.strip() for v in shipped.values())
    own = write(tmp_path / "a.toml", 'cam_on = "Sở chúc bạn may mắn! https://so.example.vn"\n')
    loaded = answers.load(own)
    assert loaded["cam_on"] == "Sở chúc bạn may mắn! https://so.example.vn"
    assert loaded["phuc_khao"] == shipped["phuc_khao"]
    bad = write(tmp_path / "b.toml", 'cam_onn = "typo"\n')
    with pytest.raises(answers.AnswersError, match="cam_onn"):
        answers.load(bad)
    with pytest.raises(answers.AnswersError, match="b.toml"):
        answers.load(write(tmp_path / "b.toml", "cam_on = 3\n"))
    with pytest.raises(answers.AnswersError):
        answers.load(tmp_path / "missing.toml")


def test_serve_refuses_a_bad_answers_file(tmp_path, data_dir, monkeypatch):
    from click.testing import CliRunner

    from diemthi.cli import cli

    bad = write(tmp_path / "answers.toml", 'diem_chuann = "typo"\n')
    for name, value in {"APP_ID": "1", "OA_SECRET_KEY": "k"}.items():
        monkeypatch.setenv(f"DIEMTHI_ZALO_{name}", value)
    monkeypatch.setenv("DIEMTHI_CHATBOT_ANSWERS", str(bad))
    result = CliRunner().invoke(cli, ["serve", "--data-dir", str(data_dir)])
    assert result.exit_code == 2 and "diem_chuann" in result.output


def test_settings_from_environment(tmp_path):
    s = load(environ={"DIEMTHI_CHATBOT_ANSWERS": str(tmp_path / "a.toml"),
                      "DIEMTHI_CHATBOT_OTHER_PROVINCES_URL": OTHER_URL,
                      "DIEMTHI_CHATBOT_MAX_SBDS": "5"})
    assert (s.chatbot_answers, s.chatbot_other_provinces_url, s.chatbot_max_sbds) == (
        tmp_path / "a.toml", OTHER_URL, 5)
    assert load(environ={}).chatbot_max_sbds == 3
    with pytest.raises(ValueError):
        load(environ={"DIEMTHI_CHATBOT_MAX_SBDS": "0"})


# -- the table through the real webhook ---------------------------------------------------

@contextlib.contextmanager
def world(root: Path, **extra: str) -> Iterator[tuple[ZaloStandIn, httpx.Client]]:
    """A real server on loopback (2025 and 2026 served, provinces 08 and 48 in 2026)
    answering through its outbox into a real stand-in of Zalo, one send at a time so
    replies keep their order."""
    data_dir = root / "data"
    data_dir.mkdir()
    head = "sbd,toan,ngu_van,ngoai_ngu,vat_li,hoa_hoc,lich_su,dia_li,ma_ngoai_ngu\n"
    import_files(data_dir, 2026, [
        write(root / "a.csv", head + "08000123,7.75,6.5,8.25,9,8.5,,,N1\n"
                                     "08000124,5,6,,,,,,\n08000125,4,4.5,,,,,,\n"
                                     "08000126,0.75,6,,,,5,7,\n48000002,6,5,7,,,,,N3\n"),
        write(root / "b.csv", "sbd,toan,ngu_van,ngoai_ngu\n48000001,8,7,9\n")],
        activate=True)
    import_files(data_dir, 2025, [write(root / "c.csv", "sbd,toan,ngu_van\n08000123,6,7\n")],
                 activate=True)
    own = write(root / "answers.toml", f'diem_chuan = "{OWN_DIEM_CHUAN}"\n')
    zalo = ZaloStandIn(lenient=False)  # as strict as Zalo: only threads it knows of
    with LiveServer(zalo.app()) as zalo_url:
        settings = load({"data_dir": str(data_dir), "zalo_app_id": APP_ID,
                         "zalo_oa_secret_key": OA_SECRET, "zalo_access_token": "a",
                         "zalo_refresh_token": "r", "zalo_app_secret": "s",
                         "zalo_api_base": zalo_url, "zalo_oauth_base": zalo_url,
                         "zalo_concurrency": "1", "zalo_send_rate": "2000",
                         "chatbot_answers": str(own),
                         "chatbot_other_provinces_url": OTHER_URL, **extra}, environ={})
        with LiveServer(create_app(settings)) as url, httpx.Client(base_url=url) as client:
            yield zalo, client


@pytest.fixture(scope="module")
def chatbot(tmp_path_factory):
    with world(tmp_path_factory.mktemp("understand")) as both:
        yield both


def converse(zalo: ZaloStandIn, client: httpx.Client,
             events: list[tuple[str, str, str]]) -> dict[str, list[str]]:
    """Send (user, text, event name) events as Zalo would, then one last message; once its
    answer is back every earlier one is too (one send at a time, in order). Replies
    grouped by user."""
    end = f"end-{uuid.uuid4().hex}"
    for user, text, name in [*events, (end, "08000123", "user_send_text")]:
        if name == "follow":  # no message: Zalo knows the user just interacted
            zalo.last_seen[user] = time.time()
            stamp = str(int(time.time() * 1000))
            body = orjson.dumps({"app_id": APP_ID, "event_name": "follow", "timestamp": stamp,
                                 "oa_id": "oa-1", "follower": {"id": user},
                                 "source": "oa_profile"})
            response = post(client, body)
        else:
            msg_id = uuid.uuid4().hex
            zalo.user_wrote(user, msg_id)
            response = post(client, event(text, msg_id, name=name, user=user))
        assert response.status_code == 200
    deadline = time.monotonic() + 120
    while not any(sent["user_id"] == end for sent in zalo.sent):
        assert time.monotonic() < deadline, "the last message was never answered"
        time.sleep(0.02)
    out: dict[str, list[str]] = {}
    for sent in zalo.sent:
        out.setdefault(sent["user_id"], []).append(sent["text"])
    return out


def answered(texts: list[str]) -> list[str]:
    """The SBDs a student sees answered: a score header or a 'not found'."""
    joined = "\n".join(texts)
    return (re.findall(r"^SBD (\d{8}) –", joined, re.M)
            + re.findall(r"Không tìm thấy số báo danh (\d{8})", joined))


def test_the_table_through_the_webhook(chatbot):
    zalo, client = chatbot
    users = {f"t{i}-{uuid.uuid4().hex[:6]}": case for i, case in enumerate(CASES)}
    got = converse(zalo, client, [(user, case.text, "user_send_text")
                                  for user, case in users.items()])
    failures = []
    for user, case in users.items():
        texts = got.get(user, [])
        joined = "\n".join(texts)
        problems = []
        if sorted(set(answered(texts))) != sorted(case.answered):
            problems.append(f"answered {answered(texts)}, expected {case.answered}")
        problems += [f"looked up {n}" for n in case.never.split() if n in answered(texts)]
        if case.words == NOTHING:
            if texts:
                problems.append("expected no reply")
        else:
            problems += [f"missing {w!r}" for w in case.words if w not in joined]
            if not texts:
                problems.append("no reply at all")
        if problems:
            failures.append(f"{case.text!r}: {'; '.join(problems)}\n    reply: {joined!r}")
    assert not failures, "\n".join(failures)


def test_a_question_with_an_sbd_follows_the_scores_in_the_same_bubble(chatbot):
    zalo, client = chatbot
    got = converse(zalo, client, [("q1", "08000123 sai điểm rồi", "user_send_text"),
                                  ("q2", "08000123 08000124 cảm ơn ad", "user_send_text")])
    (bubble,) = got["q1"]
    assert bubble.startswith(S123) and PHUC_KHAO in bubble and LIEN_HE in bubble
    first, second = got["q2"]
    assert first.startswith(S123) and CAM_ON not in first
    assert second.startswith(S124) and CAM_ON in second


def test_media_stickers_and_follow(chatbot):
    zalo, client = chatbot
    got = converse(zalo, client, [
        ("m1", "", "user_send_image"), ("m1", "", "user_send_image"),
        ("m1", "", "user_send_audio"), ("m2", "", "user_send_video"),
        ("m3", "", "user_send_file"), ("m4", "", "user_send_sticker"),
        ("m5", "", "follow"), ("m6", "What is my score?", "user_send_text")])
    assert got["m1"] == [replies.MEDIA]  # once per user per 10 minutes
    assert got["m2"] == [replies.MEDIA] and got["m3"] == [replies.MEDIA]
    assert "m4" not in got
    (welcome,) = got["m5"]
    assert "Chào mừng" in welcome and "08000123" in welcome
    assert got["m6"] == [replies.english_help(3)]


def test_questions_are_answered_under_embargo(tmp_path):
    later = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    with world(tmp_path, release_at=later) as (zalo, client):
        got = converse(zalo, client, [("e1", "phúc khảo thế nào ạ", "user_send_text"),
                                      ("e2", "cho em hỏi điểm", "user_send_text"),
                                      ("e3", "ok", "user_send_text"),
                                      ("e4", "sbd 08000124", "user_send_text")])
    assert PHUC_KHAO in got["e1"][0] and "chưa được công bố" not in got["e1"][0]
    assert got["e2"][0].startswith("Điểm thi chưa được công bố")
    assert "e3" not in got
    assert got["e4"][0].startswith("Đã ghi nhận số báo danh 08000124")
