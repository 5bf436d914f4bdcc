"""What one cold lookup costs inside the process, step by step (no HTTP, no wrk).

    .venv/bin/python scripts/bench_miss.py SNAPSHOT.sqlite [--n 50000]

Opens the snapshot as the server does (prewarmed, its standing built), then times, per
SBD over N distinct SBDs: ``Served.get`` on a cold cache, asked --batch at a time as the
server's loop turns ask them (point reads back to back, then the bodies with their ranks
tails, the doorkeeper; one loop turn per batch, and the task ``gather`` makes for each
call, which the server has anyway: one per request), the SQLite point read alone, and
``Envelope.body`` alone. Tells whether a gap to the HTTP ceiling lies in computing the
answer or in sending it.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import time
from pathlib import Path

from diemthi import store
from diemthi.lookup import Caches, Served


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("snapshot", type=Path)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=25,
                        help="misses asked together (the server's loop turns averaged ~25)")
    args = parser.parse_args()
    info = store.SnapshotInfo(args.snapshot.stem, args.snapshot,
                              store.read_manifest(args.snapshot))
    started = time.perf_counter()
    served = await Served.open(info, Caches(100_000, 50_000))
    print(f"open (prewarm, standing): {time.perf_counter() - started:.1f} s")
    db = sqlite3.connect(store.readonly_uri(args.snapshot), uri=True)
    sbds = [f"{n:08d}" for (n,) in db.execute(
        "SELECT sbd FROM candidates ORDER BY random() LIMIT ?", (args.n,))]
    rows = {s: db.execute("SELECT body FROM candidates WHERE sbd = ?", (int(s),)).fetchone()[0]
            for s in sbds}

    def per_call(start: float) -> float:
        return (time.perf_counter() - start) / len(sbds) * 1e6

    start = time.perf_counter()
    for i in range(0, len(sbds), args.batch):
        await asyncio.gather(*(served.get(sbd) for sbd in sbds[i:i + args.batch]))
    print(f"Served.get, cold cache, {args.batch} at a time: {per_call(start):.1f} us")
    start = time.perf_counter()
    for sbd in sbds:
        served.point.execute("SELECT body FROM candidates WHERE sbd = ?",  # type: ignore
                             (int(sbd),)).fetchone()
    print(f"point read alone:       {per_call(start):.1f} us")
    start = time.perf_counter()
    for sbd in sbds:
        served.envelope.body(sbd, rows[sbd])
    print(f"Envelope.body alone:    {per_call(start):.1f} us")
    print(f"body size: {len(await served.get(sbds[0]) or b'')} bytes")
    await served.close()


if __name__ == "__main__":
    asyncio.run(main())
