"""Registration before the release and the push at the release, through the real server
and the stand-in of Zalo: exactly once per (user, SBD, year), across restarts."""

import asyncio
import sqlite3
from collections import Counter

import httpx
import pytest

from diemthi.app import create_app
from diemthi.chatbot.outbox import FILENAME
from diemthi.settings import load
from loadtests.zalo_standin import ZaloStandIn
from tests.chatbot_world import (SCORES, Serve, burst, event, import_scores, metric,
                                 release_in, say, settings, this_year, wait_for)
from tests.servers import LiveServer

PUSHED = "Điểm thi đã được công bố!"


@pytest.fixture
def zalo(data_dir, tmp_path):
    import_scores(data_dir, tmp_path, year=this_year())
    stand_in = ZaloStandIn()
    with LiveServer(stand_in.app()) as url:
        stand_in.url = url
        yield stand_in


def pushes(zalo: ZaloStandIn) -> Counter:
    return Counter(s["user_id"] for s in zalo.sent
                   if (s["text"] or "").startswith((PUSHED, "Không tìm thấy")))


def serve(data_dir, zalo, **extra):
    return LiveServer(create_app(load(settings(data_dir, zalo.url, reload_interval="0.2",
                                               **extra), environ={})))


def test_the_push_reaches_every_registered_user_once_when_the_embargo_passes(zalo, data_dir):
    year = this_year()
    with serve(data_dir, zalo, release_at=release_in(4)) as url, \
            httpx.Client(base_url=url) as c:
        say(c, zalo, "cho em đăng ký sbd 08000123", "p1", user="a")
        say(c, zalo, "08000123 ạ", "p2", user="a")  # again: updates, not duplicates
        say(c, zalo, "08000124 và 08000125", "p3", user="b")
        say(c, zalo, "08999999", "p4", user="c")  # unknown at release: "not found" then
        wait_for(lambda: metric(c, "diemthi_zalo_registered") == 4)
        assert not pushes(zalo)
        wait_for(lambda: sum(pushes(zalo).values()) == 4)
        assert pushes(zalo) == Counter({"a": 1, "b": 2, "c": 1})
        texts = {s["text"] for s in zalo.sent if s["user_id"] == "b"}
        assert any(t.startswith(f"{PUSHED}\nSBD 08000124") for t in texts)
        (not_found,) = [s["text"] for s in zalo.sent if s["user_id"] == "c"
                        and s["text"].startswith("Không tìm thấy")]
        assert f"08999999 trong kỳ thi năm {year}" in not_found
        wait_for(lambda: metric(c, "diemthi_zalo_pushed") == 4)
        # the push went in-thread: the students wrote minutes ago
        assert {s["channel"] for s in zalo.sent} == {"reply"}


def test_a_restart_before_the_release_and_a_start_after_it(zalo, data_dir):
    with serve(data_dir, zalo, release_at=release_in(3600)) as url, \
            httpx.Client(base_url=url) as c:
        for i in range(5):
            say(c, zalo, f"sbd 0800012{3 + i % 3}", f"r{i}", user=f"s{i}")
        wait_for(lambda: metric(c, "diemthi_zalo_registered") == 5)
    with serve(data_dir, zalo, release_at=release_in(3600)) as url, \
            httpx.Client(base_url=url) as c:
        wait_for(lambda: len(zalo.sent) == 5)  # the registration replies, nothing more
        assert metric(c, "diemthi_zalo_registered") == 5 and not pushes(zalo)
    with serve(data_dir, zalo, release_at=release_in(-60)) as url, \
            httpx.Client(base_url=url) as c:  # started after the release
        wait_for(lambda: sum(pushes(zalo).values()) == 5)
        wait_for(lambda: metric(c, "diemthi_zalo_queue_depth") == 0)
    with serve(data_dir, zalo, release_at=release_in(-60)) as url:
        wait_for(lambda: httpx.get(url + "/readyz").status_code == 200)
    assert pushes(zalo) == Counter({f"s{i}": 1 for i in range(5)})


def test_a_kill_during_the_push_resumes_where_it_stopped(zalo, data_dir):
    n, concurrency = 60, 2
    registrations = []
    for i in range(n):
        zalo.user_wrote(f"k{i}", f"km{i}")
        registrations.append(event(f"sbd 0800012{3 + i % 3}", f"km{i}", user=f"k{i}"))
    with Serve(data_dir, zalo.url, release_at=release_in(3600)) as s:
        assert asyncio.run(burst(s.url, registrations)) == [200] * n
        wait_for(lambda: len(zalo.sent) == n)  # registration replies
    server = Serve(data_dir, zalo.url, release_at=release_in(-1), zalo_send_rate="15",
                   zalo_concurrency=concurrency)
    wait_for(lambda: sum(pushes(zalo).values()) >= 10)
    server.kill()
    assert sum(pushes(zalo).values()) < n
    with Serve(data_dir, zalo.url, release_at=release_in(-1), zalo_send_rate="100"):
        wait_for(lambda: len(pushes(zalo)) == n, seconds=60)
    assert sum(pushes(zalo).values()) - n <= 2 * concurrency
    db = sqlite3.connect(data_dir / FILENAME)
    assert db.execute("SELECT count(*) FROM outbox WHERE kind = 'push'").fetchone() == (n,)


def test_phuc_khao_changes_are_notified_once(zalo, data_dir, tmp_path):
    year = this_year()
    with serve(data_dir, zalo, release_at=release_in(-1), zalo_notify_changes="1") as url, \
            httpx.Client(base_url=url) as c:
        store_db = sqlite3.connect(data_dir / FILENAME)
        say(c, zalo, "08000123", "n0", user="early")  # after the release: an answer
        wait_for(lambda: len(zalo.sent) == 1)
        # registered before the release (written by an earlier run), pushed already
        store_db.execute("INSERT INTO registrations (user_id, sbd, year, created, updated) "
                         "VALUES ('early', '08000123', ?, 0, 0), "
                         "('calm', '08000124', ?, 0, 0)", (year, year))
        store_db.commit()
        zalo.user_wrote("calm", "n1")
        store_db.execute("INSERT INTO users VALUES ('calm', 'n1', strftime('%s','now'))")
        store_db.commit()
        wait_for(lambda: metric(c, "diemthi_zalo_pushed") == 2)
        wait_for(lambda: sum(pushes(zalo).values()) == 2)
        changed = SCORES.replace("08000123,7.75,6.5", "08000123,8,6.5")
        import_scores(data_dir, tmp_path, changed, year=year)
        wait_for(lambda: any("phúc khảo" in (s["text"] or "") for s in zalo.sent))
        wait_for(lambda: metric(c, "diemthi_zalo_queue_depth") == 0)
        notices = [s for s in zalo.sent if "phúc khảo" in (s["text"] or "")]
        assert len(notices) == 1 and notices[0]["user_id"] == "early"
        assert "• Toán: 7,75 → 8" in notices[0]["text"]
