"""Synthetic score files: the bundled sample, benchmarks and load tests.

Each subject's scores are drawn from the national distribution of the year generated (the
shipped ``national-distributions-2016-2026.csv``): asked for :func:`national_count` candidates,
the national multiset itself, shuffled, so every subject's national histogram is reproduced
to the candidate; asked for fewer or more, the same shape in proportion. Who sits what keeps
each year's rules: until 2024 Toán, Ngữ văn, Ngoại ngữ and the natural (Lí, Hóa, Sinh) or
social (Sử, Địa, GDCD from 2017) group, or both; from 2025 Toán, Ngữ văn and two electives
(GDCD only in 2025, for repeat candidates). Values are real in shape, never real people.
Deterministic for a given seed.
"""

from __future__ import annotations

import csv
import math
import random
from array import array
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from . import national
from .reference import SUBJECTS, provinces, subjects_for

NEW_PROGRAMME_FROM = 2025  # two mandatory subjects and two electives
_NATURAL = ("vat_li", "hoa_hoc", "sinh_hoc")
_SOCIAL = ("lich_su", "dia_li", "gdcd")
_LANGS = (("N1", 96), ("N3", 1), ("N4", 1), ("N6", 1), ("N7", 1))
_TEXT = [f"{h // 100}" if h % 100 == 0 else f"{h / 100:.2f}".rstrip("0")
         for h in range(1001)]

_VIETNAMESE = {
    "sbd": "Số báo danh", "toan": "Toán", "ngu_van": "Ngữ văn", "ngoai_ngu": "Ngoại ngữ",
    "vat_li": "Vật lý", "hoa_hoc": "Hoá học", "sinh_hoc": "Sinh học", "lich_su": "Lịch sử",
    "dia_li": "Địa lí", "gdcd": "Giáo dục công dân", "gdktpl": "Giáo dục kinh tế và pháp luật",
    "tin_hoc": "Tin học", "cn_cong_nghiep": "Công nghệ công nghiệp",
    "cn_nong_nghiep": "Công nghệ nông nghiệp", "ma_ngoai_ngu": "Mã môn ngoại ngữ",
}
_CAMEL = {
    "sbd": "SBD", "toan": "Toan", "ngu_van": "NguVan", "ngoai_ngu": "NgoaiNgu",
    "vat_li": "VatLy", "hoa_hoc": "HoaHoc", "sinh_hoc": "SinhHoc", "lich_su": "LichSu",
    "dia_li": "DiaLy", "gdcd": "GDCD", "gdktpl": "KinhTePhapLuat", "tin_hoc": "TinHoc",
    "cn_cong_nghiep": "CongNgheCongNghiep", "cn_nong_nghiep": "CongNgheNongNghiep",
    "ma_ngoai_ngu": "MaMonNgoaiNgu",
}
#: Column headers of each dialect, by canonical key.
DIALECTS: dict[str, dict[str, str]] = {
    "snake": {k: k for k in ["sbd", *SUBJECTS, "ma_ngoai_ngu"]},
    "vietnamese": _VIETNAMESE,
    "camel": _CAMEL,
}


@lru_cache(maxsize=None)
def distribution(year: int) -> dict[str, dict[int, int]]:
    """The shipped national distribution of ``year``: subject -> hundredths -> count."""
    found = national.parse(national.bundled())
    if year not in found:
        raise ValueError(f"no national distribution for {year} ({min(found)}–{max(found)})")
    return found[year]


def _mandatory(year: int) -> tuple[str, ...]:
    return ("toan", "ngu_van") if year >= NEW_PROGRAMME_FROM else ("toan", "ngu_van", "ngoai_ngu")


def national_count(year: int) -> int:
    """The number of candidates that reproduces every national histogram of ``year``
    exactly: the most any subject had, or, from 2025, enough to hold the electives
    taken at two per candidate."""
    counts = {k: sum(c.values()) for k, c in distribution(year).items()}
    n = max(counts.values())
    if year >= NEW_PROGRAMME_FROM:
        electives = sum(c for k, c in counts.items() if k not in _mandatory(year))
        n = max(n, math.ceil(electives / 2))
    return n


def _apportion(counts: dict[int, int], size: int) -> list[int]:
    """``size`` values in the proportions of ``counts`` (largest remainders), ascending."""
    total = sum(counts.values())
    if size == total:
        shares = dict(counts)
    else:
        exact = {v: c * size / total for v, c in counts.items()}
        shares = {v: int(x) for v, x in exact.items()}
        left = size - sum(shares.values())
        for v in sorted(exact, key=lambda v: (shares[v] - exact[v], v))[:left]:
            shares[v] += 1
    return [v for v in sorted(shares) for _ in range(shares[v])]


def draw(n: int, year: int = 2026, seed: int = 2026) -> dict[str, array]:
    """Subject -> each candidate's score in hundredths (-1: did not sit), for ``n``."""
    rng = random.Random(seed)
    nation = distribution(year)
    full = national_count(year)
    takers = {k: min(n, round(sum(c.values()) * n / full)) for k, c in nation.items()
              if k in subjects_for(year)}
    out = {}
    for key, people in _participation(n, year, takers, rng).items():
        column = array("h", [-1]) * n
        # people come in random order: the ascending scores land on them shuffled
        for person, score in zip(people, _apportion(nation[key], len(people))):
            column[person] = score
        out[key] = column
    return out


def _participation(n: int, year: int, takers: dict[str, int], rng: random.Random
                   ) -> dict[str, list[int]]:
    """Subject -> the candidates who sat it, ``takers[subject]`` of them, in random order,
    by the year's rules."""
    who: dict[str, list[int]] = {}
    mandatory = _mandatory(year)
    for key in mandatory:
        if key in takers:
            who[key] = rng.sample(range(n), takers[key])
    if year >= NEW_PROGRAMME_FROM:
        slots = [k for k, m in takers.items() if k not in mandatory for _ in range(m)]
        del slots[2 * n:]  # rounding in proportion may ask for a few too many
        rng.shuffle(slots)
        _no_subject_twice(slots, rng)
        order = rng.sample(range(n), n)
        for j, key in enumerate(slots):
            who.setdefault(key, []).append(order[j // 2])
        return who
    order = rng.sample(range(n), n)
    for group, members in ((_NATURAL, order), (_SOCIAL, order[::-1])):
        size = max((takers[k] for k in group if k in takers), default=0)
        for key in group:
            if key in takers:  # the first `size` of the order sit the group (both: allowed)
                who[key] = rng.sample(members[:size], takers[key])
    return who


def _no_subject_twice(slots: list[str], rng: random.Random) -> None:
    """Pairs (2i, 2i+1) are one candidate's two electives: make them differ by swaps."""
    pairs = len(slots) // 2
    clashes = [i for i in range(pairs) if slots[2 * i] == slots[2 * i + 1]]
    while clashes:
        i = clashes.pop()
        if slots[2 * i] != slots[2 * i + 1]:
            continue  # mended by an earlier swap
        mine = slots[2 * i]
        while True:  # swap one of them with a slot of another pair that takes it safely
            j = rng.randrange(len(slots))
            mate = j ^ 1
            other = slots[mate] if mate < len(slots) else None
            if j // 2 != i and slots[j] != mine and other != mine:
                slots[2 * i], slots[j] = slots[j], mine
                break


def rows(n: int, year: int = 2026, seed: int = 2026,
         province_codes: list[str] | None = None) -> Iterator[dict[str, str]]:
    """Yield ``n`` candidates as canonical-key dicts (scores as '7.75' strings), numbered
    ``<code><000001...>`` in runs of ceil(n / provinces) per province."""
    rng = random.Random(seed + 1)
    columns = draw(n, year, seed)
    codes = province_codes or sorted(provinces(year))
    per_province = -(-n // len(codes))
    langs, lang_w = [c for c, _ in _LANGS], [w for _, w in _LANGS]
    for i in range(n):
        row = {"sbd": f"{codes[i // per_province]}{i % per_province + 1:06d}"}
        for key, column in columns.items():
            if column[i] >= 0:
                row[key] = _TEXT[column[i]]
        if "ngoai_ngu" in row:
            row["ma_ngoai_ngu"] = rng.choices(langs, lang_w)[0]
        yield row


def write_csv(path: Path, n: int, year: int = 2026, seed: int = 2026, dialect: str = "snake",
              province_codes: list[str] | None = None, delimiter: str = ",",
              decimal_comma: bool = False, encoding: str = "utf-8", newline: str = "\n") -> Path:
    """Write a synthetic score file in one of the dialects staff send us."""
    headers = DIALECTS[dialect]
    keys = ["sbd", *subjects_for(year), "ma_ngoai_ngu"]
    with open(path, "w", encoding=encoding, newline="") as fh:
        w = csv.writer(fh, delimiter=delimiter, lineterminator=newline)
        w.writerow([headers[k] for k in keys])
        for row in rows(n, year, seed, province_codes):
            values = [row.get(k, "") for k in keys]
            if decimal_comma:
                values = [v.replace(".", ",") for v in values]
            w.writerow(values)
    return path
