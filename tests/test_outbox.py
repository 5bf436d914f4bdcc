"""The durable outbox, driven through the real server with signed events against the
loopback stand-in of Zalo: bursts, kills, restarts, several workers."""

import asyncio
import sqlite3
import time
from collections import Counter

import httpx

from diemthi.app import create_app
from diemthi.chatbot.outbox import FILENAME, Event, Store
from diemthi.settings import load
from loadtests.zalo_standin import ZaloStandIn
from tests.chatbot_world import Serve, burst, event, metric, post, say, settings, wait_for
from tests.servers import LiveServer

SBDS = ("08000123", "08000124", "08000125", "08999999")


def answered(zalo: ZaloStandIn) -> Counter:
    """In-thread replies per incoming msg_id."""
    return Counter(s["message_id"] for s in zalo.sent if s["message_id"])


def events(n: int, prefix: str = "b") -> list[tuple[str, str, bytes]]:
    out = []
    for i in range(n):
        msg_id, user = f"{prefix}{i}", f"{prefix}-user-{i}"
        out.append((msg_id, user, event(f"tra điểm {SBDS[i % 4]}", msg_id, user=user)))
    return out


def test_a_burst_far_above_the_send_rate_is_answered_whole_in_order(zalo, data_dir):
    zalo.accept_rate, zalo.accept_burst = 20.0, 1  # Zalo takes fewer than we try: -32
    burst_events = events(200)
    for msg_id, user, _ in burst_events:
        zalo.user_wrote(user, msg_id)
    app = create_app(load(settings(data_dir, zalo.url, zalo_send_rate="60",
                                   zalo_concurrency="8"), environ={}))
    with LiveServer(app) as url, httpx.Client(base_url=url) as c:
        codes = asyncio.run(burst(url, [body for _, _, body in burst_events]))
        assert codes == [200] * 200
        wait_for(lambda: len(answered(zalo)) == 200, seconds=120)
        assert set(answered(zalo).values()) == {1}  # each answered once
        wait_for(lambda: metric(c, "diemthi_zalo_queue_depth") == 0)
        assert metric(c, 'diemthi_zalo_sent_total{channel="reply",quota="reply"}') == 200
        assert metric(c, "diemthi_zalo_failed_total") == 0
        assert metric(c, "diemthi_zalo_retried_total") > 0  # the stand-in said -32
    # arrival order: first attempts follow the order the store accepted the events in,
    # give or take the sends in flight together
    db = sqlite3.connect(data_dir / FILENAME)
    order = [m for (m,) in db.execute("SELECT reply_to FROM outbox ORDER BY id")]
    first = list(dict.fromkeys(r["message_id"] for r in zalo.attempted))
    assert sorted(first) == sorted(order)
    assert max(abs(first.index(m) - i) for i, m in enumerate(order)) <= 8


def test_sigkill_mid_drain_and_restart_loses_nothing(zalo, data_dir):
    all_events = events(80, prefix="k")
    for msg_id, user, _ in all_events:
        zalo.user_wrote(user, msg_id)
    concurrency = 4
    server = Serve(data_dir, zalo.url, zalo_send_rate="20", zalo_concurrency=concurrency)
    codes = asyncio.run(burst(server.url, [body for _, _, body in all_events]))
    assert codes == [200] * 80
    wait_for(lambda: len(zalo.sent) >= 15)
    server.kill()
    assert len(answered(zalo)) < 80  # killed mid-drain
    with Serve(data_dir, zalo.url, zalo_send_rate="50", zalo_concurrency=concurrency):
        wait_for(lambda: len(answered(zalo)) == 80, seconds=60)
    twice = sum(n - 1 for n in answered(zalo).values())
    assert twice <= 2 * concurrency  # only sends in flight at the kill can go again


def test_a_retry_across_workers_is_answered_once_and_metrics_agree(zalo, data_dir):
    with Serve(data_dir, zalo.url, workers=2) as server:
        zalo.user_wrote("u-1", "r1")
        body = event("08000123", "r1")
        codes = asyncio.run(burst(server.url, [body] * 12, connections=12))  # Zalo retrying
        assert codes == [200] * 12
        wait_for(lambda: len(zalo.sent) == 1)
        with httpx.Client(base_url=server.url) as c:
            say(c, zalo, "08000124", "r2", user="u-2")  # something sent after it
            wait_for(lambda: len(zalo.sent) == 2)
            assert answered(zalo) == Counter({"r1": 1, "r2": 1})
            wait_for(lambda: metric(c, "diemthi_zalo_sent_total") == 2)  # written back
            sent = set()
            for _ in range(20):  # whichever worker answers, the store's figures
                seen = {line.split(" ")[0]: line.rsplit(" ", 1)[1]
                        for line in c.get("/metrics", headers={"connection": "close"})
                        .text.splitlines() if not line.startswith("#")}
                assert seen["diemthi_worker_processes"] == "2.0"  # one view of both
                sent.add(seen['diemthi_zalo_sent_total{channel="reply",quota="reply"}'])
            assert sent == {"2.0"}


def test_the_same_sbd_again_while_queued_gets_one_answer(zalo, data_dir):
    app = create_app(load(settings(data_dir, zalo.url, zalo_send_rate="2",
                                   zalo_concurrency="1"), environ={}))
    with LiveServer(app) as url, httpx.Client(base_url=url) as c:
        for i in range(4):  # others ahead in the queue
            say(c, zalo, f"tra điểm 0800012{3 + i % 3}", f"q{i}", user=f"other-{i}")
        say(c, zalo, "08000123", "a1", user="anxious")
        say(c, zalo, "sbd 08000123 ạ", "a2", user="anxious")
        wait_for(lambda: metric(c, "diemthi_zalo_queue_depth") == 0, seconds=30)
        mine = [s for s in zalo.sent if s["user_id"] == "anxious"]
        assert len(mine) == 1 and mine[0]["text"].startswith("SBD 08000123")
        assert len(zalo.sent) == 5
    for name in (FILENAME, FILENAME + "-wal", FILENAME + "-shm"):  # nobody else reads it
        path = data_dir / name
        assert not path.exists() or path.stat().st_mode & 0o777 == 0o600


def test_replayed_or_future_events_are_refused(zalo, data_dir):
    app = create_app(load(settings(data_dir, zalo.url, zalo_max_skew="15m"), environ={}))
    with LiveServer(app) as url, httpx.Client(base_url=url) as c:
        old = post(c, event("08000123", "old", at=time.time() - 16 * 60))
        future = post(c, event("08000123", "future", at=time.time() + 16 * 60))
        assert (old.status_code, future.status_code) == (401, 401)
        assert old.json()["error"]["code"] == "stale_event"
        assert post(c, event("08000123", "fresh", at=time.time() - 14 * 60)).status_code == 200
        assert metric(c, 'diemthi_zalo_rejected_total{reason="replay"}') == 2
        wait_for(lambda: len(zalo.sent) == 1)
        assert zalo.sent[0]["message_id"] == "fresh"


def test_a_user_who_blocked_the_oa_is_given_up_with_the_reason(zalo, data_dir):
    zalo.blocked.add("blocker")
    app = create_app(load(settings(data_dir, zalo.url), environ={}))
    with LiveServer(app) as url, httpx.Client(base_url=url) as c:
        say(c, zalo, "08000123", "x1", user="blocker")
        say(c, zalo, "08000124", "x2", user="friend")
        wait_for(lambda: metric(c, 'diemthi_zalo_given_up_total{reason="blocked"}') == 1)
        wait_for(lambda: len(zalo.sent) == 1)
        assert metric(c, "diemthi_zalo_retried_total") == 0
        assert zalo.sent[0]["user_id"] == "friend"


def test_messages_older_than_the_reply_window_expire_and_are_counted(zalo, data_dir):
    store = Store(data_dir / FILENAME)
    now = time.time()
    store.accept([Event("e1", "late", "user_send_text", "08000123", now)], now - 100)
    store.db.execute("UPDATE events SET received = ?", (now - 100,))
    store.close()
    app = create_app(load(settings(data_dir, zalo.url, zalo_reply_window="60s"), environ={}))
    # the event is composed now, so its reply is fresh; make the queued reply old instead
    with LiveServer(app) as url, httpx.Client(base_url=url) as c:
        wait_for(lambda: len(zalo.sent) == 1)
    store = Store(data_dir / FILENAME)
    store.db.execute("INSERT INTO outbox (user_id, kind, text, created, due) "
                     "VALUES ('late', 'reply', 'cũ', ?, ?)", (now - 61, now - 61))
    store.close()
    with LiveServer(create_app(load(settings(data_dir, zalo.url, zalo_reply_window="60s"),
                                    environ={}))) as url, httpx.Client(base_url=url) as c:
        wait_for(lambda: metric(c, "diemthi_zalo_expired_total") == 1)
        assert metric(c, "diemthi_zalo_queue_depth") == 0
    assert len(zalo.sent) == 1
