"""Hot-set throughput through the nginx edge (deploy/nginx.conf) against nginx serving a
static file of the same size, in one run, with wrk on 127.0.0.1.

    .venv/bin/python scripts/bench_edge.py [--rows 1200000] [--workers 1] [--seconds 10]
                                           [--runs 3] [--cache-dir DIR]

Serves synthetic candidates with ``diemthi serve --workers N`` behind the shipped edge
config (ports substituted, and the per-client rate and burst raised: wrk connects from
127.0.0.1; the limit is still checked on every request). Beside it, a second nginx with
the same worker settings serves one static file as large as a lookup body. wrk (64
connections, one thread) asks the edge for a hot set of 2,000 SBDs (after one warm-up
pass fills the cache) and the static server for the same paths (all one file), in turn,
each edge run bracketed by static runs; then once each for the same hot set straight to
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
        listen 127.0.0.1:%(port)d;
        root static;
        # the same requests as the edge gets (and so the same work for wrk), one file
        location ~ ^/v1/scores/ { rewrite ^ /body.json break; }
    }
}
"""


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
                              "total": args.rows, "hot": 2000, "start": 0} + WRK_DONE)
        distinct, app_distinct = work / "distinct.lua", work / "app_distinct.lua"
        for script, start in ((distinct, 0), (app_distinct, args.rows // 2)):  # no overlap
            script.write_text(HOT % {"codes": ",".join(f'"{c}"' for c in codes), "per": per,
                                     "total": args.rows, "hot": 0, "start": start} + WRK_DONE)
        app_port, edge_port, static_port = free_port(), free_port(), free_port()
        prefix = edge_prefix(edge_port, app_port, unlimited=True)
        try:
            env = {**os.environ, "DIEMTHI_DATA_DIR": str(work / "data"),
                   "DIEMTHI_TRUSTED_PROXIES": "127.0.0.1/32"}
            procs.append(subprocess.Popen(
                [str(bin_dir / "diemthi"), "serve", "--port", str(app_port), "--workers",
                 str(args.workers)], env=env, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
            wait_ready(f"http://127.0.0.1:{app_port}/readyz", procs[0])
            sample = urllib.request.urlopen(
                f"http://127.0.0.1:{app_port}/v1/scores/{codes[0]}000001").read()
            (Path(prefix) / "static").mkdir(mode=0o755)
            (Path(prefix) / "static" / "body.json").write_bytes(sample)
            (Path(prefix) / "deploy" / "static.conf").write_text(
                STATIC_CONF % {"port": static_port})
            for conf in ("deploy/nginx.conf", "deploy/static.conf"):
                procs.append(subprocess.Popen([nginx, "-p", prefix, "-c", conf, "-g",
                                               "daemon off;"]))
            wait_ready(f"http://127.0.0.1:{edge_port}/healthz", procs[1])
            wait_ready(f"http://127.0.0.1:{static_port}/v1/scores/01000001", procs[2])
            wrk(edge_port, hot, 3, args.connections)  # warm-up: the hot set into the cache
            runs: dict[str, list[dict]] = {"static": [], "edge": [], "app": [], "cold": [],
                                           "app_cold": []}
            ratios = []
            runs["static"].append(wrk(static_port, hot, args.seconds, args.connections))
            for i in range(args.runs):
                runs["edge"].append(wrk(edge_port, hot, args.seconds, args.connections))
                runs["static"].append(wrk(static_port, hot, args.seconds,
                                          args.connections))
                ratios.append(runs["edge"][-1]["rps"] /
                              ((runs["static"][-2]["rps"] + runs["static"][-1]["rps"]) / 2))
                print(f"run {i + 1}: edge {runs['edge'][-1]['rps']:,.0f} req/s, static "
                      f"{runs['static'][-1]['rps']:,.0f} req/s ({ratios[-1]:.2f})", flush=True)
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
    print(f"\nhot set of 2,000 SBDs, {args.connections} connections, {args.seconds} s x "
          f"{args.runs} runs, diemthi --workers {args.workers}; medians; ratio = edge req/s "
          f"/ mean of the static runs just before and after")
    print(f"{'':<38}{'req/s':>10}{'ratio':>8}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}")
    for name, label in (("static", "nginx, static file of the same size"),
                        ("edge", "edge (deploy/nginx.conf), cached"),
                        ("app", "the app alone, no edge"),
                        ("cold", "edge, every SBD different (misses)"),
                        ("app_cold", "the app alone, every SBD different")):
        rs = runs[name]
        rps = statistics.median(r["rps"] for r in rs)
        ratio = statistics.median(ratios) if name == "edge" else \
            rps / statistics.median(r["rps"] for r in runs["static"])
        p50 = statistics.median(r["p50"] for r in rs) / 1000
        p99 = statistics.median(r["p99"] for r in rs) / 1000
        bad = sum(r["non2xx"] + r["errors"] for r in rs)
        note = "  (goal >= 0.80)" if name == "edge" else ""
        print(f"{label:<38}{rps:>10,.0f}{ratio:>8.2f}{p50:>9.2f}{p99:>9.2f}{bad:>9}{note}")


if __name__ == "__main__":
    main()
