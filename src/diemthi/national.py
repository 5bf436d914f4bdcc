"""National distributions (phổ điểm cả nước): how many candidates in the whole country got
each exact score of each subject, as the ministry publishes them on results day.

A province's snapshot holds only its own candidates; with the national distribution of a
year imported, ranks ``nation`` and last year's equivalents count the whole country. The
package ships those of 2016–2026 (``data/national-distributions-2016-2026.csv``, built from
the public per-candidate releases); staff import them, or the ministry's file of the day,
with ``diemthi import-distribution``. Stored one file per year, ``DIR/national/<year>.json``,
written atomically; nothing is used unless imported.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from .dialects import fold_header, recognise, sniff_encoding
from .files import atomic_write
from .importer import parse_score
from .reference import SUBJECTS, subjects_for

BUNDLED_NAME = "national-distributions-2016-2026.csv"
COLUMNS = ("year", "subject", "score", "count")
_ALIASES = {"year": ["năm"], "subject": ["môn", "môn thi"], "score": ["điểm"],
            "count": ["số thí sinh", "số lượng", "số bài"]}
_FOLDED = {fold_header(a): col for col, names in _ALIASES.items() for a in (col, *names)}
SHOWN_ERRORS = 20

#: subject -> score in hundredths -> candidates
Distribution = dict[str, dict[int, int]]


class DistributionRefused(Exception):
    """The file was refused; the stored distributions are unchanged. For staff."""


def folder(data_dir: Path) -> Path:
    return data_dir / "national"


def path_of(data_dir: Path, year: int) -> Path:
    return folder(data_dir) / f"{year}.json"


def bundled() -> Path:
    return Path(str(resources.files("diemthi").joinpath("data").joinpath(BUNDLED_NAME)))


def version(data_dir: Path, year: int) -> tuple | None:
    """Changes whenever the stored distribution of ``year`` is replaced or removed."""
    try:
        st = path_of(data_dir, year).stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def load(data_dir: Path, year: int) -> Distribution | None:
    try:
        doc = orjson.loads(path_of(data_dir, year).read_bytes())
    except FileNotFoundError:
        return None
    return {subject: {int(v): int(c) for v, c in pairs}
            for subject, pairs in doc["subjects"].items()}


def years(data_dir: Path) -> list[int]:
    d = folder(data_dir)
    return sorted(int(p.stem) for p in d.glob("*.json") if p.stem.isdigit()) if d.is_dir() else []


def save(data_dir: Path, year: int, distribution: Distribution, source: str) -> Path:
    """Store (or replace) the distribution of ``year``: one atomic rename."""
    folder(data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "year": year, "source": source,
        "imported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "subjects": {subject: sorted(counts.items())
                     for subject, counts in distribution.items()}}
    target = path_of(data_dir, year)
    atomic_write(target, orjson.dumps(doc))
    return target


def remove(data_dir: Path, year: int) -> bool:
    """Take the distribution of ``year`` away; False when there was none."""
    try:
        path_of(data_dir, year).unlink()
    except FileNotFoundError:
        return False
    return True


def parse(path: Path, year: int | None = None) -> dict[int, Distribution]:
    """Read and validate a distribution file: year -> subject -> hundredths -> count.

    Columns ``year,subject,score,count`` (``year`` may be left out when ``year`` is given;
    when present it must equal it). CSV with ``,`` ``;`` or tab, UTF-8 (BOM or not) or
    Windows-1258, decimal point or comma, subjects as keys (``toan``) or names (``Toán``).
    Raises :class:`DistributionRefused` naming the file and line of every problem.
    """
    name = path.name
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DistributionRefused(f"{path}: không đọc được tệp ({exc.strerror})") from exc
    encoding = sniff_encoding(raw[:1 << 16])
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DistributionRefused(f"{name}:{line}: không đọc được theo bảng mã {encoding}; "
                                  "hãy lưu lại tệp dưới dạng CSV UTF-8") from None
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = next(reader, None) or []
    columns = {_FOLDED.get(fold_header(h)): i for i, h in enumerate(header)}
    missing = [c for c in COLUMNS if c not in columns and (c != "year" or year is None)]
    if missing:
        raise DistributionRefused(
            f"{name}:1: thiếu cột {', '.join(missing)}; cần các cột "
            f"{','.join(COLUMNS)} (cột year có thể bỏ khi đã chọn --year)")
    out: dict[int, Distribution] = {}
    errors: list[str] = []
    seen_at: dict[tuple[int, str, int], int] = {}
    width = max(columns[c] for c in COLUMNS if c in columns) + 1
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) < width:
            errors.append(f"{name}:{line}: dòng có {len(cells)} ô, cần {width}")
            continue
        problem, row = _row(cells, columns, year)
        if problem:
            errors.append(f"{name}:{line}: {problem}")
            continue
        y, subject, score, count = row  # type: ignore[misc]
        first_line = seen_at.setdefault((y, subject, score), line)
        if first_line != line:
            errors.append(f"{name}:{line}: môn '{subject}' điểm {score / 100:g} năm {y} đã có "
                          f"ở dòng {first_line}")
            continue
        out.setdefault(y, {}).setdefault(subject, {})[score] = count
    if errors:
        shown = errors[:SHOWN_ERRORS]
        more = f"\n... và {len(errors) - SHOWN_ERRORS} lỗi nữa" if len(errors) > SHOWN_ERRORS \
            else ""
        raise DistributionRefused(f"{len(errors)} dòng lỗi, không nhập gì:\n"
                                  + "\n".join(shown) + more)
    if not out:
        raise DistributionRefused(f"{name}: không có dòng số liệu nào")
    return out


def _row(cells: list[str], columns: dict[str | None, int], year: int | None
         ) -> tuple[str, None] | tuple[None, tuple[int, str, int, int]]:
    """One data row → (problem, None) or (None, (year, subject, hundredths, count))."""
    if "year" in columns:
        text = cells[columns["year"]].strip()
        if not (text.isascii() and text.isdigit() and 2000 <= int(text) <= 2100):
            return f"năm '{text}' không hợp lệ", None
        if year is not None and int(text) != year:
            return f"năm {text} khác năm đang nhập ({year})", None
        y = int(text)
    else:
        y = year  # type: ignore[assignment]
    text = cells[columns["subject"]].strip()
    subject = text if text in SUBJECTS else recognise(text, {})
    if subject not in SUBJECTS:
        return f"môn '{text}' không có trong danh mục", None
    if subject not in subjects_for(y):
        return f"môn '{text}' không thi năm {y}", None
    text = cells[columns["score"]]
    score = parse_score(text)
    if score is None:
        return "thiếu điểm", None
    if isinstance(score, str):
        return f"điểm '{text.strip()}': {score}", None
    text = cells[columns["count"]].strip()
    if not (text.isascii() and text.isdigit()):
        return f"số thí sinh '{text}' phải là số nguyên không âm", None
    return None, (y, subject, score, int(text))


def import_file(data_dir: Path, year: int, path: Path) -> Distribution:
    """Validate ``path`` as the national distribution of ``year`` and store it."""
    found = parse(path, year)
    save(data_dir, year, found[year], path.name)
    return found[year]


def import_bundled(data_dir: Path, year: int | None = None) -> dict[int, Distribution]:
    """Store the shipped distributions (all years, or one); returns what was stored."""
    found = parse(bundled())
    if year is not None:
        if year not in found:
            raise DistributionRefused(f"không có phổ điểm năm {year} trong {BUNDLED_NAME} "
                                      f"(có {min(found)}–{max(found)})")
        found = {year: found[year]}
    for y, distribution in found.items():
        save(data_dir, y, distribution, BUNDLED_NAME)
    return found
