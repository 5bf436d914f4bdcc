"""Import speed against the sqlite3 shell's bare ``.import`` of the same rows, in one run.

    .venv/bin/python scripts/bench_import.py [--rows 1200000] [--file F.csv] [--runs 3]

Both sides are timed as whole commands (process start included), alternating, and the
medians are compared. ``diemthi import`` does full validation, statistics, the response
bodies and the index; ``.import`` only copies text into an unindexed table. Needs the
``sqlite3`` shell on PATH (Debian: ``apt-get install sqlite3``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from diemthi.synthetic import write_csv


def timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of a command."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr.read().decode() if proc.stderr else ''}")
    return elapsed, usage.ru_maxrss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_200_000)
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
        source = args.file or write_csv(work / "rows.csv", args.rows)
        rows = sum(1 for _ in open(source, "rb")) - 1
        print(f"{rows} rows, {source.stat().st_size / 1e6:.1f} MB: {source}")
        ours, ref, rss = [], [], []
        for i in range(args.runs):
            db = work / f"ref{i}.db"
            seconds, _ = timed([sqlite3, str(db), f".import --csv {source} t"])
            ref.append(seconds)
            db.unlink()
            cmd = [diemthi, "import", "--data-dir", str(work / f"data{i}"), "--year", "2026",
                   str(source)] + (["--jobs", str(args.jobs)] if args.jobs else [])
            seconds, peak = timed(cmd)
            ours.append(seconds)
            rss.append(peak)
            shutil.rmtree(work / f"data{i}")
            print(f"run {i + 1}: sqlite3 .import {ref[-1]:.2f} s, diemthi import "
                  f"{ours[-1]:.2f} s ({ours[-1] / ref[-1]:.2f}x), peak RSS {peak / 1024:.0f} MiB")
        r, o = statistics.median(ref), statistics.median(ours)
        print(f"median of {args.runs}: sqlite3 .import {r:.2f} s, diemthi import {o:.2f} s, "
              f"ratio {o / r:.2f}x (goal <= 2.0x), {rows / o:,.0f} rows/s, "
              f"peak RSS {max(rss) / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
