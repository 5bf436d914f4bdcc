"""What a worker serving many years keeps in memory, in process (no HTTP, no wrk).

    .venv/bin/python scripts/bench_memory.py [--years 11] [--rows 1100000] [--rounds 4]

Opens a ``Lookup`` over the same generated snapshots as ``bench_lookup.py --years N``
(kept in --cache-dir, built on first use), then prints RssAnon (what the memory goal
counts) when ready and after each round of reads of random years: 40,000 SBDs asked
twice (the doorkeeper lets the second read into the LRU) and 60,000 asked once (as a
crawler would). Also what the standings themselves hold (tracemalloc, ranks and phổ
điểm of every year). The LRU fills to its size (``--cache-size``) and RssAnon stops there.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import tempfile
import tracemalloc
from pathlib import Path

from bench_lookup import prepare
from diemthi.lookup import Lookup
from diemthi.reference import provinces
from diemthi.settings import Settings


def rss_anon_mib() -> float:
    for line in open(f"/proc/{os.getpid()}/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--years", type=int, default=11)
    ap.add_argument("--rows", type=int, default=1_100_000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--cache-size", type=int, default=Settings().cache_size)
    ap.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "diemthi-bench")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        data, _ = prepare(argparse.Namespace(file=None, years=args.years, rows=args.rows,
                                             cache_dir=args.cache_dir), Path(tmp))
        before = rss_anon_mib()
        tracemalloc.start()
        lookup = Lookup(data, cache_size=args.cache_size)
        await lookup.refresh()
        gc.collect()
        traced = tracemalloc.get_traced_memory()[0] / 2**20
        tracemalloc.stop()
        print(f"{args.years} year(s) x {args.rows:,}: ready, RssAnon {rss_anon_mib():.0f} MiB "
              f"({before:.0f} before opening); standings and caches traced {traced:.0f} MiB")
        years = sorted(lookup.served)
        codes = {y: sorted(provinces(y)) for y in years}

        def sbd(year: int, i: int) -> str:
            per = -(-args.rows // len(codes[year]))
            return f"{codes[year][i // per]}{i % per + 1:06d}"

        rng = random.Random(1)
        for n in range(args.rounds):
            twice = [(rng.choice(years), rng.randrange(args.rows)) for _ in range(40_000)]
            for _ in range(2):
                for year, i in twice:
                    await lookup.served[year].get(sbd(year, i))
            for _ in range(60_000):
                year = rng.choice(years)
                await lookup.served[year].get(sbd(year, rng.randrange(args.rows)))
            gc.collect()
            print(f"round {n + 1}: RssAnon {rss_anon_mib():.0f} MiB, "
                  f"LRU {len(lookup.caches.bodies):,} of {args.cache_size:,}")
        await lookup.close()


if __name__ == "__main__":
    asyncio.run(main())
