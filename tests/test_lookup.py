import asyncio
import gc
import sqlite3
import sys

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


async def wait_until(predicate, seconds: float = 10) -> None:
    """Wait on a condition with a deadline (never a fixed sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def second_snapshot(data_dir, tmp_path) -> str:
    f = write(tmp_path / "b.csv", "sbd,toan,ngu_van\n01000001,9,9\n")
    return import_files(data_dir, 2026, [f]).snapshot_id


async def test_an_unused_old_snapshot_closes_at_the_switch(data_dir, tmp_path, info):
    store.activate(data_dir, info.id)
    lookup = Lookup(data_dir)
    await lookup.refresh()
    old = lookup.served[2026]
    store.activate(data_dir, second_snapshot(data_dir, tmp_path))
    await lookup.refresh()
    assert lookup.served[2026] is not old and old.retired
    await wait_until(lambda: old.closed)  # not 30 s later: nobody was using it
    await lookup.close()


async def test_an_old_snapshot_stays_open_until_its_last_user_is_done(data_dir, tmp_path, info):
    store.activate(data_dir, info.id)
    lookup = Lookup(data_dir)
    await lookup.refresh()
    old = lookup.served[2026]
    with old.hold():  # e.g. the chatbot answering a message with three SBDs
        store.activate(data_dir, second_snapshot(data_dir, tmp_path))
        await lookup.refresh()
        assert old.retired and not old.closed
        assert b'"toan":3.0' in await old.get("01000003")  # still reads from the old file
    await wait_until(lambda: old.closed)
    await lookup.close()


async def test_close_is_idempotent_and_waits_for_pending_reads(info):
    s = await open_served(info)
    pending = [asyncio.ensure_future(s.get(f"01{i:06d}")) for i in range(1, 50)]
    await asyncio.sleep(0)  # the reads are queued
    await asyncio.gather(s.close(), s.close())
    assert all(b is not None for b in await asyncio.gather(*pending))
    assert s.closed
    await s.close()  # and again, later


def bad_manifest_snapshot(data_dir) -> str:
    w = store.SnapshotWriter(data_dir, "2026-no-rows")
    w.add([1000001], [b'"scores":{}}'])
    w.finish({"year": 2026})  # no "rows": a key missing
    return w.id


@pytest.mark.parametrize("breakage", ["invalid utf-8", "missing manifest key", "garbage file"])
async def test_the_watcher_survives_anything_and_says_so(data_dir, tmp_path, info, breakage):
    store.activate(data_dir, info.id)
    lookup = Lookup(data_dir)
    await lookup.refresh()
    watcher = asyncio.ensure_future(lookup.watch(0.01))
    pointer = store.pointer_path(data_dir, 2026)
    if breakage == "invalid utf-8":
        pointer.write_bytes(b"\xff\xfe\xfd")
    elif breakage == "missing manifest key":
        store.activate(data_dir, bad_manifest_snapshot(data_dir))
    else:
        (store.snapshots_dir(data_dir) / "2026-junk.sqlite").write_bytes(b"junk" * 100)
        pointer.write_text("2026-junk")
    await wait_until(lambda: lookup.stats.watch_errors > 0)
    assert lookup.served[2026].id == info.id  # the good one stays served
    assert lookup.problems and not lookup.ready
    new = second_snapshot(data_dir, tmp_path)
    store.activate(data_dir, new)  # a later activation is still picked up
    await wait_until(lambda: lookup.served[2026].id == new)
    await wait_until(lambda: lookup.ready)
    assert not watcher.done()
    watcher.cancel()
    await lookup.close()


async def test_the_current_year_never_falls_back(data_dir, tmp_path):
    old = import_files(data_dir, 2025, [write(tmp_path / "x.csv", "sbd,toan\n01000001,5\n")],
                       activate=True).snapshot_id
    lookup = Lookup(data_dir)
    await lookup.refresh()
    assert lookup.current_year == 2025 and lookup.ready
    (data_dir / "active" / "2026").write_text("2026-missing\n")  # activated, cannot open
    await lookup.refresh()
    assert lookup.current_year == 2026 and 2026 not in lookup.served
    assert any("2026" in p for p in lookup.problems) and not lookup.ready
    pinned = Lookup(data_dir, year=2024)
    await pinned.refresh()
    assert pinned.current_year == 2024 and any("2024" in p for p in pinned.problems)
    assert lookup.served[2025].id == old
    await lookup.close()
    await pinned.close()


async def test_a_missing_data_dir_is_a_problem_said_in_the_log(tmp_path, caplog):
    lookup = Lookup(tmp_path / "nowhere")
    with caplog.at_level("ERROR", logger="diemthi.lookup"):
        await lookup.refresh()
        await lookup.refresh()
    assert [r.message for r in caplog.records].count(
        f"the data dir {tmp_path / 'nowhere'} does not exist: nothing to serve") == 1
    assert any("nowhere" in p for p in lookup.problems) and not lookup.ready


async def test_refresh_outlives_any_exception(data_dir, info, monkeypatch):
    store.activate(data_dir, info.id)
    lookup = Lookup(data_dir)
    await lookup.refresh()

    def broken(data_dir):
        raise RuntimeError("something nobody foresaw")

    monkeypatch.setattr(store, "pointer_years", broken)
    await lookup.refresh()  # does not raise: startup and the watcher go on
    assert lookup.stats.watch_errors == 1 and not lookup.ready
    assert "something nobody foresaw" in " ".join(lookup.problems)
    assert lookup.served[2026].id == info.id
    monkeypatch.undo()
    await lookup.refresh()
    assert lookup.ready
    await lookup.close()


async def test_a_resident_snapshot_is_read_on_the_loop_with_the_same_bytes(info):
    here = await open_served(info, resident=True)
    there = await open_served(info, resident=False)
    assert here.point is not None and here.db is None  # no thread at all for it
    for sbd in ("01000001", "01000150", "01000300", "01999999"):
        body = await here.get(sbd)
        assert body == await there.get(sbd) == store.lookup(info, sbd, here.standing)
    assert here.stats.loop_reads == here.stats.store_reads == 4
    assert there.stats.loop_reads == 0
    await here.close()
    await there.close()


async def test_resident_misses_arriving_together_are_read_back_to_back(info, monkeypatch):
    here = await open_served(info, resident=True)
    batches = []
    read_rows = here._read_rows
    monkeypatch.setattr(here, "_read_rows", lambda batch: batches.append(batch) or read_rows(batch))
    asked = [f"01{i:06d}" for i in (1, 2, 3, 2, 1, 400)]
    bodies = await asyncio.gather(*(here.get(sbd) for sbd in asked))
    assert batches == [["01000001", "01000002", "01000003", "01000400"]]  # each SBD once
    assert here.stats.loop_reads == here.stats.store_keys == 4 and here.stats.misses == 6
    assert bodies == [store.lookup(info, sbd, here.standing) for sbd in asked]
    assert bodies[-1] is None and bodies[0] == bodies[4]
    assert not here.waiting and not here.queue and here.users == 0
    await here.close()


def spoil(info, sbd: str) -> None:
    """A row edited after import (by hand, or bit rot): a score its snapshot's counts never
    saw, so its ranks cannot be written."""
    path = info.path
    path.chmod(0o644)
    with sqlite3.connect(path) as db:
        (body,) = db.execute("SELECT body FROM candidates WHERE sbd = ?", (int(sbd),)).fetchone()
        db.execute("UPDATE candidates SET body = ? WHERE sbd = ?",
                   (body.replace(b'"toan":', b'"toan":9.99,"x":', 1), int(sbd)))
    db.close()


async def test_a_bad_page_fails_the_sbds_on_it_alone(info):
    """A page of the snapshot gone bad after it was opened (a disk error): the SBDs stored
    on it answer an error, every other SBD read in the same loop turn is answered."""
    with sqlite3.connect(info.path) as db:
        pages = db.execute("SELECT pageno FROM dbstat WHERE name = 'candidates' "
                           "AND pagetype = 'leaf' ORDER BY pageno").fetchall()
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    assert len(pages) > 1, "the fixture spans several leaf pages"
    last = pages[-1][0]  # the leaf holding the highest SBDs
    s = await open_served(info, resident=True)  # opening reads every page: gone bad since
    with open(info.path, "r+b") as fh:  # its page type byte: no valid b-tree page type
        fh.seek((last - 1) * page_size)
        fh.write(b"\x42")
    answers = await asyncio.wait_for(asyncio.gather(
        s.get("01000001"), s.get("01000300"), s.get("01000002"), return_exceptions=True), 10)
    assert isinstance(answers[1], sqlite3.DatabaseError)
    assert b'"toan":1.0' in answers[0] and b'"toan":2.0' in answers[2]
    assert not s.waiting and not s.flushing and s.users == 0
    await s.close()


@pytest.mark.parametrize("resident", [True, False])
async def test_a_row_whose_body_cannot_be_made_fails_alone(info, resident):
    spoil(info, "01000002")
    s = await open_served(info, resident=resident)
    asked = [f"01{i:06d}" for i in (1, 2, 3, 2, 400)]
    answers = await asyncio.wait_for(  # a stranded waiter would wait forever
        asyncio.gather(*(s.get(sbd) for sbd in asked), return_exceptions=True), 10)
    assert isinstance(answers[1], KeyError) and answers[3] is answers[1]
    # the others of that loop turn are answered, the snapshot keeps serving
    assert b'"toan":1.0' in answers[0] and b'"toan":3.0' in answers[2] and answers[4] is None
    assert not s.waiting and not s.queue and not s.flushing and s.users == 0
    assert b'"toan":4.0' in await s.get("01000004")
    with pytest.raises(KeyError):  # not cached as unknown: asked again, it fails again
        await asyncio.wait_for(s.get("01000002"), 10)
    await s.close()


async def test_snapshots_sharing_the_caches_never_mix(data_dir, tmp_path, info):
    f = write(tmp_path / "b.csv", "sbd,toan,ngu_van\n01000001,1.25,2\n")
    other = store.get_snapshot(data_dir, import_files(data_dir, 2026, [f]).snapshot_id)
    caches = Caches(100, 10)
    old = await Served.open(info, caches, resident=True)
    new = await Served.open(other, caches, resident=True)
    assert b'"toan":1.0' in await old.get("01000001")
    assert b'"toan":1.25' in await new.get("01000001")
    assert await new.get("01000002") is None and await old.get("01000002") is not None
    turns = []
    read_due = caches._read_due
    caches._read_due = lambda: turns.append(list(caches.due)) or read_due()
    both = await asyncio.gather(old.get("01000009"), new.get("01000009"), old.get("01000010"))
    assert turns == [[old, new]]  # one loop turn reads the misses of every snapshot
    assert both == [store.lookup(info, "01000009", old.standing), None,
                    store.lookup(info, "01000010", old.standing)]
    await old.close()
    await new.close()


async def test_a_snapshot_too_big_for_memory_is_read_off_the_loop(info, monkeypatch):
    monkeypatch.setattr(lookup_mod, "available_memory", lambda: info.path.stat().st_size)
    s = await Served.open(info, Caches(100, 10))
    assert s.point is None and s.db is not None
    assert await s.get("01000003") == store.lookup(info, "01000003", s.standing)
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
    assert await s.get("01000004") == store.lookup(info, "01000004", s.standing)  # off the loop
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


def test_the_doorkeeper_admits_from_the_second_read_and_forgets(monkeypatch):
    monkeypatch.setattr(lookup_mod, "DOORKEEPER_SLOTS", 64)
    caches = Caches(10, 10)
    assert len(caches.seen) == 64
    assert not caches.admit((0, "01000001")) and caches.admit((0, "01000001"))
    for i in range(200):  # an eighth of the slots set: all forgotten, marking starts again
        caches.admit((1, f"01{i:06d}"))
    assert 0 <= caches.marked < 8 and sum(caches.seen) == caches.marked


async def test_a_crawl_of_every_sbd_leaves_the_hot_set_cached(info):
    s = await open_served(info, cache_size=5, resident=True)
    for _ in range(2):  # a student asking twice: cached from the second read
        await s.get("01000001")
    assert "01000001" in {sbd for _, sbd in s.caches.bodies}
    for i in range(2, 301):  # a crawler asking for each SBD once
        assert await s.get(f"01{i:06d}") is not None
    cached = [sbd for _, sbd in s.caches.bodies]
    # without the doorkeeper the crawl's last five would be all there is; with it,
    # nothing gets in (but a rare hash collision, ~1% of runs: one SBD)
    assert "01000001" in cached and len(cached) <= 2
    hits = s.stats.hits
    await s.get("01000001")
    assert s.stats.hits == hits + 1
    await s.close()


async def test_the_current_year_gets_written_ranks_the_others_compact(data_dir, tmp_path):
    for year in (2025, 2026):
        import_files(data_dir, year, [write(tmp_path / f"{year}.csv",
                                            "sbd,toan\n01000001,5\n01000002,7\n")],
                     activate=True)
    lookup = Lookup(data_dir)
    await lookup.refresh()
    assert lookup.served[2026].standing.ready and not lookup.served[2025].standing.ready
    pinned = Lookup(data_dir, year=2025)
    await pinned.refresh()
    assert pinned.served[2025].standing.ready and not pinned.served[2026].standing.ready
    assert await lookup.served[2025].get("01000002") == await pinned.served[2025].get("01000002")
    import_files(data_dir, 2027, [write(tmp_path / "2027.csv", "sbd,toan\n01000001,6\n")],
                 activate=True)
    await lookup.refresh()  # a new year asked without ?year=: the one before goes compact
    assert lookup.served[2027].standing.ready and not lookup.served[2026].standing.ready
    await lookup.close()
    await pinned.close()


def test_a_standing_is_built_with_the_loop_first_and_everything_put_back():
    interval, collecting = sys.getswitchinterval(), gc.isenabled()
    assert collecting, "the test process collects cycles"
    with pytest.raises(RuntimeError), lookup_mod.built_beside_the_loop():
        assert sys.getswitchinterval() == lookup_mod.BUILD_SWITCH_INTERVAL
        assert not gc.isenabled()
        raise RuntimeError("a build that fails")
    assert sys.getswitchinterval() == interval and gc.isenabled()
    gc.disable()
    try:  # whoever turned the collector off keeps it off
        with lookup_mod.built_beside_the_loop():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


async def test_a_broken_last_year_leaves_this_year_served(data_dir, tmp_path, caplog):
    """Last year's pointer names a snapshot that is gone, or one that cannot be read: this
    year is served all the same (without last year's equivalents) and the problem is
    last year's alone; when last year's file is back, this year gets them again."""
    last = import_files(data_dir, 2025, [write(tmp_path / "2025.csv", "sbd,toan\n01000001,6\n")],
                        activate=True).snapshot_id
    this = import_files(data_dir, 2026, [write(tmp_path / "2026.csv", "sbd,toan\n01000001,5\n")],
                        activate=True).snapshot_id
    kept = tmp_path / "kept.sqlite"
    store.snapshot_path(data_dir, last).rename(kept)
    lookup = Lookup(data_dir)
    try:
        await lookup.refresh()
        assert 2026 in lookup.served and 2025 not in lookup.served
        assert all(this not in p and "năm 2026" not in p for p in lookup.problems)
        assert any(last in p for p in lookup.problems)
        assert b'"previous_year"' not in await lookup.served[2026].get("01000001")
        kept.rename(store.snapshot_path(data_dir, last))  # back: both served, equivalents too
        await lookup.refresh()
        assert lookup.ready and b'"previous_year"' in await lookup.served[2026].get("01000001")
        with_it = lookup.served[2026].etag("01000001")
        good = store.snapshot_path(data_dir, last).read_bytes()
        store.snapshot_path(data_dir, last).write_bytes(b"junk" * 1000)  # there, unreadable
        fresh = Lookup(data_dir)
        await fresh.refresh()
        assert 2026 in fresh.served and all(this not in p for p in fresh.problems)
        assert b'"previous_year"' not in await fresh.served[2026].get("01000001")
        without = fresh.served[2026].etag("01000001")
        assert without != with_it  # another body, another tag
        store.snapshot_path(data_dir, last).write_bytes(good)  # repaired in place
        await fresh.refresh()
        assert b'"previous_year"' in await fresh.served[2026].get("01000001")
        assert fresh.served[2026].etag("01000001") == with_it
        await fresh.close()
        # its manifest reads, its distribution table (page 4 of 16 KiB) does not: served
        # without it, said in the log, and tagged as what it is built from
        damaged = bytearray(good)
        damaged[3 * 16384:4 * 16384] = b"\xff" * 16384
        store.snapshot_path(data_dir, last).write_bytes(bytes(damaged))
        broken = Lookup(data_dir)
        with caplog.at_level("WARNING", logger="diemthi.standing"):
            await broken.refresh()
        assert any("cannot be read" in r.message for r in caplog.records)
        assert b'"previous_year"' not in await broken.served[2026].get("01000001")
        assert broken.served[2026].etag("01000001") == without
        await broken.close()
    finally:
        await lookup.close()


async def test_an_unreadable_pointer_of_the_latest_year_is_not_answered_by_another(
        data_dir, tmp_path):
    """2026's pointer file is there but cannot be read: 2026 is still the year answered
    without one (503 until it reads), never 2025 in its place."""
    for year in (2025, 2026):
        import_files(data_dir, year, [write(tmp_path / f"{year}.csv", "sbd,toan\n01000001,6\n")],
                     activate=True)
    store.pointer_path(data_dir, 2026).write_text("garbage{")
    lookup = Lookup(data_dir)
    await lookup.refresh()
    try:
        assert lookup.current_year == 2026 and 2026 not in lookup.served
        assert 2025 in lookup.served and not lookup.ready
        from diemthi.gate import snapshot_for
        status, _, _ = snapshot_for(lookup, 2026)  # type: ignore[misc]
        assert status == 503
        assert snapshot_for(lookup, 2025) is lookup.served[2025]
    finally:
        await lookup.close()


async def test_an_unreadable_pointer_is_said_in_the_log_once(data_dir, info, caplog):
    store.activate(data_dir, info.id)
    lookup = Lookup(data_dir)
    await lookup.refresh()
    store.pointer_path(data_dir, 2026).write_text("garbage{")
    with caplog.at_level("ERROR", logger="diemthi.lookup"):
        await lookup.refresh()
        await lookup.refresh()
    said = [r.message for r in caplog.records if "pointer of 2026" in r.message]
    assert len(said) == 1 and lookup.served[2026].id == info.id and not lookup.ready
    await lookup.close()
