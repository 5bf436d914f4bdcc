import time
from datetime import datetime, timedelta, timezone

import httpx
import orjson
import pytest

from diemthi.app import create_app
from diemthi.chatbot import replies
from diemthi.chatbot.signature import sign, verify
from diemthi.importer import import_files
from diemthi.settings import load
from tests.conftest import write
from tests.servers import LiveServer
from loadtests.zalo_standin import ZaloStandIn

from tests.chatbot_world import (APP_ID, OA_SECRET, event, metric, post, say, settings,
                                 wait_for)


@pytest.fixture
def world(data_dir, tmp_path):
    f = write(tmp_path / "a.csv", "sbd,toan,ngu_van,ngoai_ngu,vat_li,hoa_hoc,ma_ngoai_ngu\n"
                                  "08000123,7.75,6.5,8.25,9,8.5,N1\n08000124,5,6,,,,\n"
                                  "08000125,4,4.5,,,,\n")
    import_files(data_dir, 2026, [f], activate=True)
    zalo = ZaloStandIn()
    with LiveServer(zalo.app()) as zalo_url:
        def serve(**extra):
            return LiveServer(create_app(load(settings(data_dir, zalo_url, **extra),
                                              environ={})))
        yield zalo, serve


def test_signature():
    body = b'{"a":1}'
    header = sign("app", body, "17", "secret")
    assert verify(header, "app", body, "17", "secret")
    assert verify(header.upper().replace("MAC=", "mac="), "app", body, "17", "secret")
    assert not verify(header, "app", body + b" ", "17", "secret")
    assert not verify(header, "app", body, "18", "secret")
    assert not verify("mac=", "app", body, "17", "secret") and not verify(None, "app", body, "17", "secret")


def test_reply_is_short_and_vietnamese():
    doc = {"sbd": "08000123", "year": 2026, "province": {"code": "08", "name": "Tỉnh Tuyên Quang"},
           "scores": {"toan": 7.75, "ngu_van": 6.5, "ngoai_ngu": 8.0},
           "foreign_language": {"code": "N1", "name": "Tiếng Anh"},
           "combinations": {"D01": 22.25}}
    text = replies.found(doc)
    assert text == ("SBD 08000123 – Tỉnh Tuyên Quang – năm 2026\n• Toán: 7,75\n• Ngữ văn: 6,5\n"
                    "• Ngoại ngữ (Tiếng Anh): 8\nTổ hợp: D01 22,25")
    assert len(text) < 400


def rank(higher: int, of: int, p_higher: int, p_of: int, source: str = "snapshot") -> dict:
    return {"nation": {"higher": higher, "equal": 1, "of": of, "source": source},
            "province": {"higher": p_higher, "equal": 1, "of": p_of}}


def test_reply_adds_the_best_three_combinations_and_the_nation():
    doc = {"sbd": "08000123", "year": 2026, "province": {"code": "08", "name": "Tỉnh Tuyên Quang"},
           "scores": {"toan": 8.0, "ngu_van": 6.5},
           "combinations": {"A00": 25.0, "A01": 24.0, "C01": 22.0, "D01": 21.0},
           "ranks": {"toan": rank(51234, 1150321, 1203, 26880, "national"),
                     "ngu_van": rank(800000, 1150321, 20000, 26880, "national"),
                     "A00": rank(400, 1000, 120, 800), "A01": rank(10, 1000, 5, 800),
                     "C01": rank(999, 1000, 799, 800), "D01": rank(100, 1000, 80, 800)}}
    lines = replies.found(doc).splitlines()
    assert lines[-4:] == ["A01 24: hạng 6/800 trong tỉnh, top 1,1% cả nước",
                          "D01 21: hạng 81/800 trong tỉnh, top 10,1% cả nước",
                          "A00 25: hạng 121/800 trong tỉnh, top 40,1% cả nước",
                          "So với cả nước: Toán top 4,5%, Ngữ văn top 69,6%"]
    one_province = {**doc, "ranks": {"A00": rank(3, 800, 3, 800)}, "scores": {}}
    assert replies.found(one_province).splitlines()[-1] == "A00 25: hạng 4/800 trong tỉnh"


def test_scores_are_sent_back(world):
    zalo, serve = world
    with serve() as url, httpx.Client(base_url=url) as c:
        started = time.monotonic()
        r = say(c, zalo, "Cho em tra điểm SBD 08 000 123 ạ", "m1")
        assert r.status_code == 200 and time.monotonic() - started < 1
        wait_for(lambda: len(zalo.sent) == 1)
        (sent,) = zalo.sent
        assert sent["user_id"] == "u-1" and sent["token"] == "access-0"
        assert (sent["channel"], sent["message_id"], sent["quota"]) == ("reply", "m1", "reply")
        assert sent["text"].startswith("SBD 08000123 – Tỉnh Tuyên Quang – năm 2026")
        assert "• Ngoại ngữ (Tiếng Anh): 8,25" in sent["text"]
        assert "A00 25,25" in sent["text"] and "D01 22,5" in sent["text"]
        wait_for(lambda: metric(c, 'diemthi_zalo_sent_total{channel="reply",quota="reply"}') == 1)
        assert metric(c, 'diemthi_zalo_events_total{event="user_send_text"}') == 1


def test_each_sbd_answered_and_the_other_replies(world):
    zalo, serve = world
    with serve() as url, httpx.Client(base_url=url) as c:
        say(c, zalo, "08000124, 08999999 và 08000125", "m1")
        wait_for(lambda: len(zalo.sent) == 3)
        texts = sorted(s["text"] for s in zalo.sent)
        assert texts[0].startswith("Không tìm thấy số báo danh 08999999 trong kỳ thi năm 2026")
        assert texts[1].startswith("SBD 08000124") and texts[2].startswith("SBD 08000125")
        say(c, zalo, "sbd em là 0800012", "m2")
        say(c, zalo, "xin chào", "m3")
        wait_for(lambda: len(zalo.sent) == 5)
        texts = [s["text"] for s in zalo.sent[3:]]
        assert any(t.startswith("Số báo danh gồm đúng 8 chữ số; bạn đã gửi 7 chữ số") for t in texts)
        assert replies.HELP in texts


def test_forged_or_unsigned_events_are_refused(world):
    zalo, serve = world
    with serve() as url, httpx.Client(base_url=url) as c:
        body = event("08000123", "m1")
        timestamp = orjson.loads(body)["timestamp"]
        assert post(c, body, signature=None).status_code == 401
        assert post(c, body, signature="mac=" + "0" * 64).status_code == 401
        forged = sign(APP_ID, body, timestamp, "wrong-secret")
        assert post(c, body, signature=forged).status_code == 401
        good = sign(APP_ID, body, timestamp, OA_SECRET)
        assert post(c, body.replace(b"08000123", b"08000124"), signature=good).status_code == 401
        assert post(c, b"not json", signature=good).status_code == 400
        huge = post(c, b"{" + b" " * 100_000 + b"}", signature=good)
        assert huge.status_code == 413 and huge.json()["error"]["code"] == "too_large"
        other_app = body.replace(APP_ID.encode(), b"999")
        assert post(c, other_app).status_code == 401  # signed, but for another app
        time.sleep(0.3)
        assert zalo.sent == [] and zalo.attempts == 0
        assert metric(c, "diemthi_zalo_rejected_total") == 6  # the 413 never reached it
        assert metric(c, 'diemthi_zalo_rejected_total{reason="signature"}') == 5


def test_other_events_acknowledged_and_retries_answered_once(world):
    zalo, serve = world
    with serve() as url, httpx.Client(base_url=url) as c:
        assert post(c, event("", "s1", name="user_send_sticker")).status_code == 200
        for _ in range(3):  # Zalo retrying the same message
            assert say(c, zalo, "08000123", "m7").status_code == 200
        wait_for(lambda: len(zalo.sent) == 1)
        time.sleep(0.3)
        assert len(zalo.sent) == 1
        assert metric(c, 'diemthi_zalo_events_total{event="other"}') == 1


def test_expired_token_is_refreshed_kept_and_survives_a_restart(world, data_dir):
    zalo, serve = world
    zalo.expired.add("access-0")
    with serve() as url, httpx.Client(base_url=url) as c:
        say(c, zalo, "08000123", "m1")
        say(c, zalo, "08000124", "m2")
        wait_for(lambda: len(zalo.sent) == 2)
        assert {s["token"] for s in zalo.sent} == {"access-1"}
        (refresh,) = zalo.refreshes  # one refresh, however many sends saw -216
        assert refresh["form"] == {"refresh_token": "refresh-0", "app_id": APP_ID,
                                   "grant_type": "refresh_token"}
        assert refresh["secret_key"] == "app-secret"
        assert metric(c, "diemthi_zalo_token_refreshes_total") == 1
    saved = orjson.loads((data_dir / "zalo-tokens.json").read_bytes())
    assert (saved["access_token"], saved["refresh_token"]) == ("access-1", "refresh-1")
    assert (data_dir / "zalo-tokens.json").stat().st_mode & 0o777 == 0o600
    with serve() as url, httpx.Client(base_url=url) as c:  # a restart keeps the new token
        say(c, zalo, "08000125", "m3")
        wait_for(lambda: len(zalo.sent) == 3)
        assert zalo.sent[-1]["token"] == "access-1" and len(zalo.refreshes) == 1


def test_5xx_is_retried_with_backoff(world):
    zalo, serve = world
    zalo.fail_next = 2
    with serve() as url, httpx.Client(base_url=url) as c:
        say(c, zalo, "08000123", "m1")
        wait_for(lambda: len(zalo.sent) == 1)
        assert zalo.attempts == 3
        wait_for(lambda: metric(c, "diemthi_zalo_retried_total") == 2)


def test_embargo_reply_registers(world):
    zalo, serve = world
    later = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    with serve(release_at=later) as url, httpx.Client(base_url=url) as c:
        say(c, zalo, "08000123", "m1")
        say(c, zalo, "cho em hỏi điểm", "m2", user="u-2")
        wait_for(lambda: len(zalo.sent) == 2)
        by_user = {s["user_id"]: s["text"] for s in zalo.sent}
        assert by_user["u-1"].startswith("Đã ghi nhận số báo danh 08000123. Điểm thi chưa được "
                                         "công bố; điểm sẽ có từ")
        assert "tự động nhắn điểm" in by_user["u-1"]
        assert by_user["u-2"].startswith("Điểm thi chưa được công bố. Điểm sẽ có từ")
        wait_for(lambda: metric(c, "diemthi_zalo_registered") == 1)


def test_webhook_off_without_settings(data_dir):
    with LiveServer(create_app(load({"data_dir": str(data_dir)}, environ={}))) as url:
        r = httpx.post(url + "/zalo/webhook", content=event("08000123", "m1"))
        assert r.status_code == 404


async def test_worker_processes_refresh_once_and_share_the_token(data_dir):
    """Two workers (each its own client and token file handle) see -216 together: one
    refreshes, the other adopts the saved token instead of spending the refresh token."""
    import httpx as _httpx

    from diemthi.chatbot.zalo import Tokens, ZaloClient

    zalo = ZaloStandIn()
    zalo.expired.add("access-0")
    with LiveServer(zalo.app()) as url:
        settings = load({"data_dir": str(data_dir), "zalo_app_id": APP_ID,
                         "zalo_oa_secret_key": OA_SECRET, "zalo_access_token": "access-0",
                         "zalo_refresh_token": "refresh-0", "zalo_app_secret": "s",
                         "zalo_api_base": url, "zalo_oauth_base": url}, environ={})
        async with _httpx.AsyncClient() as http:
            workers = [ZaloClient(settings, Tokens.load(settings), http) for _ in range(2)]
            import asyncio
            await asyncio.gather(*[w.send_text(f"u{i}", "hi") for i, w in enumerate(workers)])
    assert len(zalo.refreshes) == 1
    assert {s["token"] for s in zalo.sent} == {"access-1"} and len(zalo.sent) == 2
    assert all(w.tokens.refresh == "refresh-1" for w in workers)
