"""Synthetic score files: the bundled sample, benchmarks and load tests.

Distributions follow the 2025+ exam (two mandatory subjects, two electives); values are
invented, never real candidates. Deterministic for a given seed.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Iterator

from .reference import provinces

# Elective popularity, roughly as in 2025-2026.
_ELECTIVES = {
    "ngoai_ngu": 35, "vat_li": 22, "hoa_hoc": 14, "sinh_hoc": 5, "lich_su": 40,
    "dia_li": 55, "gdktpl": 20, "tin_hoc": 3, "cn_cong_nghiep": 2, "cn_nong_nghiep": 4,
}
_MEANS = {
    "toan": 4.8, "ngu_van": 7.0, "ngoai_ngu": 5.4, "vat_li": 6.9, "hoa_hoc": 6.1,
    "sinh_hoc": 5.8, "lich_su": 6.5, "dia_li": 6.6, "gdktpl": 7.7, "tin_hoc": 6.9,
    "cn_cong_nghiep": 6.0, "cn_nong_nghiep": 7.7,
}
_LANGS = (("N1", 96), ("N3", 1), ("N4", 1), ("N6", 1), ("N7", 1))

#: Column headers of each dialect, by canonical key.
DIALECTS: dict[str, dict[str, str]] = {
    "snake": {k: k for k in ["sbd", *_MEANS, "ma_ngoai_ngu"]},
    "vietnamese": {
        "sbd": "Số báo danh", "toan": "Toán", "ngu_van": "Ngữ văn", "ngoai_ngu": "Ngoại ngữ",
        "vat_li": "Vật lý", "hoa_hoc": "Hoá học", "sinh_hoc": "Sinh học", "lich_su": "Lịch sử",
        "dia_li": "Địa lí", "gdktpl": "Giáo dục kinh tế và pháp luật", "tin_hoc": "Tin học",
        "cn_cong_nghiep": "Công nghệ công nghiệp", "cn_nong_nghiep": "Công nghệ nông nghiệp",
        "ma_ngoai_ngu": "Mã môn ngoại ngữ",
    },
    "camel": {
        "sbd": "SBD", "toan": "Toan", "ngu_van": "NguVan", "ngoai_ngu": "NgoaiNgu",
        "vat_li": "VatLy", "hoa_hoc": "HoaHoc", "sinh_hoc": "SinhHoc", "lich_su": "LichSu",
        "dia_li": "DiaLy", "gdktpl": "KinhTePhapLuat", "tin_hoc": "TinHoc",
        "cn_cong_nghiep": "CongNgheCongNghiep", "cn_nong_nghiep": "CongNgheNongNghiep",
        "ma_ngoai_ngu": "MaMonNgoaiNgu",
    },
}


def _score_strings(mean: float, step: float, rng: random.Random, n: int = 4096) -> list[str]:
    """A pool of formatted scores drawn from a clipped normal, on the subject's step."""
    out = []
    for _ in range(n):
        v = min(10.0, max(0.0, rng.gauss(mean, 1.4)))
        v = round(round(v / step) * step, 2)
        out.append(f"{v:g}")
    return out


def rows(n: int, year: int = 2026, seed: int = 2026,
         province_codes: list[str] | None = None) -> Iterator[dict[str, str]]:
    """Yield ``n`` candidates as canonical-key dicts (scores as '7.75' strings)."""
    rng = random.Random(seed)
    codes = province_codes or sorted(provinces(year))
    pools = {k: _score_strings(m, 0.25 if k in ("toan", "ngu_van", "ngoai_ngu") else 0.05, rng)
             for k, m in _MEANS.items()}
    names, weights = list(_ELECTIVES), list(_ELECTIVES.values())
    langs, lang_w = [c for c, _ in _LANGS], [w for _, w in _LANGS]
    per_province = -(-n // len(codes))
    made = 0
    for code in codes:
        for i in range(1, per_province + 1):
            if made == n:
                return
            made += 1
            row = {"sbd": f"{code}{i:06d}"}
            absent = rng.random() < 0.01  # did not sit at all for one mandatory subject
            for key in ("toan", "ngu_van"):
                row[key] = "" if absent and key == "toan" else rng.choice(pools[key])
            first = rng.choices(names, weights)[0]
            second = first
            while second == first:
                second = rng.choices(names, weights)[0]
            for key in (first, second):
                row[key] = rng.choice(pools[key])
            if "ngoai_ngu" in row:
                row["ma_ngoai_ngu"] = rng.choices(langs, lang_w)[0]
            yield row


def write_csv(path: Path, n: int, year: int = 2026, seed: int = 2026, dialect: str = "snake",
              province_codes: list[str] | None = None, delimiter: str = ",",
              decimal_comma: bool = False, encoding: str = "utf-8", newline: str = "\n") -> Path:
    """Write a synthetic score file in one of the dialects staff send us."""
    headers = DIALECTS[dialect]
    keys = list(headers)
    with open(path, "w", encoding=encoding, newline="") as fh:
        w = csv.writer(fh, delimiter=delimiter, lineterminator=newline)
        w.writerow([headers[k] for k in keys])
        for row in rows(n, year, seed, province_codes):
            values = [row.get(k, "") for k in keys]
            if decimal_comma:
                values = [v.replace(".", ",") for v in values]
            w.writerow(values)
    return path
