"""The chatbot's answers: Vietnamese, short enough for one chat bubble on a phone."""

from __future__ import annotations

from datetime import datetime

from ..formats import score as number
from ..messages import NOT_READY, when
from ..reference import SUBJECTS

EXAMPLE = "08000123"

HELP = ("Chào bạn! Gửi số báo danh (8 chữ số) để tra điểm thi tốt nghiệp THPT, "
        f"ví dụ: {EXAMPLE}. Có thể gửi tới 3 số báo danh trong một tin nhắn.")
TOO_MANY = "Mỗi tin nhắn tra được tối đa 3 số báo danh; các số sau đã được bỏ qua."
BUSY = NOT_READY


def found(doc: dict) -> str:
    """A candidate's scores, foreign language and combination totals."""
    lines = [f"SBD {doc['sbd']} – {doc['province']['name']} – năm {doc['year']}"]
    language = doc.get("foreign_language")
    for key, value in doc["scores"].items():
        name = SUBJECTS[key].name if key in SUBJECTS else key
        if key == "ngoai_ngu" and language:
            name = f"{name} ({language['name']})"
        lines.append(f"• {name}: {number(value)}")
    if language and "ngoai_ngu" not in doc["scores"]:
        lines.append(f"• Ngoại ngữ đăng ký: {language['name']}")
    combos = doc.get("combinations") or {}
    if combos:
        lines.append("Tổ hợp: " + ", ".join(f"{code} {number(total)}"
                                            for code, total in combos.items()))
    return "\n".join(lines)


def not_found(sbd: str, year: int) -> str:
    return (f"Không tìm thấy số báo danh {sbd} trong kỳ thi năm {year}. Bạn kiểm tra lại "
            "8 chữ số trên giấy báo dự thi (2 số đầu là mã tỉnh) rồi gửi lại nhé.")


def wrong_length(digits: str) -> str:
    return (f"Số báo danh gồm đúng 8 chữ số; bạn đã gửi {len(digits)} chữ số ({digits}). "
            f"Ví dụ: {EXAMPLE}.")


def not_published(release_at: datetime) -> str:
    return (f"Điểm thi chưa được công bố. Điểm sẽ có từ {when(release_at)} (giờ Việt Nam), "
            "bạn quay lại tra cứu sau nhé!")
