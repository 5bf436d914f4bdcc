"""Import speed against the sqlite3 shell's bare ``.import`` of the same rows, in one run.

    .venv/bin/python scripts/bench_import.py [--rows 1200000] [--file F.csv] [--runs 3]
    .venv/bin/python scripts/bench_import.py --mode mixed    # five dialects, 188k rows XLSX
    .venv/bin/python scripts/bench_import.py --mode xlsx     # 1.2M rows, a two-sheet workbook

Both sides are timed as whole commands (process start included), alternating, and the
medians are compared. ``diemthi import`` does full validation, statistics, the response
bodies and the index; ``.import`` only copies text into an unindexed table, from one clean
CSV of the same rows. Peak memory is ``Pss_Anon`` summed over the import and its workers
(sampled every 50 ms), as the hardening issue counts it. Generated workbooks are cached in
``$XDG_CACHE_HOME/diemthi-bench`` (writing 1.2M rows with openpyxl takes minutes). Needs
the ``sqlite3`` shell on PATH (Debian: ``apt-get install sqlite3``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from diemthi.synthetic import DIALECTS, rows as synthetic_rows, write_csv


def _pss_anon_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/smaps_rollup"):
                if line.startswith("Pss_Anon:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def _tree(pid: int) -> list[int]:
    """The process and its children (the import's workers)."""
    out = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            out += [int(c) for c in open(f"/proc/{pid}/task/{task}/children").read().split()]
    except OSError:
        pass
    return out


def timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak Pss_Anon (KiB, summed over the process tree) of a command."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], _pss_anon_kib(_tree(proc.pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    done.set()
    sampler.join()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr.read().decode() if proc.stderr else ''}")
    return elapsed, max(peak[0], 1)


def _cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = base / "diemthi-bench"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_xlsx(path: Path, n: int, seed: int, sheet_rows: int = 1_048_575,
               dialect: str = "vietnamese") -> Path:
    """A workbook as a national file comes: rows spill from Sheet1 onto Sheet2 (whose
    header row repeats); SBD as text, scores as numbers. Cached: writing takes minutes."""
    if path.exists():
        return path
    from openpyxl import Workbook

    headers = DIALECTS[dialect]
    keys = list(headers)
    wb = Workbook(write_only=True)
    tmp = path.with_suffix(".partial.xlsx")
    ws, left = None, 0
    for row in synthetic_rows(n, seed=seed):
        if left == 0:
            ws = wb.create_sheet(f"Sheet{len(wb.worksheets) + 1}")
            ws.append([headers[k] for k in keys])
            left = sheet_rows
        ws.append([row["sbd"]] + [float(row[k]) if row.get(k) and k != "ma_ngoai_ngu"
                                  else row.get(k) or None for k in keys[1:]])
        left -= 1
    wb.save(tmp)
    tmp.rename(path)
    return path


def _to_cp1258(path: Path) -> Path:
    """Re-encode the (only non-ASCII) header line as Excel writes Windows-1258: base
    letters and combining tone marks."""
    import unicodedata

    data = path.read_bytes()
    header, _, body = data.partition(b"\n")
    out = b""
    for ch in header.decode("utf-8"):
        try:
            out += ch.encode("cp1258")
        except UnicodeEncodeError:
            base, *marks = unicodedata.normalize("NFD", ch)
            for i in range(len(marks), 0, -1):  # the longest composed base cp1258 has
                composed = unicodedata.normalize("NFC", base + "".join(marks[:i - 1]))
                try:
                    out += composed.encode("cp1258") + "".join(marks[i - 1:]).encode("cp1258")
                    break
                except UnicodeEncodeError:
                    continue
    path.write_bytes(out + b"\n" + body)
    return path


def mixed(work: Path, total: int, xlsx_rows: int) -> tuple[list[Path], Path]:
    """The five real dialects, ``total`` rows together, and one clean CSV of the same rows.

    Each file holds other provinces' candidates (as each province sends its own file)."""
    from diemthi.reference import provinces

    codes = sorted(provinces(2026))
    groups = [codes[i::5] for i in range(5)]
    rest = total - xlsx_rows
    sizes = [rest * 3 // 10, rest * 3 // 10, rest * 2 // 10, rest - rest * 8 // 10, xlsx_rows]
    files = [
        write_csv(work / "snake.csv", sizes[0], seed=11, province_codes=groups[0]),
        write_csv(work / "excel-vn.csv", sizes[1], seed=12, dialect="vietnamese",
                  province_codes=groups[1], delimiter=";", decimal_comma=True,
                  encoding="utf-8-sig", newline="\r\n"),
        _to_cp1258(write_csv(work / "cp1258.tsv.csv", sizes[2], seed=13, dialect="vietnamese",
                             province_codes=groups[2], delimiter="\t", decimal_comma=True,
                             newline="\r\n")),
        write_csv(work / "camel.csv", sizes[3], seed=14, dialect="camel",
                  province_codes=groups[3]),
    ]
    cached = _cache_dir() / f"mixed-{xlsx_rows}.xlsx"
    if not cached.exists():
        from openpyxl import Workbook

        wb = Workbook(write_only=True)
        ws = wb.create_sheet("Sheet1")
        headers = DIALECTS["vietnamese"]
        ws.append([headers[k] for k in headers])
        for row in synthetic_rows(xlsx_rows, seed=15, province_codes=groups[4]):
            ws.append([row["sbd"]] + [float(row[k]) if row.get(k) and k != "ma_ngoai_ngu"
                                      else row.get(k) or None for k in list(headers)[1:]])
        wb.save(cached.with_suffix(".partial.xlsx"))
        cached.with_suffix(".partial.xlsx").rename(cached)
    files.append(cached)
    clean = work / "clean.csv"
    with open(clean, "w", encoding="utf-8") as out:
        keys = list(DIALECTS["snake"])
        out.write(",".join(keys) + "\n")
        for seed, n, group in zip((11, 12, 13, 14, 15), sizes, groups):
            for row in synthetic_rows(n, seed=seed, province_codes=group):
                out.write(",".join(row.get(k, "") for k in keys) + "\n")
    return files, clean


def clean_csv(work: Path, n: int, seed: int) -> Path:
    path = work / "clean.csv"
    with open(path, "w", encoding="utf-8") as out:
        keys = list(DIALECTS["snake"])
        out.write(",".join(keys) + "\n")
        for row in synthetic_rows(n, seed=seed):
            out.write(",".join(row.get(k, "") for k in keys) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("csv", "mixed", "xlsx"), default="csv")
    ap.add_argument("--rows", type=int, default=None,
                    help="csv, xlsx: 1,200,000; mixed: 705,000 (188,000 of them XLSX)")
    ap.add_argument("--file", type=Path, help="a CSV to use instead of synthetic rows")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=None)
    args = ap.parse_args()
    sqlite3 = shutil.which("sqlite3")
    if not sqlite3:
        sys.exit("the sqlite3 shell is needed for the reference (apt-get install sqlite3)")
    diemthi = str(Path(sys.executable).with_name("diemthi"))
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        work = Path(tmp)
        if args.mode == "mixed":
            sources, reference = mixed(work, args.rows or 705_000, 188_000)
        elif args.mode == "xlsx":
            n = args.rows or 1_200_000
            sources = [write_xlsx(_cache_dir() / f"national-{n}.xlsx", n, seed=16)]
            reference = clean_csv(work, n, seed=16)
        else:
            sources = [args.file or write_csv(work / "rows.csv", args.rows or 1_200_000)]
            reference = sources[0]
        rows = sum(1 for _ in open(reference, "rb")) - 1
        size = sum(p.stat().st_size for p in sources) / 1e6
        print(f"{args.mode}: {rows} rows, {size:.1f} MB in {len(sources)} file(s): "
              + ", ".join(p.name for p in sources))
        ours, ref, rss = [], [], []
        for i in range(args.runs):
            db = work / f"ref{i}.db"
            seconds, _ = timed([sqlite3, str(db), f".import --csv {reference} t"])
            ref.append(seconds)
            db.unlink()
            cmd = [diemthi, "import", "--data-dir", str(work / f"data{i}"), "--year", "2026",
                   *map(str, sources)] + (["--jobs", str(args.jobs)] if args.jobs else [])
            seconds, peak = timed(cmd)
            ours.append(seconds)
            rss.append(peak)
            shutil.rmtree(work / f"data{i}")
            print(f"run {i + 1}: sqlite3 .import {ref[-1]:.2f} s, diemthi import "
                  f"{ours[-1]:.2f} s ({ours[-1] / ref[-1]:.2f}x), peak Pss_Anon "
                  f"{peak / 1024:.0f} MiB")
        r, o = statistics.median(ref), statistics.median(ours)
        print(f"median of {args.runs}: sqlite3 .import {r:.2f} s, diemthi import {o:.2f} s, "
              f"ratio {o / r:.2f}x (goal <= 2.0x), {rows / o:,.0f} rows/s, "
              f"peak Pss_Anon {max(rss) / 1024:.0f} MiB (goal <= 300)")


if __name__ == "__main__":
    main()
