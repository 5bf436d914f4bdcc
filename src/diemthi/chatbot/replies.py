"""The chatbot's answers: Vietnamese, short enough for one chat bubble on a phone.

:func:`for_reading` turns what :mod:`.understand` read in a message (and the bodies the
lookup gave for its SBDs) into the bubbles to send; :func:`for_event` does the same for
the events that carry no text (a photo, a voice message, a follow).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable, Collection, Mapping

from cachetools import TTLCache

from ..formats import score as number
from ..formats import thousands as count
from ..formats import top_percent
from ..messages import NOT_READY, when
from ..reference import COMBINATIONS, LANGUAGES, SUBJECTS, provinces
from ..sbd import province_code
from ..statuses import NAMES_VI as STATUS_NAMES
from .understand import Reading

if TYPE_CHECKING:
    from datetime import datetime

    from ..lookup import Served
    from ..settings import Settings

EXAMPLE = "08000123"
BUSY = NOT_READY
LIET = 1.0  # a score at or below this is điểm liệt


def help_text(max_sbds: int = 3) -> str:
    return ("Chào bạn! Gửi số báo danh (8 chữ số) để tra điểm thi tốt nghiệp THPT, "
            f"ví dụ: {EXAMPLE}. Có thể gửi tới {max_sbds} số báo danh trong một tin nhắn.")


HELP = help_text()


def welcome(max_sbds: int = 3) -> str:
    return ("Chào mừng bạn đến với kênh tra cứu điểm thi tốt nghiệp THPT! Cách dùng: nhắn số "
            f"báo danh 8 chữ số in trên giấy báo dự thi, ví dụ {EXAMPLE} (tối đa {max_sbds} số "
            "mỗi tin nhắn), mình trả điểm ngay. Bạn cũng có thể hỏi về điểm chuẩn, phúc khảo, "
            "công nhận tốt nghiệp, hoặc khi quên số báo danh.")


def english_help(max_sbds: int = 3) -> str:
    return ("Hello! To see your national high-school exam scores, send your 8-digit candidate "
            f"number (số báo danh, printed on your exam admission slip), e.g. {EXAMPLE}. Up to "
            f"{max_sbds} numbers per message.")


MEDIA = ("Mình chưa đọc được ảnh, ghi âm, video hay tệp. Bạn gõ số báo danh 8 chữ số (in trên "
         f"giấy báo dự thi) để tra điểm nhé, ví dụ: {EXAMPLE}.")
MEDIA_EVENTS = frozenset({"user_send_image", "user_send_audio", "user_send_video",
                          "user_send_file"})
ABSENT = "không có điểm (không dự thi)"


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


def _subject_name(key: str) -> str:
    return SUBJECTS[key].name if key in SUBJECTS else key


def found(doc: dict) -> str:
    """A candidate's scores, foreign language, combination totals and where they stand."""
    lines = [f"SBD {doc['sbd']} – {doc['province']['name']} – năm {doc['year']}"]
    language = doc.get("foreign_language")
    for key, value in doc["scores"].items():
        name = SUBJECTS[key].name if key in SUBJECTS else key
        if key == "ngoai_ngu" and language:
            name = f"{name} ({language['name']})"
        lines.append(f"• {name}: {number(value)}")
    for key, status in (doc.get("statuses") or {}).items():  # never a score
        lines.append(f"• {SUBJECTS[key].name if key in SUBJECTS else key}: "
                     f"{STATUS_NAMES.get(status, status)}")
    if language and "ngoai_ngu" not in doc["scores"]:
        lines.append(f"• Ngoại ngữ đăng ký: {language['name']}")
    if doc.get("updated_after_appeal"):
        lines.append("(Điểm đã cập nhật sau phúc khảo.)")
    combos = doc.get("combinations") or {}
    if combos:
        lines.append("Tổ hợp: " + ", ".join(f"{code} {number(total)}"
                                            for code, total in combos.items()))
    lines += rank_lines(doc)
    return "\n".join(lines)


def scores(doc: dict, subjects: Collection[str] = (), combinations: Collection[str] = ()) -> str:
    """:func:`found`, then what the student must not miss: điểm liệt, and the subjects and
    combinations they asked about that the scores do not show."""
    lines = [found(doc)]
    failing = [f"{_subject_name(k)} {number(v)}" for k, v in doc["scores"].items() if v <= LIET]
    if failing:
        lines.append(f"⚠ Điểm liệt: {', '.join(failing)}. Bài thi từ 1,0 điểm trở xuống là "
                     "điểm liệt: thí sinh không được công nhận tốt nghiệp THPT.")
    statuses = doc.get("statuses") or {}
    for key in subjects:  # a status is already in found()'s lines
        if key not in doc["scores"] and key not in statuses:
            lines.append(f"• {_subject_name(key)}: {ABSENT}")
    for code in combinations:
        if code not in (doc.get("combinations") or {}):
            lines.append(f"Tổ hợp {code}: chưa tính được vì {_why_not(doc, code)}.")
    return "\n".join(lines)


def _why_not(doc: dict, code: str) -> str:
    combo = COMBINATIONS[code]
    missing = [_subject_name(k) for k in combo.subjects if k not in doc["scores"]]
    if missing:
        return "không có điểm " + ", ".join(missing)
    need = LANGUAGES.get(combo.language or "", "")
    language = doc.get("foreign_language")
    if need and not language:
        return (f"tổ hợp này cần Ngoại ngữ là {need}, mà dữ liệu điểm không ghi bạn thi "
                "ngoại ngữ nào")
    if need and language:
        return f"tổ hợp này cần {need}, bạn thi {language['name']}"
    return "dữ liệu điểm chưa có tổng này"


def not_found(sbd: str, year: int) -> str:
    return (f"Không tìm thấy số báo danh {sbd} trong kỳ thi năm {year}. Bạn kiểm tra lại "
            "8 chữ số trên giấy báo dự thi (2 số đầu là mã tỉnh) rồi gửi lại nhé.")


def wrong_length(digits: str) -> str:
    return (f"Số báo danh gồm đúng 8 chữ số; bạn đã gửi {len(digits)} chữ số ({digits}). "
            f"Ví dụ: {EXAMPLE}.")


def padded(sbd: str, typed: str) -> str:
    return f"Bạn gửi {typed} (7 chữ số); số báo danh có 8 chữ số nên mình tra {sbd}:"


def meant(typed: str, digits: str) -> str:
    return (f"Có phải bạn muốn gửi số báo danh {digits}? Trong “{typed}” có chữ O thay cho "
            f"số 0. Bạn gửi lại {digits} (chỉ gồm chữ số) để tra điểm nhé.")


def elsewhere(sbds: list[str], served: Collection[str] | None, url: str) -> str:
    names = provinces(2026)
    lines = [f"Số báo danh {sbd} là của thí sinh {names[province_code(sbd)]} "
             f"(mã tỉnh {province_code(sbd)})." for sbd in sbds]
    if served:
        lines.append("Kênh này chỉ có điểm thí sinh dự thi tại "
                     + ", ".join(names[c] for c in sorted(served) if c in names) + ".")
    lines.append(f"Bạn tra điểm tại: {url}" if url else
                 "Bạn tra trên trang tra cứu điểm của Sở GD&ĐT tỉnh đó hoặc của Bộ GD&ĐT nhé.")
    return "\n".join(lines)


def unknown_code(sbd: str) -> str:
    return (f"{sbd} không phải số báo danh: 2 số đầu ({province_code(sbd)}) không phải mã tỉnh "
            "nào. Bạn xem lại 8 chữ số trên giấy báo dự thi nhé.")


CCCD = ("Số 12 chữ số bạn gửi là số căn cước công dân (CCCD), không dùng để tra điểm. Số báo "
        "danh gồm 8 chữ số, in trên giấy báo dự thi; nếu không nhớ, bạn hỏi trường THPT "
        "hoặc nơi đăng ký dự thi.")


def skipped(sbds: list[str], max_sbds: int) -> str:
    return (f"Mỗi tin nhắn tra tối đa {max_sbds} số báo danh nên mình chưa tra: "
            f"{', '.join(sbds)}. Bạn gửi các số này trong tin nhắn khác nhé.")


def year_not_served(asked: Collection[int], served: Collection[int],
                    current: int | None = None) -> str:
    """``current``: the year answered without one; "or without a year" only when served."""
    have = ", ".join(map(str, sorted(served)))
    if current in served:
        again = f"kèm năm {current} (hoặc không ghi năm)"
    else:
        again = f"kèm năm {max(served, default='')}"
    return (f"Kênh này chưa có điểm thi năm {', '.join(map(str, sorted(asked)))}; hiện tra "
            f"được điểm năm {have}. Bạn gửi lại số báo danh {again} nhé." if served else BUSY)


def not_published(release_at: "datetime") -> str:
    return (f"Điểm thi chưa được công bố. Điểm sẽ có từ {when(release_at)} (giờ Việt Nam), "
            "bạn quay lại tra cứu sau nhé!")


# -- registration before the release, the push and the phúc khảo notice (#8) ---------

def registered(sbds: list[str], release: datetime) -> str:
    listed = ", ".join(sbds)
    return (f"Đã ghi nhận số báo danh {listed}. Điểm thi chưa được công bố; điểm sẽ có từ "
            f"{when(release)} (giờ Việt Nam) và hệ thống sẽ tự động nhắn điểm cho bạn "
            "ngay khi công bố.")


PUSH_INTRO = "Điểm thi đã được công bố!"


def changed(sbd: str, year: int, changes: list[tuple[str, str, str]]) -> str:
    """The phúc khảo notice: each changed subject, old → new."""
    lines = [f"Điểm thi năm {year} của SBD {sbd} đã được cập nhật sau phúc khảo:"]
    for key, old, new in changes:
        name = SUBJECTS[key].name if key in SUBJECTS else key
        before, after = (STATUS_NAMES.get(v) or v.replace(".", ",") if v else "—"
                         for v in (old, new))
        lines.append(f"• {name}: {before} → {after}")
    return "\n".join(lines)


def link(url: str) -> str:
    return f"Xem chi tiết: {url}"


# -- choosing what to say -----------------------------------------------------------------

def served_provinces(served: Mapping[int, "Served"], year: int | None
                     ) -> frozenset[str] | None:
    """The province codes with candidates in ``year``, the year answered without one
    (None: unknown, so every 2026 province counts as served)."""
    found = served.get(year) if year is not None else None
    return (found.provinces or None) if found is not None else None


def choose_year(asked: Collection[int], served: Collection[int],
                current: int | None) -> int | None:
    """The newest served year the message names; when it names none, ``current``, the
    year the API answers without ``?year=`` (``Lookup.current_year``); None when that
    year is not served or the message names only years that are not (never another
    year's data)."""
    named = [y for y in asked if y in served]
    if named:
        return max(named)
    if asked or current not in served:
        return None
    return current


def for_reading(reading: Reading, docs: Mapping[str, dict | None], year: int | None,
                served: Mapping[int, "Served"], answers: Mapping[str, str],
                settings: "Settings", link: Callable[[str], str] = lambda sbd: "",
                current: int | None = None) -> list[str]:
    """The bubbles answering one message, in order: scores (each with its ``link`` line,
    and a question asked with them following in the same bubble), near misses, skipped
    SBDs, then the Sở's answers. ``docs``: the candidates of ``reading.sbds`` in ``year``;
    ``current``: the year answered without one (see :func:`choose_year`)."""
    out: list[str] = []
    if reading.sbds:
        if year is None:
            out.append(year_not_served(reading.years, served, current) if reading.years
                       else BUSY)
        else:
            for sbd in reading.sbds:
                doc = docs.get(sbd)
                text = (scores(doc, reading.subjects, reading.combinations) if doc
                        else not_found(sbd, year))
                text += f"\n{link(sbd)}" if doc and link(sbd) else ""
                out.append(padded(sbd, reading.padded[sbd]) + "\n" + text
                           if sbd in reading.padded else text)
    with_scores = len(out)
    if reading.elsewhere:
        out.append(elsewhere(reading.elsewhere, served_provinces(served, current),
                             settings.chatbot_other_provinces_url))
    out += [unknown_code(sbd) for sbd in reading.unknown_code]
    out += [meant(typed, digits) for typed, digits in reading.meant]
    out += [CCCD] if reading.cccd else []
    out += [wrong_length(d) for d in reading.wrong_length[:1]]
    if reading.skipped:
        out.append(skipped(reading.skipped, settings.chatbot_max_sbds))
    keys = list(reading.intents)
    if {"phuc_khao", "quen_sbd"} & set(keys) and "lien_he" not in keys:
        keys.append("lien_he")  # these end at the Sở's desk: say how to reach it
    said = "\n\n".join(answers[k] for k in keys)
    if said and with_scores:
        out[with_scores - 1] += "\n\n" + said
    elif said:
        out.append(said)
    if out or reading.ack:
        return out
    return [english_help(settings.chatbot_max_sbds) if reading.english
            else help_text(settings.chatbot_max_sbds)]


class Recent:
    """Users answered lately, so a burst of photos gets one reply: at most once per user
    per ``seconds``. In memory, per process: a second reply after a restart is harmless."""

    def __init__(self, seconds: float = 600.0, size: int = 100_000):
        self.users: TTLCache = TTLCache(maxsize=size, ttl=seconds, timer=time.monotonic)

    def first(self, user_id: str) -> bool:
        if user_id in self.users:
            return False
        self.users[user_id] = True
        return True


def for_event(event: str, user_id: str, recent: Recent, settings: "Settings") -> list[str]:
    """The bubbles for an event without text: a welcome on follow, one nudge to type the
    SBD for photos, voice, video and files; nothing for stickers and the rest."""
    if event == "follow":
        return [welcome(settings.chatbot_max_sbds)]
    if event in MEDIA_EVENTS and recent.first(user_id):
        return [MEDIA]
    return []
