"""Regenerate the bundled synthetic sample in data/sample/ (deterministic).

Two provinces in two dialects staff really send: snake_case UTF-8 with commas, and
what Excel writes under a Vietnamese locale (BOM, ';', decimal comma, CRLF).
"""

from pathlib import Path

from diemthi.synthetic import write_csv

OUT = Path(__file__).resolve().parent.parent / "data" / "sample"

if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    write_csv(OUT / "2026-01-ha-noi.csv", 3000, seed=1, province_codes=["01"])
    write_csv(OUT / "2026-79-tp-ho-chi-minh-excel.csv", 2000, seed=79, province_codes=["79"],
              dialect="vietnamese", delimiter=";", decimal_comma=True, encoding="utf-8-sig",
              newline="\r\n")
    print(f"wrote {OUT}")
