"""The chatbot's two speeds: webhook events accepted per second (durable), and the time to
drain N queued messages at a given send rate.

    .venv/bin/python scripts/bench_chatbot.py [--seconds 5] [--connections 64]
                                              [--drain 500] [--rate 100]

(1) Accept: one ``diemthi serve`` worker with the chatbot on and its durable store; wrk
(``apt-get install wrk``) posts distinct signed ``user_send_text`` events, pre-signed by
this script, for --seconds. Events/s = 200 answers / seconds; the store must then hold
at least that many events (each was committed before its 200). Goal ≥ 3,000/s. In the
same run, bracketing it, the ceiling of the stack: a bare Starlette POST route that
reads the body and answers 200 (scripts/ceiling_app.py, same uvicorn loop and parser).
(2) Drain: --drain messages already in the store, a fresh server sending at --rate to the
stand-in of Zalo (loopback, answering at once); the time from the first send to the last
against (N - 1) / rate. Goal: within 5%.
Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from diemthi.chatbot.outbox import FILENAME, Event, Store  # noqa: E402
from diemthi.chatbot.signature import sign  # noqa: E402
from diemthi.importer import import_files  # noqa: E402
from loadtests.zalo_standin import ZaloStandIn  # noqa: E402
from support import WRK_DONE, free_port, run_wrk, wait_ready  # noqa: E402

APP_ID, SECRET = "bench-app", "bench-secret"

LUA = r"""
local bodies, headers = {}, {}
local n = 0
for line in io.lines("%(path)s") do
  local tab = line:find("\t")
  n = n + 1
  headers[n] = line:sub(1, tab - 1)
  bodies[n] = line:sub(tab + 1)
end
local i = 0
request = function()
  i = i %% n + 1
  return wrk.format("POST", "/zalo/webhook",
    {["Content-Type"] = "application/json", ["X-ZEvent-Signature"] = headers[i]}, bodies[i])
end
"""


def start_standin() -> tuple[ZaloStandIn, str, uvicorn.Server]:
    zalo = ZaloStandIn()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(zalo.app(), host="127.0.0.1", port=port,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return zalo, f"http://127.0.0.1:{port}", server


def serve(data: Path, zalo_url: str, **env: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    environ = {**os.environ, "DIEMTHI_DATA_DIR": str(data), "DIEMTHI_ZALO_APP_ID": APP_ID,
               "DIEMTHI_ZALO_OA_SECRET_KEY": SECRET, "DIEMTHI_ZALO_ACCESS_TOKEN": "t",
               "DIEMTHI_ZALO_API_BASE": zalo_url, "DIEMTHI_ZALO_OAUTH_BASE": zalo_url,
               **{"DIEMTHI_" + k.upper(): v for k, v in env.items()}}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("diemthi")), "serve",
                             "--port", str(port)], env=environ,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
    return proc, port


def wrk(port: int, lua: Path, seconds: int, connections: int) -> dict:
    """One wrk run; only the events answered 200 count as taken."""
    r = run_wrk(port, lua, seconds, connections)
    r["rps"] = (r["requests"] - r["non2xx"]) / r["seconds"]
    return r


def accept(data: Path, zalo_url: str, seconds: int, connections: int, count: int,
           send_rate: float) -> dict:
    lines = []
    now = int(time.time() * 1000)
    for i in range(count):
        body = orjson.dumps({"app_id": APP_ID, "event_name": "user_send_text",
                             "timestamp": str(now), "sender": {"id": f"u{i}"},
                             "recipient": {"id": "oa"},
                             "message": {"msg_id": f"bench-{i}", "text": f"sbd 0800{i % 9000:04d}"}})
        lines.append(sign(APP_ID, body, str(now), SECRET) + "\t" + body.decode())
    bodies = data / "bodies.tsv"
    bodies.write_text("\n".join(lines) + "\n")
    lua = data / "post.lua"
    lua.write_text(LUA % {"path": bodies} + WRK_DONE)
    ceiling_port = free_port()
    ceiling = subprocess.Popen([str(Path(sys.executable).with_name("uvicorn")), "--app-dir",
                                str(ROOT / "scripts"), "ceiling_app:app", "--port",
                                str(ceiling_port), "--loop", "uvloop", "--http", "httptools",
                                "--no-access-log", "--log-level", "warning"])
    proc, port = serve(data, zalo_url, zalo_send_rate=str(send_rate))
    try:
        wait_ready(f"http://127.0.0.1:{ceiling_port}/v1/scores/01000001", ceiling)
        before = wrk(ceiling_port, lua, seconds, connections)
        r = wrk(port, lua, seconds, connections)
        after = wrk(ceiling_port, lua, seconds, connections)
    finally:
        for p in (proc, ceiling):
            p.terminate()
            p.wait(timeout=30)
    db = sqlite3.connect(data / FILENAME)
    (stored,) = db.execute("SELECT count(*) FROM events").fetchone()
    ok = r["requests"] - r["non2xx"]
    ceiling_rps = (before["rps"] + after["rps"]) / 2
    return {"events_per_s": ok / r["seconds"], "ceiling": ceiling_rps,
            "ratio": ok / r["seconds"] / ceiling_rps, "answered_200": ok, "non2xx": r["non2xx"],
            "errors": r["errors"], "stored": stored, "p50_ms": r["p50"] / 1000,
            "p99_ms": r["p99"] / 1000, "wrapped": ok > count}


def drain(data: Path, zalo: ZaloStandIn, zalo_url: str, n: int, rate: float) -> dict:
    store = Store(data / FILENAME)
    now = time.time()
    store.accept([Event(f"d{i}", f"du{i}", "user_send_text", "xin chào", now)
                  for i in range(n)], now)
    store.close()
    zalo.sent.clear()
    proc, _ = serve(data, zalo_url, zalo_send_rate=str(rate))
    try:
        deadline = time.monotonic() + n / rate * 3 + 60
        while len(zalo.sent) < n and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    times = [s["at"] for s in zalo.sent]
    took = max(times) - min(times)
    ideal = (n - 1) / rate
    return {"messages": len(times), "rate": rate, "seconds": took, "ideal": ideal,
            "ratio": took / ideal}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--events", type=int, default=60_000, help="distinct signed events")
    parser.add_argument("--send-rate", type=float, default=50.0,
                        help="the server's send rate while it accepts (the sender runs too)")
    parser.add_argument("--drain", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100.0)
    args = parser.parse_args()
    zalo, zalo_url, server = start_standin()
    original = zalo._ok

    def stamped(record: dict, quota: dict | None):  # when each send arrived
        record["at"] = time.monotonic()
        return original(record, quota)

    zalo._ok = stamped  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        sample = ROOT / "data" / "sample"
        import_files(data, 2026, sorted(sample.glob("*.csv")), activate=True)
        a = accept(data, zalo_url, args.seconds, args.connections, args.events, args.send_rate)
        print(f"accept: {a['events_per_s']:,.0f} events/s on one worker (goal ≥ 3,000); "
              f"ceiling of the stack {a['ceiling']:,.0f}/s, ratio {a['ratio']:.2f}; "
              f"{a['answered_200']} answered 200, {a['stored']} in the store, "
              f"non-2xx {a['non2xx']}, errors {a['errors']}, p50 {a['p50_ms']:.1f} ms, "
              f"p99 {a['p99_ms']:.1f} ms" + (" (events wrapped: raise --events)"
                                              if a["wrapped"] else ""))
        fresh = Path(tmp) / "drain"
        import_files(fresh, 2026, sorted(sample.glob("*.csv")), activate=True)
        d = drain(fresh, zalo, zalo_url, args.drain, args.rate)
        print(f"drain: {d['messages']} messages at {d['rate']:g}/s took {d['seconds']:.2f} s, "
              f"ideal {(d['ideal']):.2f} s, ratio {d['ratio']:.3f} (goal ≤ 1.05)")
    server.should_exit = True


if __name__ == "__main__":
    main()
