"""``make loadtest``: serve a dataset, run the results-day spike with Locust, judge it.

    .venv/bin/python scripts/loadtest.py [--file SCORES.csv | --rows 100000]
                                         [--users 200] [--time 60] [--processes N]

Imports the given score file (or synthetic rows) into a temporary data dir, starts
``diemthi serve`` on a free loopback port with the chatbot on and its replies going to a
stand-in of Zalo's API (loadtests/zalo_standin.py), runs loadtests/locustfile.py headless
with the spike shape, writes Locust's CSV and HTML reports under reports/, prints a
summary and exits with Locust's verdict (0 pass, 1 a threshold breached).
"""

from __future__ import annotations

import argparse
import csv
import os
import secrets
import subprocess
import sys
import tempfile
import threading
from datetime import datetime
from pathlib import Path

import uvicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diemthi.importer import import_files  # noqa: E402
from diemthi.synthetic import write_csv  # noqa: E402
from loadtests.zalo_standin import ZaloStandIn  # noqa: E402
from support import free_port, wait_ready  # noqa: E402


def summary(stats_csv: Path) -> None:
    rows = list(csv.DictReader(open(stats_csv, encoding="utf-8")))
    print(f"\n{'endpoint':<30}{'requests':>10}{'failed':>8}{'req/s':>8}{'p50':>7}{'p95':>7}"
          f"{'p99':>7}  (ms)")
    for r in rows:
        name = (r["Name"] if r["Type"] else "") or "Aggregated"
        print(f"{name:<30}{r['Request Count']:>10}{r['Failure Count']:>8}"
              f"{float(r['Requests/s']):>8.0f}{r['50%']:>7}{r['95%']:>7}{r['99%']:>7}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", type=Path, default=os.environ.get("LOADTEST_FILE") or None,
                    help="score file to serve and ask for [env LOADTEST_FILE]")
    ap.add_argument("--rows", type=int, default=int(os.environ.get("LOADTEST_ROWS", 100_000)))
    ap.add_argument("--users", type=int, default=int(os.environ.get("LOADTEST_USERS", 200)),
                    help="peak users [env LOADTEST_USERS]")
    ap.add_argument("--time", default=os.environ.get("LOADTEST_TIME", "60s"),
                    help="whole run, e.g. 60s or 5m [env LOADTEST_TIME]")
    ap.add_argument("--processes", type=int, default=None,
                    help="Locust generator processes (-1: one per core)")
    args = ap.parse_args()
    bin_dir = Path(sys.executable).parent
    reports = ROOT / "reports"
    reports.mkdir(exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    with tempfile.TemporaryDirectory(prefix="loadtest-") as tmp:
        work = Path(tmp)
        source = args.file or write_csv(work / "scores.csv", args.rows)
        result = import_files(work / "data", 2026, [source], activate=True)
        print(f"serving {result.imported} candidates from {source}")

        zalo = ZaloStandIn()
        zalo_port = free_port()
        zalo_server = uvicorn.Server(uvicorn.Config(zalo.app(), host="127.0.0.1",
                                                   port=zalo_port, log_level="warning"))
        threading.Thread(target=zalo_server.run, daemon=True).start()

        port = free_port()
        zalo_env = {"DIEMTHI_ZALO_APP_ID": "loadtest-app",
                    "DIEMTHI_ZALO_OA_SECRET_KEY": secrets.token_hex(16),
                    "DIEMTHI_ZALO_ACCESS_TOKEN": "loadtest-token",
                    "DIEMTHI_ZALO_REFRESH_TOKEN": "loadtest-refresh",
                    "DIEMTHI_ZALO_APP_SECRET": "loadtest-secret",
                    "DIEMTHI_ZALO_API_BASE": f"http://127.0.0.1:{zalo_port}",
                    "DIEMTHI_ZALO_OAUTH_BASE": f"http://127.0.0.1:{zalo_port}"}
        server = subprocess.Popen(
            [str(bin_dir / "diemthi"), "serve", "--data-dir", str(work / "data"), "--port",
             str(port)], env={**os.environ, **zalo_env})
        try:
            wait_ready(f"http://127.0.0.1:{port}/readyz", server, timeout=60)
            prefix = reports / f"loadtest-{stamp}"
            cmd = [str(bin_dir / "locust"), "-f", str(ROOT / "loadtests" / "locustfile.py"),
                   "--headless", "-H", f"http://127.0.0.1:{port}", "-u", str(args.users),
                   "-r", str(args.users), "-t", args.time, "--csv", str(prefix),
                   "--html", f"{prefix}.html", "--only-summary"]
            if args.processes:
                cmd += ["--processes", str(args.processes)]
            env = {**os.environ, **zalo_env, "DIEMTHI_LOADTEST_SBDS": str(source),
                   "DIEMTHI_LOADTEST_SHAPE": os.environ.get("DIEMTHI_LOADTEST_SHAPE", "spike")}
            code = subprocess.run(cmd, env=env).returncode
        finally:
            server.terminate()
            server.wait(timeout=30)
            zalo_server.should_exit = True
        summary(Path(f"{prefix}_stats.csv"))
        print(f"\nZalo stand-in received {len(zalo.sent)} replies")
        print(f"reports: {prefix}_stats.csv, {prefix}.html")
        print("verdict:", "PASS" if code == 0 else "FAIL")
        sys.exit(code)


if __name__ == "__main__":
    main()
