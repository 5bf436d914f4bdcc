import asyncio

import pytest

from diemthi import lookup as lookup_mod, store
from diemthi.importer import import_files
from diemthi.lookup import Caches, Lookup, Served, Stats
from tests.conftest import write


@pytest.fixture
def info(data_dir, tmp_path):
    rows = "".join(f"01{i:06d},{i % 10},5\n" for i in range(1, 301))
    f = write(tmp_path / "a.csv", "sbd,toan,ngu_van\n" + rows)
    return store.get_snapshot(data_dir, import_files(data_dir, 2026, [f]).snapshot_id)


async def open_served(info, cache_size=100, negative_size=10, batch_size=256,
                      resident=False) -> Served:
    """The off-loop (aiosqlite) path unless ``resident``: that is where batching lives."""
    return await Served.open(info, Caches(cache_size, negative_size), batch_size=batch_size,
                             stats=Stats(), resident=resident)


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
    assert len(s.caches.negative) == 10
    reads = s.stats.store_reads
    assert await s.get("01999019") is None and s.stats.store_reads == reads
    assert s.stats.negative_hits == 1
    await s.close()


async def test_the_lru_is_bounded_and_holds_bytes(info):
    s = await open_served(info, cache_size=5)
    for i in range(1, 21):
        await s.get(f"01{i:06d}")
    bodies = s.caches.bodies
    assert len(bodies) == 5 and all(isinstance(v, bytes) for v in bodies.values())
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


async def test_a_resident_snapshot_is_read_on_the_loop_with_the_same_bytes(info):
    here = await open_served(info, resident=True)
    there = await open_served(info, resident=False)
    assert here.point is not None and here.db is None  # no thread at all for it
    for sbd in ("01000001", "01000150", "01000300", "01999999"):
        body = await here.get(sbd)
        assert body == await there.get(sbd) == store.lookup(info, sbd)
    assert here.stats.loop_reads == here.stats.store_reads == 4
    assert there.stats.loop_reads == 0
    await here.close()
    await there.close()


async def test_snapshots_sharing_the_caches_never_mix(data_dir, tmp_path, info):
    f = write(tmp_path / "b.csv", "sbd,toan,ngu_van\n01000001,1.25,2\n")
    other = store.get_snapshot(data_dir, import_files(data_dir, 2026, [f]).snapshot_id)
    caches = Caches(100, 10)
    old = await Served.open(info, caches, resident=True)
    new = await Served.open(other, caches, resident=True)
    assert b'"toan":1.0' in await old.get("01000001")
    assert b'"toan":1.25' in await new.get("01000001")
    assert await new.get("01000002") is None and await old.get("01000002") is not None
    await old.close()
    await new.close()


async def test_a_snapshot_too_big_for_memory_is_read_off_the_loop(info, monkeypatch):
    monkeypatch.setattr(lookup_mod, "available_memory", lambda: info.path.stat().st_size)
    s = await Served.open(info, Caches(100, 10))
    assert s.point is None and s.db is not None
    assert await s.get("01000003") == store.lookup(info, "01000003")
    assert s.stats.loop_reads == 0 and s.stats.store_reads == 1
    await s.close()


async def test_major_page_faults_send_reads_off_the_loop_until_read_through(info, monkeypatch):
    faults = iter(range(0, 10**6, 7))  # the counter moves: pages came from the disk
    monkeypatch.setattr(lookup_mod, "major_faults", lambda: next(faults))
    monkeypatch.setattr(lookup_mod, "FAULT_CHECK_EVERY", 2)
    s = await Served.open(info, Caches(0, 0), resident=True)
    await s.get("01000001")
    await s.get("01000002")  # the second read looks at the counter
    assert s.point is None and s.rewarming is not None
    rewarming = s.rewarming
    assert await s.get("01000004") == store.lookup(info, "01000004")  # off the loop
    await asyncio.wait_for(rewarming, timeout=30)
    assert s.point is not None and s.rewarming is None
    reads = s.stats.loop_reads
    await s.get("01000005")
    assert s.stats.loop_reads == reads + 1
    await s.close()


def test_prewarm_reads_the_file_through(tmp_path, monkeypatch):
    f = tmp_path / "f"
    f.write_bytes(b"x" * 3_000_000)
    assert lookup_mod.prewarm(f)
    monkeypatch.setattr(lookup_mod, "available_memory", lambda: 5_000_000)
    assert not lookup_mod.prewarm(f)


async def test_a_closed_snapshot_opens_nothing_new(info):
    s = await open_served(info, resident=True)
    await s.close()
    with pytest.raises(Exception, match="closed"):
        await s.get("01000001")
    assert s.db is None
