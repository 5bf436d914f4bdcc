import unicodedata

import pytest

from diemthi.statuses import status_of


@pytest.mark.parametrize("cell,status", [
    ("Miễn", "exempt"), ("MIỄN", "exempt"), ("mien", "exempt"), ("MT", "exempt"),
    ("Vắng", "absent"), ("vang", "absent"), ("V", "absent"), ("v", "absent"),
    ("Đình chỉ", "suspended"), ("ĐC", "suspended"), ("dc", "suspended"),
    ("Hủy", "cancelled"), ("Huỷ", "cancelled"), ("HUY", "cancelled"),
    (unicodedata.normalize("NFD", "Vắng"), "absent"),
    ("Vắng mặt lý do khác", None), ("abc", None), ("7", None), ("", None), ("X", None),
])
def test_status_marks_case_and_accent_insensitive(cell, status):
    assert status_of(cell) == status
