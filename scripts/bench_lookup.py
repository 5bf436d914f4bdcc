"""Lookup throughput against the ceiling of the stack, in one run, with wrk on 127.0.0.1.

    .venv/bin/python scripts/bench_lookup.py [--rows 1200000 | --file F.csv] [--years 1]
                                             [--seconds 10] [--runs 5] [--cache-dir DIR]

Serves real-size data with one ``diemthi serve`` worker and, beside it, a bare Starlette
route returning fixed bytes (scripts/ceiling_app.py, same uvicorn loop and parser). wrk
(64 connections, one thread) drives each in turn: (a) every request a different SBD (no
SBD asked twice in the whole benchmark, up to the number of candidates),
(b) a hot set of 2,000 SBDs, (c) every request different while a new snapshot of the
latest year is activated under load (the swap). Each of ours is bracketed by ceiling runs.
Prints requests/s, the ratio to the ceiling, p50/p99, the worker's start-up time and
memory (RssAnon: what the memory goal counts); medians of --runs.

``--years 11`` serves eleven exam years (2016-2026), each ``--rows`` synthetic candidates
with that year's province codes, and every request asks a random year. Generated
snapshots are kept in --cache-dir (default ~/.cache/diemthi-bench): the first run of a
size builds them (about 15 s per million rows), later runs start at once. ``--file``
serves a real score file instead, and the load asks for its own SBDs. Needs wrk
(installed from Debian when missing and we are root).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from diemthi import store
from diemthi.importer import import_files
from diemthi.reference import provinces
from diemthi.synthetic import write_csv
from support import WRK_DONE, free_port, need_wrk, run_wrk, wait_ready

SCRIPTS = Path(__file__).resolve().parent

LUA = r"""
-- years: {year, province codes, SBDs per province, candidates}; list: SBDs of a real file
local years = {%(years)s}
local list = {}
%(read_list)s
local hot, query = %(hot)d, %(query)s
local counter = START
local function synthetic(y, i)
  return string.format("%%s%%06d", y[2][math.floor(i / y[3]) + 1], i %% y[3] + 1)
end
request = function()
  counter = counter + 1
  local k
  if hot > 0 then k = math.random(0, hot - 1) else k = counter end
  local y = years[math.random(1, #years)]
  local sbd
  -- a stride coprime to the count visits every SBD once before repeating
  if #list > 0 then sbd = list[(k * 7919) %% #list + 1] else sbd = synthetic(y, (k * 7919) %% y[4]) end
  local path = "/v1/scores/" .. sbd
  if query then path = path .. "?year=" .. y[1] end
  return wrk.format("GET", path)
end
"""


def cpu_seconds(pid: int) -> float:
    """CPU time used so far by a server process and its worker processes."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:  # fields[1]: the parent
            total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return total


def wrk(port: int, lua: Path, seconds: int, connections: int, pid: int) -> dict:
    """One wrk run; also the server's CPU time per request, which other programs on a
    shared machine disturb much less than requests per second."""
    cpu = cpu_seconds(pid)
    r = run_wrk(port, lua, seconds, connections)
    cpu = cpu_seconds(pid) - cpu
    r["cpu_us"] = cpu / max(r["requests"], 1) * 1e6
    return r


def memory_mib(pid: int) -> dict[str, float]:
    out = {}
    for line in open(f"/proc/{pid}/status"):
        name, _, value = line.partition(":")
        if name in ("VmHWM", "RssAnon", "RssFile"):
            out[name] = int(value.split()[0]) / 1024
    return out


def cached_snapshot(cache: Path, year: int, rows: int) -> Path:
    """A snapshot of ``rows`` synthetic candidates of ``year``, built once and kept."""
    path = cache / f"{year}-synthetic-{rows}.sqlite"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-build-", dir=cache) as tmp:
        source = write_csv(Path(tmp) / "rows.csv", rows, year=year, seed=year)
        result = import_files(Path(tmp) / "data", year, [source], jobs=2)
        os.replace(result.snapshot_path, path)
    print(f"built {path.name} in {time.monotonic() - started:.0f} s", flush=True)
    return path


def prepare(args: argparse.Namespace, work: Path) -> tuple[Path, list[tuple[int, Path]]]:
    """A data dir whose snapshots are the cached files (linked) or the imported --file."""
    data = work / "data"
    if args.file:
        result = import_files(data, 2026, [args.file], activate=True, jobs=2)
        return data, [(2026, result.snapshot_path)]
    snaps = []
    for year in range(2027 - args.years, 2027):
        source = cached_snapshot(args.cache_dir, year, args.rows)
        link = store.snapshot_path(data, source.stem)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(source)
        store.activate(data, source.stem)
        snaps.append((year, link))
    return data, snaps


def lua_scripts(work: Path, snaps: list[tuple[int, Path]], from_file: bool) -> dict[str, Path]:
    years, read_list = [], ""
    for year, path in snaps:
        db = sqlite3.connect(store.readonly_uri(path), uri=True)
        total = db.execute("SELECT count(*) FROM candidates").fetchone()[0]
        if from_file:
            with open(work / "sbds.txt", "w") as fh:
                for (sbd,) in db.execute("SELECT sbd FROM candidates ORDER BY sbd"):
                    fh.write(f"{sbd:08d}\n")
            read_list = (f'for line in io.lines("{work / "sbds.txt"}") do '
                         f'list[#list + 1] = line end')
        db.close()
        codes = sorted(provinces(year))
        per = -(-total // len(codes))
        years.append(f'{{{year}, {{{",".join(chr(34) + c + chr(34) for c in codes)}}}, '
                     f'{per}, {total}}}')
    out = {}
    for name, hot in (("distinct", 0), ("hot2000", 2000)):
        out[name] = work / f"{name}.lua"
        out[name].write_text(LUA % {"years": ", ".join(years), "read_list": read_list,
                                    "hot": hot, "query": "true" if len(snaps) > 1 else "false"}
                             + WRK_DONE)
        if hot:  # the hot set starts where it likes; (a) and (c) see starting_at
            out[name].write_text(out[name].read_text().replace("= START", "= 0"))
    return out


def starting_at(script: Path, start: int) -> Path:
    """The script with its request counter starting at ``start``: consecutive runs then
    ask for SBDs no earlier run asked for, as they would be on the day (and as no LRU
    or admission filter can tell apart from a first visit)."""
    out = script.with_name(f"{script.stem}-{start}.lua")
    out.write_text(script.read_text().replace("local counter = START", f"local counter = {start}"))
    return out


def swap_copy(data: Path, latest: tuple[int, Path], n: int) -> str:
    """A new snapshot of the latest year: the same content under a new id (a new file,
    not in the page cache as a whole until the server reads it through)."""
    year, path = latest
    new_id = f"{year}-swap-{n}"
    shutil.copyfile(path, store.snapshot_path(data, new_id))
    return new_id


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=None,
                    help="synthetic candidates per year [1,200,000; 1,100,000 with --years]")
    ap.add_argument("--years", type=int, default=1, help="exam years served, ending 2026")
    ap.add_argument("--file", type=Path, help="a real score file to serve instead")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--cache-dir", type=Path,
                    default=Path.home() / ".cache" / "diemthi-bench")
    ap.add_argument("--no-swap", action="store_true", help="skip the swap runs")
    ap.add_argument("--workers", type=int, default=1, help="diemthi serve --workers (the "
                    "goals are for one; memory is shown for one only)")
    args = ap.parse_args()
    args.rows = args.rows or (1_100_000 if args.years > 1 else 1_200_000)
    need_wrk()
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="bench-lookup-") as tmp:
        work = Path(tmp)
        data, snaps = prepare(args, work)
        size = sum(p.stat().st_size for _, p in snaps) / 1e6
        print(f"serving {len(snaps)} year(s), {size:,.0f} MB of snapshots", flush=True)
        scripts = lua_scripts(work, snaps, bool(args.file))
        ours_port, ceiling_port = free_port(), free_port()
        env = {**os.environ, "DIEMTHI_DATA_DIR": str(data), "DIEMTHI_RELOAD_INTERVAL": "0.5"}
        started = time.monotonic()
        ours = subprocess.Popen([str(bin_dir / "diemthi"), "serve", "--port", str(ours_port),
                                 "--workers", str(args.workers)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ceiling = subprocess.Popen([str(bin_dir / "uvicorn"), "--app-dir", str(SCRIPTS),
                                    "ceiling_app:app", "--port", str(ceiling_port), "--loop",
                                    "uvloop", "--http", "httptools", "--no-access-log",
                                    "--log-level", "warning"], stdout=subprocess.DEVNULL)
        try:
            wait_ready(f"http://127.0.0.1:{ours_port}/readyz", ours, interval=0.05)
            startup = time.monotonic() - started
            wait_ready(f"http://127.0.0.1:{ceiling_port}/v1/scores/01000001", ceiling)
            names = ["distinct", "hot2000"] + ([] if args.no_swap else ["swap"])
            runs: dict[str, list[dict]] = {"ceiling": [], **{n: [] for n in names}}
            ratios: dict[str, list[float]] = {n: [] for n in names}

            def ceiling_now() -> float:
                runs["ceiling"].append(wrk(ceiling_port, scripts["hot2000"], args.seconds,
                                           args.connections, ceiling.pid))
                return runs["ceiling"][-1]["rps"]

            before = ceiling_now()
            start = 0  # (a) and (c): no SBD asked twice in the whole benchmark (up to its size)
            for i in range(args.runs):
                # copied now, so that writing it back to disk is over before the swap run
                new_id = None if args.no_swap else swap_copy(data, snaps[-1], i)
                for name in names:
                    timer = None
                    if name == "swap":  # activate the new snapshot a fifth into the run
                        timer = threading.Timer(args.seconds / 5, store.activate,
                                                (data, new_id))
                        timer.start()
                    script = scripts["hot2000"] if name == "hot2000" else \
                        starting_at(scripts["distinct"], start)
                    runs[name].append(wrk(ours_port, script, args.seconds, args.connections,
                                         ours.pid))
                    if name != "hot2000":  # the next run goes on where this one stopped
                        start += runs[name][-1]["requests"] + args.connections
                    if timer is not None:
                        timer.join()
                    after = ceiling_now()  # bracketed: drift of the machine cancels out
                    ratios[name].append(runs[name][-1]["rps"] / ((before + after) / 2))
                    before = after
                rss = f", RssAnon {memory_mib(ours.pid)['RssAnon']:.0f} MiB" \
                    if args.workers == 1 else ""
                print(f"run {i + 1}: " + ", ".join(
                    f"{k} {runs[k][-1]['rps']:,.0f} req/s ({ratios[k][-1]:.2f}, "
                    f"p99 {runs[k][-1]['p99'] / 1000:.1f} ms)" for k in ratios) + rss,
                    flush=True)
            memory = memory_mib(ours.pid)
        finally:
            for p in (ours, ceiling):
                p.terminate()
                p.wait(timeout=30)
    what = f"{args.file.name}" if args.file else \
        f"{args.years} year(s) x {args.rows:,} synthetic candidates"
    print(f"\n--workers {args.workers}, {what}, {args.connections} connections, "
          f"{args.seconds} s x {args.runs} runs; medians; ratio = median over runs of "
          f"req/s / mean of the ceiling runs just before and after")
    print(f"{'':<34}{'req/s':>10}{'ratio':>8}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}"
          f"{'CPU us/req':>11}{'CPU ratio':>10}")
    ceiling_cpu = statistics.median(r["cpu_us"] for r in runs["ceiling"])
    goals = {"distinct": ("(a) every SBD different", 0.85, 10),
             "hot2000": ("(b) hot set of 2,000", 0.92, 10),
             "swap": ("(c) (a) with a snapshot swap", None, 25)}
    for name in ["ceiling", *names]:
        label, ratio_goal, p99_goal = goals.get(name, ("ceiling", None, None))
        rs = runs[name]
        rps = statistics.median(r["rps"] for r in rs)
        ratio = statistics.median(ratios[name]) if name in ratios else 1.0
        p50 = statistics.median(r["p50"] for r in rs) / 1000
        p99 = statistics.median(r["p99"] for r in rs) / 1000
        bad = sum(r["non2xx"] + r["errors"] for r in rs)
        notes = []
        if ratio_goal:
            notes.append(f"ratio >= {ratio_goal:.2f}")
        if p99_goal:
            notes.append(f"p99 <= {p99_goal} ms")
        note = f"  (goal {', '.join(notes)})" if notes else ""
        cpu = statistics.median(r["cpu_us"] for r in rs)
        print(f"{label:<34}{rps:>10,.0f}{ratio:>8.2f}{p50:>9.2f}{p99:>9.2f}{bad:>9}"
              f"{cpu:>11.1f}{ceiling_cpu / cpu:>10.2f}{note}")
    print("CPU ratio = the ceiling's server CPU time per request / ours: what req/s would "
          "be on an idle machine, where the server, not the machine, is the limit")
    if args.file:
        print("(non-2xx: none expected; the load asks for the file's own SBDs)")
    print(f"start-up to ready: {startup:.1f} s (goal <= 10)")
    if args.workers == 1:
        print(f"worker RssAnon {memory['RssAnon']:.0f} MiB (goal <= 300); peak RSS "
              f"{memory['VmHWM']:.0f} MiB, of which mapped snapshot pages (not counted) "
              f"{memory['RssFile']:.0f} MiB at the end")


if __name__ == "__main__":
    main()
