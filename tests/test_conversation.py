"""The one function from a student's text to the reply texts, on a real snapshot."""

from datetime import datetime, timedelta, timezone

import pytest

from diemthi.chatbot import release, replies
from diemthi.chatbot.conversation import Conversation
from diemthi.lookup import Lookup
from diemthi.settings import load
from tests.chatbot_world import import_scores


@pytest.fixture
async def lookup(data_dir, tmp_path):
    import_scores(data_dir, tmp_path)
    found = Lookup(data_dir)
    await found.refresh()
    yield found
    await found.close()


async def test_scores_with_a_link_when_the_public_url_is_set(lookup, data_dir):
    s = load({"data_dir": str(data_dir), "public_url": "https://diem.example.vn/"}, environ={})
    texts = await Conversation(s, lookup).compose("sbd 08000123 và 08999999", "u")
    assert texts[0].startswith("SBD 08000123 – Tỉnh Tuyên Quang – năm 2026")
    assert texts[0].endswith("\nXem chi tiết: https://diem.example.vn/tra-cuu/08000123")
    assert texts[1] == replies.not_found("08999999", 2026)
    plain = Conversation(load({"data_dir": str(data_dir)}, environ={}), lookup)
    assert "Xem chi tiết" not in (await plain.compose("08000123", "u"))[0]


async def test_under_embargo_an_sbd_registers_for_the_push(lookup, data_dir):
    at = datetime(2026, 7, 12, 8, 0, tzinfo=timezone(timedelta(hours=7)))
    s = load({"data_dir": str(data_dir)}, environ={"DIEMTHI_RELEASE_AT": "2099-07-12T08:00"})
    lookup.release_override = s.release_at  # as create_app passes serve --release-at
    await lookup.refresh()
    assert release.embargo_year(lookup) == 2026 and release.embargoed(lookup, at.timestamp())
    registered: list = []
    texts = await Conversation(s, lookup).compose("08000123, 08000124", "u",
                                                  lambda sbd, year: registered.append((sbd, year)))
    assert registered == [("08000123", 2026), ("08000124", 2026)]
    assert texts == [replies.registered(["08000123", "08000124"], s.release_at)]
    assert "08:00 ngày 12/07/2099" in texts[0]
    none = await Conversation(s, lookup).compose("xin chào", "u", registered.append)
    assert none[0].startswith("Điểm thi chưa được công bố") and len(registered) == 2


async def test_the_push_text_for_a_registration(lookup, data_dir):
    conversation = Conversation(load({"data_dir": str(data_dir)}, environ={}), lookup)
    text, doc = await conversation.push_text(2026, "08000124")
    assert text.startswith("Điểm thi đã được công bố!\nSBD 08000124") and doc["sbd"] == "08000124"
    assert await conversation.push_text(2026, "08999999") == (replies.not_found("08999999", 2026),
                                                              None)
