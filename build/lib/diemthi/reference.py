"""Reference tables: subjects, foreign languages, admission combinations, provinces.

The tables ship as package data (copies of the ministry lists in ``diemthi/data``) so
the package works anywhere; they are read once, at import, into plain dicts.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files("diemthi").joinpath("data").joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@dataclass(frozen=True)
class Subject:
    key: str
    name: str
    first_year: int
    last_year: int | None  # None: still examined

    def examined_in(self, year: int) -> bool:
        return self.first_year <= year and (self.last_year is None or year <= self.last_year)


@dataclass(frozen=True)
class Combination:
    """An admission combination (tổ hợp): three subjects, maybe one a given language."""

    code: str
    subjects: tuple[str, str, str]
    language: str | None  # required foreign-language code when ngoai_ngu is one of them


def _parse_years(text: str) -> tuple[int, int | None]:
    first, _, last = text.partition("-")
    return int(first), (int(last) if last else None)


def _load_subjects() -> dict[str, Subject]:
    subjects = {}
    for row in _rows("subjects.csv"):
        first, last = _parse_years(row["years"])
        subjects[row["key"]] = Subject(row["key"], row["name_vi"], first, last)
    return subjects


def _load_combinations() -> dict[str, Combination]:
    combos: dict[str, Combination] = {}
    for row in _rows("combinations.csv"):
        subjects = tuple(row["subjects"].split("+"))
        assert len(subjects) == 3, row
        language = "N1" if "ngoai_ngu" in subjects else None
        combos[row["code"]] = Combination(row["code"], subjects, language)  # type: ignore[arg-type]
        if row["code"] == "D01":
            # combinations.csv: "D02..D06 are the same with N2..N6".
            for n in range(2, 7):
                code = f"D0{n}"
                combos[code] = Combination(code, subjects, f"N{n}")  # type: ignore[arg-type]
    return dict(sorted(combos.items()))


SUBJECTS: dict[str, Subject] = _load_subjects()
LANGUAGES: dict[str, str] = {r["code"]: r["name_vi"] for r in _rows("foreign-languages.csv")}
COMBINATIONS: dict[str, Combination] = _load_combinations()
_PROVINCES_2026 = {r["code"]: r["name_vi"] for r in _rows("provinces-2026.csv")}
_PROVINCES_OLD = {r["code"]: r["name_vi"] for r in _rows("provinces-2002-2025.csv")}

#: The province tables changed in 2026, when provinces merged.
PROVINCE_CODES_CHANGED_IN = 2026


def provinces(year: int) -> dict[str, str]:
    """Province code → name, as the SBD prefixes were assigned in ``year``."""
    return _PROVINCES_2026 if year >= PROVINCE_CODES_CHANGED_IN else _PROVINCES_OLD


@lru_cache(maxsize=None)
def subjects_for(year: int) -> tuple[str, ...]:
    """Canonical subject keys examined in ``year``, in table order."""
    return tuple(k for k, s in SUBJECTS.items() if s.examined_in(year))
