"""Which Zalo channel carries a message: in-thread while free, cs by user_id inside the
reply window, the transaction template past it, else given up; and what Zalo says each
one cost. Rules on plain values, then the real server against the stand-in of Zalo."""

import time

import httpx
import orjson
import pytest

from diemthi.app import create_app
from diemthi.chatbot.channels import (MAX_TEXT, Windows, choose, split_text,
                                      transaction_payload)
from diemthi.chatbot.outbox import FILENAME, Latest, Message, Store
from diemthi.settings import load
from loadtests.zalo_standin import ZaloStandIn, template_problem
from tests.chatbot_world import (import_scores, metric, release_in, say, settings,
                                 this_year, wait_for)
from tests.servers import LiveServer

NOW = 1_000_000.0
W = Windows(free=60, reply=120, transaction=False)


def message(reply_to="m1", at=NOW - 10, used=0, template=None) -> Message:
    return Message(1, "u", "reply", reply_to, at, used, "text", template, NOW, 0)


def test_in_thread_while_free_and_under_eight():
    route = choose(message(), None, NOW, W, {})
    assert (route.channel, route.recipient, route.thread) == ("reply", {"message_id": "m1"}, "m1")
    assert choose(message(used=7), None, NOW, W, {}).channel == "reply"
    assert choose(message(used=7), None, NOW, W, {"m1": 1}) is None  # 8 with the one in flight


def test_later_messages_by_the_age_of_the_last_one():
    fresh, old, gone = (Latest("m9", NOW - 5, 0), Latest("m9", NOW - 90, 0),
                        Latest("m9", NOW - 200, 0))
    used_up = message(used=8)
    assert choose(used_up, fresh, NOW, W, {}).recipient == {"message_id": "m9"}
    assert choose(used_up, Latest("m9", NOW - 5, 8), NOW, W, {}).channel == "cs"
    assert choose(message(at=NOW - 61), old, NOW, W, {}).recipient == {"user_id": "u"}
    assert choose(message(at=NOW - 200), gone, NOW, W, {}) is None
    with_template = Windows(60, 120, transaction=True)
    push = Message(2, "u", "push", None, None, 0, "x", "{}", NOW, 0)
    assert choose(push, gone, NOW, with_template, {}).channel == "transaction"
    assert choose(message(at=NOW - 200), gone, NOW, with_template, {}) is None  # no template
    assert choose(push, None, NOW, W, {}) is None


def test_long_texts_are_split_under_zalos_limit():
    text = "\n".join(f"dòng {i} " + "x" * 90 for i in range(60))
    parts = split_text(text)
    assert len(parts) > 1 and all(len(p) <= MAX_TEXT for p in parts)
    assert "\n".join(parts) == text
    assert split_text("x" * 4500) == ["x" * 2000, "x" * 2000, "x" * 500]
    assert split_text("ngắn") == ["ngắn"]


def test_the_template_keeps_zalos_limits():
    lines = [f"• Môn thi số {i} có tên rất dài để thử giới hạn: {i},75" for i in range(20)]
    payload = transaction_payload("Điểm thi tốt nghiệp THPT 2026 " + "x" * 200, "08000123",
                                  [("Tỉnh/thành phố nơi thí sinh dự thi " * 2, "y" * 300)] * 9,
                                  lines, "https://diem.example.vn/")
    assert template_problem({"attachment": {"type": "template", "payload": payload}}) is None
    header, table, *texts = payload["elements"]
    assert len(header["content"]) <= 100 and table["content"][0] == {"key": "Mã thí sinh",
                                                                     "value": "08000123"}
    assert len(table["content"]) == 6 and 1 <= len(texts) <= 2
    assert all(len(t["content"]) <= 250 for t in texts)
    assert payload["buttons"] == [{"type": "oa.open.url", "title": "Xem chi tiết", "payload": {
        "url": "https://diem.example.vn/tra-cuu/08000123"}}]
    assert transaction_payload("h", "08000123", [], ["a"])["buttons"] == []


@pytest.fixture
def zalo(data_dir, tmp_path):
    import_scores(data_dir, tmp_path, year=this_year())
    stand_in = ZaloStandIn(free_window=60, reply_window=120, transaction_allowed=True)
    with LiveServer(stand_in.app()) as url:
        stand_in.url = url
        yield stand_in


def test_the_ninth_message_against_one_incoming_message_is_not_in_thread(zalo, data_dir):
    app = create_app(load(settings(data_dir, zalo.url), environ={}))
    with LiveServer(app) as url, httpx.Client(base_url=url) as c:
        say(c, zalo, "08000123", "m1", user="keen")
        wait_for(lambda: metric(c, "diemthi_zalo_sent_total") == 1)
        store = Store(data_dir / FILENAME)
        with store.write():
            for i in range(9):
                store.db.execute("INSERT INTO outbox (user_id, kind, reply_to, text, created, "
                                 "due) VALUES ('keen', 'reply', 'm1', ?, ?, ?)",
                                 (f"tin {i}", time.time(), time.time()))
        store.close()
        wait_for(lambda: metric(c, "diemthi_zalo_sent_total") == 10)
        in_thread = [s for s in zalo.sent if s["channel"] == "reply"]
        assert len(in_thread) == 8 and {s["quota"] for s in in_thread} == {"reply"}
        assert [s["channel"] for s in zalo.sent].count("cs") == 2
        assert metric(c, 'diemthi_zalo_sent_total{channel="cs",quota="charged"}') == 2


def test_pushes_to_three_groups_each_by_its_channel(zalo, data_dir):
    now = time.time()
    extra = dict(release_at=release_in(5), zalo_free_window="60s", zalo_reply_window="120",
                 zalo_max_skew="1d", zalo_transaction="1", public_url="https://diem.example.vn")
    app = create_app(load(settings(data_dir, zalo.url, **extra), environ={}))
    with LiveServer(app) as url, httpx.Client(base_url=url) as c:
        say(c, zalo, "sbd 08000123", "fresh", user="A", at=now)
        say(c, zalo, "sbd 08000124", "older", user="B", at=now - 90)
        say(c, zalo, "sbd 08000125", "gone", user="C", at=now - 200)
        wait_for(lambda: metric(c, "diemthi_zalo_registered") == 3)
        wait_for(lambda: metric(c, "diemthi_zalo_pushed") == 3)
        wait_for(lambda: metric(c, "diemthi_zalo_queue_depth") == 0)
        pushed = {s["user_id"]: s for s in zalo.sent if s["channel"] == "transaction"
                  or (s["text"] or "").startswith("Điểm thi đã được công bố")}
        assert (pushed["A"]["channel"], pushed["A"]["message_id"], pushed["A"]["quota"]) == \
            ("reply", "fresh", "reply")
        assert (pushed["B"]["channel"], pushed["B"]["quota"]) == ("cs", "charged")
        assert pushed["B"]["text"].endswith("Xem chi tiết: https://diem.example.vn/tra-cuu/08000124")
        payload = pushed["C"]["payload"]
        assert pushed["C"]["channel"] == "transaction" and payload["template_type"] == \
            "transaction_education"
        table = next(e for e in payload["elements"] if e["type"] == "table")["content"]
        assert table[0] == {"key": "Mã thí sinh", "value": "08000125"}
        assert payload["buttons"][0]["payload"]["url"] == "https://diem.example.vn/tra-cuu/08000125"
        # C's registration reply had no template and C wrote too long ago: given up
        assert metric(c, 'diemthi_zalo_given_up_total{reason="window"}') == 1
        assert metric(c, 'diemthi_zalo_sent_total{channel="transaction",quota="charged"}') == 1


def test_past_the_reply_window_without_the_template_channel_nothing_is_sent(zalo, data_dir):
    now = time.time()
    zalo.transaction_allowed = False
    app = create_app(load(settings(data_dir, zalo.url, release_at=release_in(-1),
                                   zalo_free_window="60s", zalo_reply_window="120s",
                                   zalo_max_skew="1d", zalo_transaction="1"), environ={}))
    with LiveServer(app) as url, httpx.Client(base_url=url) as c:
        say(c, zalo, "xin chào", "old", user="D", at=now - 200)  # an old message, no answer
        store = Store(data_dir / FILENAME)
        store.db.execute("INSERT INTO registrations (user_id, sbd, year, created, updated) "
                         "VALUES ('D', '08000123', ?, 0, 0)", (this_year(),))
        store.close()
        # the OA lacks the permission Zalo requires: -223 ends the push, reason not_allowed
        wait_for(lambda: metric(c, 'diemthi_zalo_given_up_total{reason="not_allowed"}') == 1)
        assert [r["code"] for r in zalo.refused] == [-223]
        assert metric(c, 'diemthi_zalo_given_up_total{reason="window"}') == 1  # the reply
    assert zalo.sent == []
    body = zalo.refused[0]["body"]
    assert orjson.loads(orjson.dumps(body))["recipient"] == {"user_id": "D"}
