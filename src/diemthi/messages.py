"""Everything a student or parent reads, in Vietnamese, in one place (API and chatbot)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

VIETNAM = timezone(timedelta(hours=7))


def when(moment: datetime) -> str:
    """'08:00 ngày 12/07/2026' in Vietnam time."""
    return moment.astimezone(VIETNAM).strftime("%H:%M ngày %d/%m/%Y")


INVALID_SBD = "Số báo danh phải gồm đúng 8 chữ số (ví dụ 01000123)."
INVALID_YEAR = "Năm thi không hợp lệ: cần 4 chữ số, ví dụ 2026."
NOT_READY = "Hệ thống đang nạp dữ liệu điểm thi, vui lòng thử lại sau ít phút."
RATE_LIMITED = "Bạn tra cứu quá nhanh, vui lòng thử lại sau giây lát."
NO_ROUTE = "Không có đường dẫn này."
METHOD_NOT_ALLOWED = "Phương thức này không được hỗ trợ."
INTERNAL = "Hệ thống đang bận, vui lòng thử lại sau."
BAD_REQUEST = "Yêu cầu không hợp lệ."
TOO_LARGE = "Nội dung gửi lên quá lớn."
FORBIDDEN = "Không được phép truy cập đường dẫn này từ địa chỉ của bạn."


def not_found(sbd: str, year: int) -> str:
    return (f"Không tìm thấy thí sinh có số báo danh {sbd} trong kỳ thi năm {year}. "
            "Vui lòng kiểm tra lại số báo danh trên giấy báo dự thi.")


def year_not_found(year: int) -> str:
    return f"Chưa có điểm thi năm {year}."


def not_published(release_at: datetime) -> str:
    return f"Điểm thi chưa được công bố. Điểm sẽ có từ {when(release_at)} (giờ Việt Nam)."


def province_not_found(code: str, year: int) -> str:
    return f"Không có số liệu của tỉnh mã {code} trong kỳ thi năm {year}."


def national_not_found(year: int) -> str:
    return f"Chưa có phổ điểm cả nước năm {year}."
