"""What a student or parent wrote: SBDs, the numbers that only look like one, and questions.

People write "SBD 08 000 123", "0905.123.456 sdt bo em", "ngày sinh 15.03.2008",
"lớp 12a3 08000123", "năm 2025 sbd O8000123", "cho e hoi diem chuan". The text is read
in three steps, each on a copy of it with the same length (NFKC, lower case, no
diacritics, every kind of space a plain space):

1. spans that are certainly not SBDs are masked first: dates (d/m/y with ``/ . -``,
   digits alone after "ngày sinh"), classes ("lớp 12", "12A1"), digits glued to a letter
   ("D01", "N1"), and numbers with the letter O typed for a zero (kept as near misses);
2. each run of digit groups (split by spaces, dots, dashes) is cut into the best
   sequence of SBDs (8 digits), phone numbers (10-11 digits, +84), CCCD numbers
   (12 digits from 0xx), years, and leftovers, by a small dynamic programme that
   prefers the reading leaving the fewest groups unexplained;
3. questions are matched on the words, with teencode spelled out ("k" → "khong").

:func:`read` is pure: the province tables and the served provinces are arguments.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Collection, Mapping

from ..reference import COMBINATIONS, provinces
from ..sbd import LENGTH, is_sbd, province_code

MAX_TEXT = 4000  # characters read; Zalo's text messages hold at most 2000
MASK = "\x00"  # replaces masked characters: never a digit, a space or a separator
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), " ")
_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"), "-")

# -- step 1: the same-length normalised copy ----------------------------------------------


def _fold_char(c: str) -> str:
    if c == "\n":
        return c
    if c.isspace():
        return " "
    if c in "đĐ":
        return "d"
    if c.isdigit():
        digit = unicodedata.digit(c, None)
        return str(digit) if digit is not None else c
    base = unicodedata.normalize("NFD", c)[0]
    low = base.lower()
    return low if len(low) == 1 else base


def flatten(text: str) -> str:
    """NFKC text with one character per character: lower case, no diacritics, ASCII digits,
    plain spaces, plain dashes. Positions in it are positions in the NFKC text."""
    text = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH).translate(_DASHES)
    return "".join(map(_fold_char, text))


def _mask(flat: str, start: int, end: int) -> str:
    return flat[:start] + MASK * (end - start) + flat[end:]


_DATE = re.compile(r"(?<![\d./-])(?P<d>\d{1,2}) ?(?P<sep>[./-]) ?(?P<m>\d{1,2}) ?(?P=sep) ?"
                   r"(?P<y>\d{4}|\d{2})(?!\d|[./-]\d)")
_BIRTH_DATE = re.compile(r"(?:ngay sinh|sinh ngay|\bns|\bsn|\bdob|birthday)\W{0,3}"
                         r"(?P<d>\d{1,2})[ ./-]{0,3}(?P<m>\d{1,2})[ ./-]{0,3}(?P<y>\d{4}|\d{2})(?!\d)")
_CLASS = re.compile(r"\blop ?(\d{1,2}(?: ?[a-z]\d{0,2}\b)?)|(?<![\d.-])(1[0-2][a-z]\d{0,2})(?![a-z\d])")
_GLUED = re.compile(r"(?<=[a-z])(?<!sbd)\d{1,2}(?!\d)")
_WITH_O = re.compile(r"(?<![a-z\d])[o\d]+(?:[ .-]+[o\d]+)*(?![a-z\d])")
_COUNTRY = re.compile(r"\( ?(\+ ?84|84) ?\)")


def _valid_date(day: str, month: str, year: str) -> bool:
    full = int(year) if len(year) == 4 else 2000 + int(year)
    return 1 <= int(day) <= 31 and 1 <= int(month) <= 12 and 1950 <= full <= 2039


# -- step 2: runs of digit groups ---------------------------------------------------------

_RUN = re.compile(r"(?:\+ ?)?\d+(?:(?: *[.-] *| +)\d+)*")
_GROUP = re.compile(r"\+ ?\d+|\d+")
_MOBILE = "35789"


def is_phone(digits: str, plus: bool = False) -> bool:
    """10-11 digit Vietnamese numbers: 09x.. mobiles, 02x.. landlines, 84/+84 prefixes."""
    if plus or (digits.startswith("84") and len(digits) == 11):
        return digits.startswith("84") and len(digits) in (11, 12) and digits[2] in _MOBILE + "2"
    if not digits.startswith("0"):
        return False
    if len(digits) == 10:
        return digits[1] in _MOBILE
    return len(digits) == 11 and digits[1] in "12"


def is_cccd(digits: str) -> bool:
    """A citizen ID: 12 digits, the first three the code of the province of birth."""
    return len(digits) == 12 and digits[0] == "0" and 1 <= int(digits[1:3]) <= 96


def _is_year(group: str) -> bool:
    return len(group) == 4 and group.isdigit() and 1990 <= int(group) <= 2039


def _kinds(groups: list[str], digits: str, codes: Collection[str]) -> list[tuple[str, float]]:
    """What a span of groups can be, each with its cost (lower is a better explanation)."""
    plus = groups[0].startswith("+")
    out: list[tuple[str, float]] = []
    if len(groups) == 1:
        out.append(("year", 0.1) if _is_year(digits) and not plus else ("rest", 1.0))
    if is_phone(digits, plus):
        out.append(("phone", 0.0))
    if plus:
        return out
    if len(digits) == LENGTH:
        if len(groups) == 2 and all(map(_is_year, groups)):
            out.append(("sbd", 0.5))  # "2025-2026" is a school year more often than an SBD
        else:
            out.append(("sbd", 0.0 if province_code(digits) in codes else 0.9))
    if is_cccd(digits):
        out.append(("cccd", 0.0))
    return out


def _segment(groups: list[str], codes: Collection[str]) -> list[tuple[str, str]]:
    """The cheapest cut of a run into (kind, digits) spans; ties go to fewer spans."""
    n = len(groups)
    # best[k]: (cost, spans, start of the last span, its kind, its digits) for groups[:k]
    best: list[tuple[float, int, int, str, str] | None] = [None] * (n + 1)
    best[0] = (0.0, 0, 0, "", "")
    for i in range(n):
        here = best[i]
        if here is None:
            continue
        digits = ""
        for j in range(i, min(n, i + 12)):
            digits += groups[j].lstrip("+ ")
            if len(digits) > 12 and j > i:  # a long single group is still a "rest"
                break
            for kind, cost in _kinds(groups[i:j + 1], digits, codes):
                option = (here[0] + cost, here[1] + 1, i, kind, digits)
                if best[j + 1] is None or option[:2] < best[j + 1][:2]:  # type: ignore[index]
                    best[j + 1] = option
    spans: list[tuple[str, str]] = []
    k = n
    while k:
        step = best[k]
        assert step is not None  # every single group is at least "rest" or "year"
        spans.append((step[3], step[4]))
        k = step[2]
    return spans[::-1]


# -- step 3: words and questions ----------------------------------------------------------

_TEENCODE = {
    "k": "khong", "ko": "khong", "kh": "khong", "khg": "khong", "hok": "khong",
    "hong": "khong", "hem": "khong", "kg": "khong", "dc": "duoc", "dk": "duoc",
    "j": "gi", "e": "em", "mk": "minh", "mik": "minh", "bn": "bao nhieu",
    "bnhieu": "bao nhieu", "sbd": "so bao danh", "sdb": "so bao danh", "sdt": "so dien thoai",
    "dt": "dien thoai", "pk": "phuc khao", "fuc": "phuc", "tn": "tot nghiep",
    "ngiep": "nghiep", "totnghiep": "tot nghiep", "wen": "quen", "qen": "quen",
    "dim": "diem", "trg": "truong", "dh": "dai hoc",
    "nv": "nguyen vong", "tks": "cam on", "thks": "cam on", "thx": "cam on",
    "camon": "cam on", "cmon": "cam on", "ntn": "nhu the nao", "z": "vay", "v": "vay",
    "hic": "", "ak": "a", "ah": "a", "nha": "nhe", "lm": "lam",
    "ms": "moi", "r": "roi", "cx": "cung", "vs": "voi", "ad": "admin",
}
_INTENTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((key, re.compile(pattern)) for key, pattern in (
    ("diem_chuan", r"\bdiem (chuan|san|trung tuyen)\b|\btrung tuyen\b|\bxet tuyen\b"
                   r"|\bnguyen vong\b|\b(do|dau|vao|dang ky) (duoc )?(truong|dai hoc|cao dang|nganh)\b"
                   r"|\b(truong|nganh) nao\b"),
    ("phuc_khao", r"\bphuc (khao|tra)\b|\bcham (lai|sai|nham)\b|\bsai diem\b"
                  r"|\bdiem (bi |co )?(sai|nham|lech)\b|\bkhieu nai\b"
                  r"|\b(khong|chua) (phai|dung) (la )?(diem |diem thi )?cua (em|minh|toi|con|chau)\b"),
    ("tot_nghiep", r"\btot nghiep\b|\bdxtn\b"),
    ("quen_sbd", r"\b(quen|khong nho|mat|khong biet|chua biet|tim|lay lai|xin lai|xin)"
                 r"( lai| mat)? (cai )?(so bao danh|giay bao)\b"
                 r"|\bso bao danh( cua (em|minh|toi|con|chau))? (la gi|la bao nhieu|o dau)\b"),
    ("cam_on", r"\b(cam on|cam ta|thank|thanks|thank you)\b"),
    ("lien_he", r"\blien he\b|\bhotline\b|\bso dien thoai (cua )?(so|phong|ben)\b"
                r"|\bdia chi (cua )?(so|phong)\b|\bgoi (cho|den|ai)\b|\bemail\b"),
))
INTENTS = tuple(key for key, _ in _INTENTS)
_ACK = frozenset("ok oke okie okay oki okela okla vang da u uh um uk roi duoc hihi haha a like "
                 "tot yes".split())
_ZALO_ICON = re.compile(r"/-[a-z]+|[:;][-']?[)(dpo>]+|<3")
_ENGLISH = frozenset("the my is what how please score scores result results exam check number "
                     "candidate hello hi i want to can you get see where when registration id "
                     "student find mark marks grade grades of for a an do does this".split())
_VIETNAMESE = frozenset("em diem cho tra so bao danh minh a oi la cua khong toi duoc nhe xin "
                        "chao thi nam ban con hoi anh chi voi va ma gi sao".split())

_SUBJECT_WORDS = {
    "ngu van": "ngu_van", "van": "ngu_van", "toan": "toan",
    "tieng anh": "ngoai_ngu", "anh van": "ngoai_ngu", "anh": "ngoai_ngu",
    "ngoai ngu": "ngoai_ngu", "nn": "ngoai_ngu", "english": "ngoai_ngu",
    "vat ly": "vat_li", "vat li": "vat_li", "ly": "vat_li", "li": "vat_li",
    "hoa hoc": "hoa_hoc", "hoa": "hoa_hoc", "sinh hoc": "sinh_hoc", "sinh": "sinh_hoc",
    "lich su": "lich_su", "su": "lich_su", "dia ly": "dia_li", "dia li": "dia_li",
    "dia": "dia_li", "gdcd": "gdcd", "cong dan": "gdcd",
    "gdktpl": "gdktpl", "ktpl": "gdktpl", "kinh te phap luat": "gdktpl",
    "kinh te va phap luat": "gdktpl", "tin hoc": "tin_hoc", "tin": "tin_hoc",
    "cong nghe cong nghiep": "cn_cong_nghiep", "cn cong nghiep": "cn_cong_nghiep",
    "cong nghe nong nghiep": "cn_nong_nghiep", "cn nong nghiep": "cn_nong_nghiep",
}
_SUBJECT = "|".join(sorted(map(re.escape, _SUBJECT_WORDS), key=len, reverse=True))
_SUBJECTS_ASKED = re.compile(rf"\b(?:diem|mon|bai)(?: thi(?! sinh))?(?: mon)? (?!thi sinh)((?:{_SUBJECT})"
                             rf"(?:(?: va| voi)? (?:mon )?(?:{_SUBJECT}))*)\b")
_SUBJECT_ONE = re.compile(rf"\b(?:{_SUBJECT})\b")
_COMBO_KHOI = re.compile(r"\b(?:khoi|to hop|th) ?([abcdx]) ?(\d{1,2})?\b")
_COMBO_CODE = re.compile(r"\b([abcdx]\d{2})\b")
_KHOI_DEFAULT = {"a": "A00", "b": "B00", "c": "C00", "d": "D01"}
_BIRTH_YEAR = re.compile(r"(sinh|\bsn|\bns)( nam)?\W*$")


def words(text: str) -> str:
    """Folded words with teencode spelled out, one space between them."""
    tokens = re.findall(r"[a-z0-9]+", flatten(text))
    return " ".join(t for t in (_TEENCODE.get(tok, tok) for tok in tokens) if t)


# -- the reading --------------------------------------------------------------------------

@dataclass
class Reading:
    """Everything :func:`read` found, in the order the message gave it."""

    sbds: list[str] = field(default_factory=list)  # to look up, at most max_sbds
    padded: dict[str, str] = field(default_factory=dict)  # SBD looked up → the 7 digits sent
    skipped: list[str] = field(default_factory=list)  # SBDs beyond max_sbds, not looked up
    elsewhere: list[str] = field(default_factory=list)  # a 2026 province not served here
    unknown_code: list[str] = field(default_factory=list)  # 8 digits, no such province
    meant: list[tuple[str, str]] = field(default_factory=list)  # (typed with O, digits)
    cccd: list[str] = field(default_factory=list)
    wrong_length: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    years: list[int] = field(default_factory=list)  # exam years named (not birth years)
    subjects: list[str] = field(default_factory=list)  # subject keys asked about
    combinations: list[str] = field(default_factory=list)  # combination codes asked about
    intents: list[str] = field(default_factory=list)  # keys of the Sở's answers, in INTENTS order
    ack: bool = False  # "ok", a thumbs-up, an emoticon: nothing to answer
    english: bool = False

    @property
    def near_misses(self) -> bool:
        return bool(self.padded or self.elsewhere or self.unknown_code or self.meant
                    or self.cccd or self.wrong_length)


def _add(items: list, item: object) -> None:
    if item not in items:
        items.append(item)


def read(text: str, codes: Mapping[str, str] | None = None,
         served: Collection[str] | None = None, max_sbds: int = 3) -> Reading:
    """Read one message. ``codes``: the province codes an SBD may start with (2026's by
    default); ``served``: those this deployment has candidates of (None: all of them)."""
    codes = provinces(2026) if codes is None else codes
    reading = Reading()
    text = text[:MAX_TEXT]
    flat = _mask_known(text, flatten(text), reading)
    found: list[str] = []  # SBDs in message order, padded ones included
    for match in _RUN.finditer(flat):
        _read_run(match, flat, reading, found, codes)
    for sbd in found:
        if province_code(sbd) not in codes:
            _add(reading.unknown_code, sbd)
        elif served is not None and province_code(sbd) not in served:
            _add(reading.elsewhere, sbd)
        elif len(reading.sbds) < max_sbds:
            reading.sbds.append(sbd)
        else:
            reading.skipped.append(sbd)
    reading.padded = {sbd: typed for sbd, typed in reading.padded.items() if sbd in reading.sbds}
    _read_words(text, reading)
    return reading


def _mask_known(text: str, flat: str, reading: Reading) -> str:
    """Step 1: note and mask dates, classes, O-for-0 numbers and letter-glued digits."""
    for match in _COUNTRY.finditer(flat):  # "(+84)" → " +84 " so the run sees the prefix
        inner = "+84".center(match.end() - match.start())
        flat = flat[:match.start()] + inner + flat[match.end():]
    for pattern in (_BIRTH_DATE, _DATE):
        for match in pattern.finditer(flat):
            if _valid_date(match["d"], match["m"], match["y"]):
                reading.dates.append(flat[match.start("d"):match.end()])
                flat = _mask(flat, match.start("d"), match.end())
    for match in _CLASS.finditer(flat):
        group = 1 if match.group(1) else 2
        reading.classes.append(match.group(group).replace(" ", "").upper())
        flat = _mask(flat, match.start(group), match.end(group))
    for match in _WITH_O.finditer(flat):
        for start, end in _digit_chunks(match):
            typed = flat[start:end]
            digits = re.sub(r"[ .-]+", "", typed).replace("o", "0")
            if "o" in typed and len(digits) == LENGTH and sum(map(str.isdigit, typed)) >= 2:
                reading.meant.append((_original(text, start, end), digits))
                flat = _mask(flat, start, end)
    for match in _GLUED.finditer(flat):
        flat = _mask(flat, match.start(), match.end())
    return flat


def _read_run(match: re.Match[str], flat: str, reading: Reading, found: list[str],
              codes: Collection[str]) -> None:
    """Step 2 for one run of digit groups: SBDs into ``found``, the rest into ``reading``."""
    pending: list[str] = []  # consecutive short leftover groups, read as one number
    for kind, digits in [*_segment(_GROUP.findall(match.group()), codes), ("end", "")]:
        if pending and (kind != "rest" or len(digits) >= LENGTH - 1):
            _leftover("".join(pending), reading, found, codes)
            pending.clear()
        if kind == "sbd":
            _add(found, digits)
        elif kind == "phone":
            reading.phones.append(digits)
        elif kind == "cccd":
            reading.cccd.append(digits)
        elif kind == "year":
            before = flat[max(0, match.start() - 12):match.start()]
            if 2015 <= int(digits) and not _BIRTH_YEAR.search(before):
                _add(reading.years, int(digits))
        elif kind == "rest" and len(digits) >= LENGTH - 1:  # a whole number on its own
            _leftover(digits, reading, found, codes)
        elif kind == "rest":
            pending.append(digits)


def _leftover(digits: str, reading: Reading, found: list[str], codes: Collection[str]) -> None:
    """Digits that are no SBD, phone, CCCD or year: a lost leading zero, or a wrong length."""
    if len(digits) == LENGTH - 1 and province_code("0" + digits) in codes:
        sbd = "0" + digits
        assert is_sbd(sbd)
        reading.padded.setdefault(sbd, digits)
        _add(found, sbd)
    elif len(digits) >= 7:
        _add(reading.wrong_length, digits)


def _digit_chunks(match: re.Match[str]) -> list[tuple[int, int]]:
    """Spans of consecutive groups that hold a digit ("o 08000123": the word "ở" is no zero)."""
    chunks: list[tuple[int, int]] = []
    start = end = -1
    for group in re.finditer(r"[o\d]+", match.group()):
        if any(c.isdigit() for c in group.group()):
            if start < 0:
                start = group.start()
            end = group.end()
        elif start >= 0:
            chunks.append((start, end))
            start = -1
    if start >= 0:
        chunks.append((start, end))
    return [(match.start() + a, match.start() + b) for a, b in chunks]


def _original(text: str, start: int, end: int) -> str:
    """A span of the flattened text as the user wrote it (O or o, as typed)."""
    nfkc = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH).translate(_DASHES)
    return nfkc[start:end]


def _read_words(text: str, reading: Reading) -> None:
    said = words(text)
    for key, pattern in _INTENTS:
        if pattern.search(said):
            reading.intents.append(key)
    for match in _SUBJECTS_ASKED.finditer(said):
        for name in _SUBJECT_ONE.findall(match.group(1)):
            _add(reading.subjects, _SUBJECT_WORDS[name])
    for match in _COMBO_KHOI.finditer(said):
        letter, number = match.groups()
        code = f"{letter.upper()}{int(number):02d}" if number else _KHOI_DEFAULT.get(letter, "")
        if code in COMBINATIONS:
            _add(reading.combinations, code)
    for code in _COMBO_CODE.findall(said):
        if code.upper() in COMBINATIONS:
            _add(reading.combinations, code.upper())
    bare = _ZALO_ICON.sub(" ", flatten(text))
    reading.ack = all(t in _ACK or t.startswith("okk") for t in re.findall(r"[a-z0-9]+", bare))
    tokens = said.split()
    english = sum(t in _ENGLISH for t in tokens)
    vietnamese = sum(t in _VIETNAMESE for t in tokens)
    has_marks = any(ord(c) > 127 and c.isalpha() for c in unicodedata.normalize("NFKC", text))
    reading.english = not has_marks and english >= 2 and english > vietnamese
