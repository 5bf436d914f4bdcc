"""Hot-set throughput through the nginx edge (deploy/nginx.conf) against nginx serving
static files of the same size, in one run, with wrk on 127.0.0.1.

    .venv/bin/python scripts/bench_edge.py [--rows 1200000] [--workers 1] [--seconds 10]
                                           [--runs 3] [--cache-dir DIR]

Serves synthetic candidates with ``diemthi serve --workers N`` behind the shipped edge
config (ports substituted, and the per-client rate and burst raised: wrk connects from
127.0.0.1; the limit is still checked on every request). Beside it, a second nginx with
the same worker settings serves static files, two ways: each path of the hot set as a
file holding that SBD's own body (2,000 files of the edge's very bytes: like for like),
and every path as one file as large as a lookup body (one page, always in the CPU's
caches: the kindest reference). wrk (64 connections, one thread) asks each for a hot set
of 2,000 SBDs (the edge after one warm-up pass fills its cache), in turn, each edge run
bracketed by runs of both references; then once each for the same hot set straight to
the app, and for every SBD different (cold) through the edge and straight to the app.
Needs nginx and wrk (installed from Debian when missing and we are root).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from bench_lookup import cached_snapshot
from diemthi import store
from diemthi.reference import provinces
from support import (WRK_DONE, edge_prefix, free_port, need_nginx, need_wrk,  # noqa: E402
                     run_wrk as wrk, wait_ready)

HOT_SET = 2000  # SBDs asked again and again
HOT = r"""
local codes = {%(codes)s}
local per, total, hot = %(per)d, %(total)d, %(hot)d
local counter = %(start)d
request = function()
  counter = counter + 1
  local k = counter
  if hot > 0 then k = math.random(0, hot - 1) end
  k = (k * 7919) %% total
  return wrk.format("GET", string.format("/v1/scores/%%s%%06d", codes[math.floor(k / per) + 1], k %% per + 1))
end
"""
STATIC_CONF = """
worker_processes auto;
pid logs/static.pid;
error_log logs/static-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile off;  # as deploy/diemthi-proxy.conf's cached routes: like for like
    tcp_nodelay on;
    keepalive_requests 10000;
    open_file_cache max=20000 inactive=60s;  # as deploy/nginx.conf: like for like
    default_type application/json;
    server {
        listen 127.0.0.1:%(each)d;
        root static;
        # the same requests as the edge gets (and so the same work for wrk): each path's
        # own file, static/v1/scores/SBD, holding the body the edge has cached for it
        location ~ ^/v1/scores/ { }
    }
    server {
        listen 127.0.0.1:%(one)d;
        root static;
        # the same requests, every one answered from the same file
        location ~ ^/v1/scores/ { rewrite ^ /body.json break; }
    }
}
"""


def hot_set(codes: list[str], per: int, total: int, hot: int) -> list[str]:
    """The SBDs the HOT script asks for when ``hot`` > 0 (its formula, in Python)."""
    out = []
    for k in range(hot):
        k = (k * 7919) % total
        out.append(f"{codes[k // per]}{k % per + 1:06d}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_200_000)
    ap.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "diemthi-bench",
                    help="generated snapshots, shared with bench_lookup.py")
    ap.add_argument("--workers", type=int, default=1, help="diemthi serve --workers")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args()
    nginx = need_nginx()
    need_wrk()
    codes = sorted(provinces(2026))
    per = -(-args.rows // len(codes))
    bin_dir = Path(sys.executable).parent
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as tmp:
        work = Path(tmp)
        snapshot = cached_snapshot(args.cache_dir, 2026, args.rows)
        link = store.snapshot_path(work / "data", snapshot.stem)
        link.parent.mkdir(parents=True)
        link.symlink_to(snapshot)
        store.activate(work / "data", snapshot.stem)
        hot = work / "hot.lua"
        hot.write_text(HOT % {"codes": ",".join(f'"{c}"' for c in codes), "per": per,
                              "total": args.rows, "hot": HOT_SET, "start": 0} + WRK_DONE)
        distinct, app_distinct = work / "distinct.lua", work / "app_distinct.lua"
        for script, start in ((distinct, 0), (app_distinct, args.rows // 2)):  # no overlap
            script.write_text(HOT % {"codes": ",".join(f'"{c}"' for c in codes), "per": per,
                                     "total": args.rows, "hot": 0, "start": start} + WRK_DONE)
        app_port, edge_port, each_port, one_port = (free_port() for _ in range(4))
        prefix = edge_prefix(edge_port, app_port, unlimited=True)
        try:
            env = {**os.environ, "DIEMTHI_DATA_DIR": str(work / "data"),
                   "DIEMTHI_TRUSTED_PROXIES": "127.0.0.1/32"}
            procs.append(subprocess.Popen(
                [str(bin_dir / "diemthi"), "serve", "--port", str(app_port), "--workers",
                 str(args.workers)], env=env, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
            wait_ready(f"http://127.0.0.1:{app_port}/readyz", procs[0])
            static = Path(prefix) / "static"
            (static / "v1" / "scores").mkdir(mode=0o755, parents=True)
            hot_sbds = hot_set(codes, per, args.rows, HOT_SET)
            for sbd in hot_sbds:  # each path of the hot set, its own body
                (static / "v1" / "scores" / sbd).write_bytes(urllib.request.urlopen(
                    f"http://127.0.0.1:{app_port}/v1/scores/{sbd}").read())
            (static / "body.json").write_bytes(urllib.request.urlopen(
                f"http://127.0.0.1:{app_port}/v1/scores/{codes[0]}000001").read())
            for folder in (static, static / "v1", static / "v1" / "scores"):
                folder.chmod(0o755)  # nginx's workers (user nobody) read them
            (Path(prefix) / "deploy" / "static.conf").write_text(
                STATIC_CONF % {"each": each_port, "one": one_port})
            for conf in ("deploy/nginx.conf", "deploy/static.conf"):
                procs.append(subprocess.Popen([nginx, "-p", prefix, "-c", conf, "-g",
                                               "daemon off;"]))
            wait_ready(f"http://127.0.0.1:{edge_port}/healthz", procs[1])
            wait_ready(f"http://127.0.0.1:{one_port}/v1/scores/01000001", procs[2])
            wait_ready(f"http://127.0.0.1:{each_port}/v1/scores/{hot_sbds[0]}", procs[2])
            wrk(edge_port, hot, 3, args.connections)  # warm-up: the hot set into the cache
            references = {"each": each_port, "one": one_port}
            runs: dict[str, list[dict]] = {"each": [], "one": [], "edge": [], "app": [],
                                           "cold": [], "app_cold": []}
            ratios: dict[str, list[float]] = {"each": [], "one": []}

            def references_now() -> None:
                for name, port in references.items():
                    runs[name].append(wrk(port, hot, args.seconds, args.connections))

            references_now()
            for i in range(args.runs):
                runs["edge"].append(wrk(edge_port, hot, args.seconds, args.connections))
                references_now()
                for name in references:  # bracketed: drift of the machine cancels out
                    ratios[name].append(runs["edge"][-1]["rps"] / (
                        (runs[name][-2]["rps"] + runs[name][-1]["rps"]) / 2))
                print(f"run {i + 1}: edge {runs['edge'][-1]['rps']:,.0f} req/s; static, "
                      f"each path its file {runs['each'][-1]['rps']:,.0f} "
                      f"({ratios['each'][-1]:.2f}), one file {runs['one'][-1]['rps']:,.0f} "
                      f"({ratios['one'][-1]:.2f})", flush=True)
            runs["app"].append(wrk(app_port, hot, args.seconds, args.connections))
            # every SBD different: misses at the edge, proxied (and stored) one by one
            runs["cold"].append(wrk(edge_port, distinct, args.seconds, args.connections))
            runs["app_cold"].append(wrk(app_port, app_distinct, args.seconds, args.connections))
        finally:
            for p in reversed(procs):
                p.send_signal(signal.SIGQUIT if p is not procs[0] else signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
            shutil.rmtree(prefix, ignore_errors=True)
    print(f"\nhot set of {HOT_SET:,} SBDs, {args.connections} connections, {args.seconds} s x "
          f"{args.runs} runs, diemthi --workers {args.workers}; medians; edge ratio = edge "
          f"req/s / mean of that reference's runs just before and after")
    print(f"{'':<48}{'req/s':>10}{'ratio':>8}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
    each = statistics.median(r["rps"] for r in runs["each"])
    for name, label in (("each", "static, each path its own file (like for like)"),
                        ("one", "static, every path one file"),
                        ("edge", "edge (deploy/nginx.conf), cached"),
                        ("app", "the app alone, no edge"),
                        ("cold", "edge, every SBD different (misses)"),
                        ("app_cold", "the app alone, every SBD different")):
        rs = runs[name]
        rps = statistics.median(r["rps"] for r in rs)
        p50 = statistics.median(r["p50"] for r in rs) / 1000
        p99 = statistics.median(r["p99"] for r in rs) / 1000
        bad = sum(r["non2xx"] + r["errors"] for r in rs)
        note = ""
        if name == "edge":
            ratio = statistics.median(ratios["each"])
            note = (f"  (goal >= 0.80; against one file: "
                    f"{statistics.median(ratios['one']):.2f})")
        else:
            ratio = rps / each
        print(f"{label:<48}{rps:>10,.0f}{ratio:>8.2f}{p50:>9.2f}{p99:>9.2f}{bad:>9}{note}")
    print("ratio: to the edge's two references for the edge (bracketed runs), else to the "
          "like-for-like static median")


if __name__ == "__main__":
    main()
