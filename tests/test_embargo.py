"""The one release rule: what the lookup, the stats and the pages ask."""

from datetime import datetime, timedelta, timezone

from diemthi.embargo import Embargo, Release


def test_no_release_time_is_published():
    release = Embargo(None).release(2026)
    assert release.published() and release.seconds_left() == 0.0 and release.at is None


def test_before_and_after_the_release_time():
    at = datetime(2026, 7, 12, 8, 0, tzinfo=timezone(timedelta(hours=7)))
    release = Embargo(at).release(2026)
    assert release == Release(2026, at)
    before = at.timestamp() - 90
    assert not release.published(before) and release.seconds_left(before) == 90.0
    assert release.published(at.timestamp()) and release.seconds_left(at.timestamp()) == 0.0
    assert release.published(at.timestamp() + 1)
