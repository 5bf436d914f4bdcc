import asyncio

import pytest

from diemthi import store
from diemthi.importer import import_files
from diemthi.lookup import Lookup, Served, Stats
from tests.conftest import write


@pytest.fixture
def info(data_dir, tmp_path):
    rows = "".join(f"01{i:06d},{i % 10},5\n" for i in range(1, 301))
    f = write(tmp_path / "a.csv", "sbd,toan,ngu_van\n" + rows)
    return store.get_snapshot(data_dir, import_files(data_dir, 2026, [f]).snapshot_id)


async def open_served(info, **kw) -> Served:
    sizes = dict(cache_size=100, negative_size=10, batch_size=256, stats=Stats())
    sizes.update(kw)
    return await Served.open(info, **sizes)


async def test_concurrent_misses_for_one_sbd_make_one_read(info):
    s = await open_served(info)
    bodies = await asyncio.gather(*[s.get("01000007") for _ in range(50)])
    assert len(set(bodies)) == 1 and b'"toan":7.0' in bodies[0]
    assert (s.stats.store_reads, s.stats.store_keys, s.stats.misses) == (1, 1, 50)
    assert await s.get("01000007") == bodies[0] and s.stats.hits == 1
    await s.close()


async def test_misses_arriving_together_share_a_round_trip(info):
    s = await open_served(info, batch_size=64)
    sbds = [f"01{i:06d}" for i in range(1, 201)]
    bodies = await asyncio.gather(*[s.get(x) for x in sbds])
    assert all(b is not None and x.encode() in b for x, b in zip(sbds, bodies))
    assert s.stats.store_keys == 200 and s.stats.store_reads == 4  # 200 in batches of 64
    await s.close()


async def test_unknown_sbds_are_cached_and_bounded(info):
    s = await open_served(info, negative_size=10)
    for i in range(20):
        assert await s.get(f"01999{i:03d}") is None
    assert len(s.negative) == 10
    reads = s.stats.store_reads
    assert await s.get("01999019") is None and s.stats.store_reads == reads
    assert s.stats.negative_hits == 1
    await s.close()


async def test_the_lru_is_bounded_and_holds_bytes(info):
    s = await open_served(info, cache_size=5)
    for i in range(1, 21):
        await s.get(f"01{i:06d}")
    assert len(s.cache) == 5 and all(isinstance(v, bytes) for v in s.cache.values())
    await s.close()


async def test_lookup_follows_the_pointer(data_dir, tmp_path, info):
    lookup = Lookup(data_dir)
    await lookup.refresh()
    assert not lookup.ready
    store.activate(data_dir, info.id)
    await lookup.refresh()
    assert lookup.latest_year == 2026 and lookup.served[2026].id == info.id
    await lookup.close()


async def test_a_cancelled_request_does_not_cancel_the_others(info):
    s = await open_served(info)
    first = asyncio.ensure_future(s.get("01000009"))
    second = asyncio.ensure_future(s.get("01000009"))
    await asyncio.sleep(0)
    first.cancel()
    assert b'"toan":9.0' in await second
    assert first.cancelled() and s.stats.store_keys == 1
    await s.close()
