"""The one function from a student's text to the reply texts, on a real snapshot."""

from datetime import datetime, timedelta, timezone

import pytest

from diemthi import store
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


async def test_the_year_without_one_is_the_apis(data_dir, tmp_path):
    """No year in the message: the year the API answers without ?year= (DIEMTHI_YEAR, else
    the latest activated), never the newest served one in its place."""
    import_scores(data_dir, tmp_path, year=2025)
    import_scores(data_dir, tmp_path)
    s = load({"data_dir": str(data_dir)}, environ={})
    older = Lookup(data_dir, year=2025)  # as serve passes DIEMTHI_YEAR
    await older.refresh()
    try:
        assert set(older.served) == {2025, 2026}
        texts = await Conversation(s, older).compose("08000123", "u")
        assert texts[0].startswith("SBD 08000123 – Tỉnh Lào Cai – năm 2025")
        named = await Conversation(s, older).compose("08000123 năm 2026", "u")
        assert named[0].startswith("SBD 08000123 – Tỉnh Tuyên Quang – năm 2026")
    finally:
        await older.close()


async def test_a_current_year_not_served_is_not_answered_from_another(data_dir, tmp_path):
    """2027 activated but its snapshot cannot be opened: the API answers 503 for it, and
    the chatbot says it is not ready rather than give 2026's scores."""
    import_scores(data_dir, tmp_path)
    broken = import_scores(data_dir, tmp_path, year=2027)
    store.snapshot_path(data_dir, broken).write_bytes(b"not a database")
    lookup = Lookup(data_dir)
    await lookup.refresh()
    try:
        assert lookup.current_year == 2027 and set(lookup.served) == {2026}
        s = load({"data_dir": str(data_dir)}, environ={})
        assert await Conversation(s, lookup).compose("08000123", "u") == [replies.BUSY]
        named = await Conversation(s, lookup).compose("08000123 năm 2026", "u")
        assert named[0].startswith("SBD 08000123 – Tỉnh Tuyên Quang – năm 2026")
    finally:
        await lookup.close()


async def test_a_named_year_under_its_release_time_is_not_answered(data_dir, tmp_path):
    """The message names a year still under embargo that is not the current one: "not yet
    published", as the API's 403, never its scores."""
    import_scores(data_dir, tmp_path, year=2025)
    snapshot = import_scores(data_dir, tmp_path)
    at = datetime(2099, 7, 12, 8, 0, tzinfo=timezone(timedelta(hours=7)))
    store.activate(data_dir, snapshot, release_at=at)
    lookup = Lookup(data_dir, year=2025)
    await lookup.refresh()
    try:
        s = load({"data_dir": str(data_dir)}, environ={})
        texts = await Conversation(s, lookup).compose("08000123 năm 2026", "u")
        assert texts == [replies.not_published(at)]
        assert (await Conversation(s, lookup).compose("08000123", "u"))[0].startswith(
            "SBD 08000123 – Tỉnh Lào Cai – năm 2025")
    finally:
        await lookup.close()


async def test_last_years_scores_are_answered_during_this_years_embargo(data_dir, tmp_path):
    import_scores(data_dir, tmp_path, year=2025)
    snapshot = import_scores(data_dir, tmp_path)
    at = datetime(2099, 7, 12, 8, 0, tzinfo=timezone(timedelta(hours=7)))
    store.activate(data_dir, snapshot, release_at=at)
    lookup = Lookup(data_dir)
    await lookup.refresh()
    try:
        s = load({"data_dir": str(data_dir)}, environ={})
        registered: list = []
        talk = Conversation(s, lookup)
        last = await talk.compose("08000123 năm 2025", "u", lambda *a: registered.append(a))
        assert last[0].startswith("SBD 08000123 – Tỉnh Lào Cai – năm 2025") and not registered
        this = await talk.compose("08000123", "u", lambda *a: registered.append(a))
        assert this == [replies.registered(["08000123"], at)]
        assert registered == [("08000123", 2026)]
    finally:
        await lookup.close()


def test_a_year_not_served_suggests_only_what_works():
    assert "(hoặc không ghi năm)" in replies.year_not_served([2024], [2025, 2026], 2026)
    busy = replies.year_not_served([2024], [2025, 2026], 2027)  # without a year: not ready
    assert "kèm năm 2026 nhé" in busy and "không ghi năm" not in busy
