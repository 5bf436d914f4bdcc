"""The result page against the API, in one run, with wrk on 127.0.0.1.

    .venv/bin/python scripts/bench_pages.py [--rows 1200000 | --file F.csv] [--seconds 10]

(The API's own figures against the stack's ceiling, the swap and many years are
``scripts/bench_lookup.py``'s; this script keeps the ceiling runs only as a reference.)

Serves a snapshot of real-size data with one ``diemthi serve`` worker and, beside it, a
bare Starlette route returning fixed bytes (scripts/ceiling_app.py, same uvicorn loop and
parser). wrk (64 connections, one thread) drives each in turn: (a) every request a
different SBD, (b) a hot set of 2,000 SBDs. Prints requests/s, the ratio to the ceiling,
p50/p99 and the worker's peak RSS; medians of --runs. Needs wrk (apt-get install wrk).
The result page ``/tra-cuu/{sbd}`` runs the same two loads, its ratio taken to the API's
in the same run (goal >= 0.8), and its first-visit weight is summed (goal <= 60 KB).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from diemthi.importer import import_files
from diemthi.reference import provinces
from diemthi.synthetic import write_csv
from support import WRK_DONE, free_port, run_wrk as wrk, wait_ready

SCRIPTS = Path(__file__).resolve().parent

LUA = r"""
local codes = {%(codes)s}
local per, total, hot = %(per)d, %(total)d, %(hot)d
local counter = 0
function sbd(i)
  return string.format("%%s%%06d", codes[math.floor(i / per) + 1], i %% per + 1)
end
request = function()
  counter = counter + 1
  local k
  if hot > 0 then k = math.random(0, hot - 1) else k = counter end
  -- a stride coprime to total visits every SBD once before repeating
  -- as a browser asks (the API ignores it; a result page asked again comes gzipped)
  return wrk.format("GET", "%(path)s" .. sbd((k * 7919) %% total),
                    {["Accept-Encoding"] = "gzip"})
end
"""


def page_weight(port: int, sbd: str) -> int:
    """Bytes of every response a first visit to the result page needs, as the server sends
    them (bodies; headers not counted): the HTML, then each stylesheet, script and icon."""
    base = f"http://127.0.0.1:{port}"
    with urllib.request.urlopen(f"{base}/tra-cuu/{sbd}") as r:
        html = r.read()
    total = len(html)
    for url in re.findall(rb'<(?:link|script)[^>]+(?:href|src)="(/[^"]+)"', html):
        with urllib.request.urlopen(base + url.decode()) as r:
            total += len(r.read())
    return total


def peak_rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_200_000)
    ap.add_argument("--file", type=Path, help="a score file to serve instead (its SBDs are "
                    "not used by the load: the synthetic numbering is)")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed (apt-get install wrk)")
    codes = sorted(provinces(2026))
    per = -(-args.rows // len(codes))
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="bench-lookup-") as tmp:
        work = Path(tmp)
        source = args.file or write_csv(work / "rows.csv", args.rows)
        result = import_files(work / "data", 2026, [source], activate=True)
        print(f"snapshot: {result.imported} candidates ({result.snapshot_path.stat().st_size / 1e6:.0f} MB)")
        scripts = {}
        for name, hot, path in (("distinct", 0, "/v1/scores/"), ("hot2000", 2000, "/v1/scores/"),
                                ("page-distinct", 0, "/tra-cuu/"),
                                ("page-hot2000", 2000, "/tra-cuu/")):
            scripts[name] = work / f"{name}.lua"
            scripts[name].write_text(LUA % {"codes": ",".join(f'"{c}"' for c in codes),
                                            "per": per, "total": result.imported, "hot": hot,
                                            "path": path} + WRK_DONE)
        ours_port, ceiling_port = free_port(), free_port()
        env = {**os.environ, "DIEMTHI_DATA_DIR": str(work / "data")}
        ours = subprocess.Popen([str(bin_dir / "diemthi"), "serve", "--port", str(ours_port)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ceiling = subprocess.Popen([str(bin_dir / "uvicorn"), "--app-dir", str(SCRIPTS),
                                    "ceiling_app:app", "--port", str(ceiling_port), "--loop",
                                    "uvloop", "--http", "httptools", "--no-access-log",
                                    "--log-level", "warning"], stdout=subprocess.DEVNULL)
        try:
            wait_ready(f"http://127.0.0.1:{ours_port}/readyz", ours)
            wait_ready(f"http://127.0.0.1:{ceiling_port}/v1/scores/01000001", ceiling)
            runs: dict[str, list[dict]] = {"ceiling": [], "distinct": [], "hot2000": [],
                                           "page-distinct": [], "page-hot2000": []}
            ratios: dict[str, list[float]] = {"distinct": [], "hot2000": []}
            page_ratios: dict[str, list[float]] = {"page-distinct": [], "page-hot2000": []}
            weight = page_weight(ours_port, f"{codes[0]}000001")

            def ceiling_now() -> float:
                runs["ceiling"].append(wrk(ceiling_port, scripts["hot2000"], args.seconds,
                                           args.connections))
                return runs["ceiling"][-1]["rps"]

            before = ceiling_now()
            for i in range(args.runs):
                for name in ("distinct", "hot2000"):
                    runs[name].append(wrk(ours_port, scripts[name], args.seconds,
                                          args.connections))
                    page = "page-" + name  # right after the API, under the same load
                    runs[page].append(wrk(ours_port, scripts[page], args.seconds,
                                          args.connections))
                    after = ceiling_now()  # bracketed: drift of the machine cancels out
                    ratios[name].append(runs[name][-1]["rps"] / ((before + after) / 2))
                    page_ratios[page].append(runs[page][-1]["rps"] / runs[name][-1]["rps"])
                    before = after
                print(f"run {i + 1}: " + ", ".join(
                    f"{k} {runs[k][-1]['rps']:,.0f} req/s ({ratios[k][-1]:.2f})"
                    for k in ratios) + ", " + ", ".join(
                    f"{k} {runs[k][-1]['rps']:,.0f} req/s ({page_ratios[k][-1]:.2f} of API)"
                    for k in page_ratios))
            rss = peak_rss_mib(ours.pid)
        finally:
            for p in (ours, ceiling):
                p.terminate()
                p.wait(timeout=30)
    print(f"\none worker, {args.connections} connections, {args.seconds} s x {args.runs} runs; "
          f"medians; ratio = median over runs of req/s / mean of the ceiling runs just "
          f"before and after")
    print(f"{'':<24}{'req/s':>10}{'ratio':>8}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
    for name, label, goal in (("ceiling", "ceiling", None),
                              ("distinct", "(a) every SBD different", 0.80),
                              ("hot2000", "(b) hot set of 2,000", 0.90)):
        rs = runs[name]
        rps = statistics.median(r["rps"] for r in rs)
        ratio = statistics.median(ratios[name]) if name in ratios else 1.0
        p50 = statistics.median(r["p50"] for r in rs) / 1000
        p99 = statistics.median(r["p99"] for r in rs) / 1000
        bad = sum(r["non2xx"] + r["errors"] for r in rs)
        note = f"  (goal >= {goal:.2f})" if goal else ""
        print(f"{label:<24}{rps:>10,.0f}{ratio:>8.2f}{p50:>9.2f}{p99:>9.2f}"
              f"{bad:>9}{note}")
    for name, label in (("page-distinct", "page, every SBD"), ("page-hot2000", "page, hot 2,000")):
        rs = runs[name]
        print(f"{label:<24}{statistics.median(r['rps'] for r in rs):>10,.0f}"
              f"{statistics.median(page_ratios[name]):>8.2f}"
              f"{statistics.median(r['p50'] for r in rs) / 1000:>9.2f}"
              f"{statistics.median(r['p99'] for r in rs) / 1000:>9.2f}"
              f"{sum(r['non2xx'] + r['errors'] for r in rs):>9}  (ratio to the API's same load;"
              f" goal >= 0.80)")
    print(f"result page, first visit: {weight / 1024:.1f} KB in all (goal <= 60)")
    print(f"worker peak RSS: {rss:.0f} MiB (goal <= 300)")


if __name__ == "__main__":
    main()
