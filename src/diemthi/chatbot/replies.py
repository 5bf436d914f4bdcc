"""The chatbot's answers: Vietnamese, short enough for one chat bubble on a phone."""

from __future__ import annotations

from datetime import datetime

from ..formats import score as number
from ..formats import thousands as count
from ..formats import top_percent
from ..messages import NOT_READY, when
from ..reference import SUBJECTS

EXAMPLE = "08000123"

HELP = ("Chào bạn! Gửi số báo danh (8 chữ số) để tra điểm thi tốt nghiệp THPT, "
        f"ví dụ: {EXAMPLE}. Có thể gửi tới 3 số báo danh trong một tin nhắn.")
TOO_MANY = "Mỗi tin nhắn tra được tối đa 3 số báo danh; các số sau đã được bỏ qua."
BUSY = NOT_READY


RANKED_COMBINATIONS = 3  # lines in the found-reply, best share above first


def rank_lines(doc: dict) -> list[str]:
    """Up to three lines for the best combinations (province rank, top X% cả nước), and
    one for the subjects ranked in the national distribution, if any."""
    ranks = doc.get("ranks") or {}
    combos = doc.get("combinations") or {}
    best = sorted((code for code in combos if code in ranks),
                  key=lambda c: ranks[c]["nation"]["higher"] / ranks[c]["nation"]["of"])
    lines = []
    for code in best[:RANKED_COMBINATIONS]:
        nation, province = ranks[code]["nation"], ranks[code]["province"]
        line = (f"{code} {number(combos[code])}: hạng {count(province['higher'] + 1)}/"
                f"{count(province['of'])} trong tỉnh")
        if nation.get("source") == "national" or nation["of"] > province["of"]:
            line += f", {top_percent(nation)} cả nước"
        lines.append(line)
    national = [f"{SUBJECTS[key].name if key in SUBJECTS else key} {top_percent(r['nation'])}"
                for key, r in ranks.items()
                if key in doc["scores"] and r["nation"].get("source") == "national"]
    if national:
        lines.append("So với cả nước: " + ", ".join(national))
    return lines


def found(doc: dict) -> str:
    """A candidate's scores, foreign language, combination totals and where they stand."""
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
    lines += rank_lines(doc)
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
