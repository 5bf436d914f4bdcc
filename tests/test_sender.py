"""The sender: one process holds the lease and sends at a pace; when it dies another
takes over; transient answers are retried, final ones end the message."""

import os
import signal
import sqlite3

import httpx
import pytest
from click.testing import CliRunner

from diemthi.chatbot.sender import LEASE_TTL, MAX_BACKOFF, Pace, backoff
from diemthi.chatbot.outbox import FILENAME
from diemthi.cli import cli
import orjson

from diemthi.chatbot.signature import sign
from tests.chatbot_world import APP_ID, OA_SECRET, Serve, event, metric, say, wait_for


def holder_pid(data_dir) -> int:
    db = sqlite3.connect(data_dir / FILENAME)
    try:
        (holder,) = db.execute("SELECT holder FROM lease WHERE name = 'sender'").fetchone()
    finally:
        db.close()
    return int(holder.split(":")[1])


def test_when_the_sending_worker_dies_another_takes_over(zalo, data_dir):
    with Serve(data_dir, zalo.url, workers=2) as server, \
            httpx.Client(base_url=server.url) as c:
        say(c, zalo, "08000123", "t1", user="first")
        wait_for(lambda: metric(c, "diemthi_zalo_sent_total") == 1)  # sent and written back
        dead = holder_pid(data_dir)
        os.kill(dead, signal.SIGKILL)
        zalo.user_wrote("second", "t2")

        def delivered() -> bool:  # as Zalo does: again until a worker answers 200
            try:
                return httpx.post(server.url + "/zalo/webhook", content=body, headers={
                    "X-ZEvent-Signature": sign(APP_ID, body, stamp, OA_SECRET)},
                    timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        body = event("08000124", "t2", user="second")
        stamp = orjson.loads(body)["timestamp"]
        wait_for(delivered)
        wait_for(lambda: len(zalo.sent) == 2, seconds=30 + LEASE_TTL)  # 2 cores, shared
        assert holder_pid(data_dir) != dead
        assert [s["user_id"] for s in zalo.sent] == ["first", "second"]


def test_transient_answers_are_retried_and_final_ones_end_the_message(zalo, data_dir):
    zalo.fail_next = 2  # HTTP 503 twice, then the send goes
    with Serve(data_dir, zalo.url) as server, httpx.Client(base_url=server.url) as c:
        say(c, zalo, "08000123", "f1", user="patient")
        wait_for(lambda: len(zalo.sent) == 1)
        zalo.blocked.add("gone")
        say(c, zalo, "08000124", "f2", user="gone")
        wait_for(lambda: metric(c, 'diemthi_zalo_given_up_total{reason="blocked"}') == 1)
        assert metric(c, "diemthi_zalo_retried_total") == 2
        status = CliRunner().invoke(cli, ["zalo", "status", "--data-dir", str(data_dir)])
    assert status.exit_code == 0, status.output
    lines = dict(line.rsplit(None, 1) for line in status.output.splitlines())
    assert lines["sent reply / reply"] == "1" and lines["given up: blocked"] == "1"
    assert lines["queue depth (waiting)"] == "0" and lines["charged so far"] == "0"
    assert lines["registered"] == "0" and lines["retried (attempts)"] == "2"


def test_zalo_status_without_a_store_says_so(data_dir):
    result = CliRunner().invoke(cli, ["zalo", "status", "--data-dir", str(data_dir)])
    assert result.exit_code == 1 and "chưa có hộp thư chatbot" in result.output


async def test_pace_spaces_starts_one_interval_apart():
    pace = Pace(1000.0)
    await pace.take()
    start = pace.next
    for _ in range(50):
        await pace.take()
    assert pace.next - start == pytest.approx(50 / 1000.0)


def test_backoff_grows_and_stops_growing():
    assert backoff(0) <= 0.3 and backoff(3) >= 0.8
    assert all(backoff(20) <= MAX_BACKOFF * 1.5 for _ in range(20))
