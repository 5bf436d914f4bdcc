"""The one number formatter: what pages and chatbot print."""

import pytest

from diemthi.formats import percent, score, thousands


@pytest.mark.parametrize("value,text", [
    (7.75, "7,75"), (9.0, "9"), (9, "9"), (6.5, "6,5"), (0.0, "0"), (10.0, "10"),
    (25.25, "25,25"), (0.05, "0,05"), (28.499999999, "28,5"),
])
def test_score(value, text):
    assert score(value) == text


@pytest.mark.parametrize("value,text", [
    (0, "0"), (999, "999"), (1204, "1.204"), (26880, "26.880"), (1150321, "1.150.321"),
])
def test_thousands(value, text):
    assert thousands(value) == text


@pytest.mark.parametrize("share,text", [
    (51235 / 1150321, "4,5%"), (0.5, "50%"), (1.0, "100%"), (0.0002, "0,02%"),
    (1 / 1150321, "0,00009%"), (0.00096, "0,1%"), (0.123, "12,3%"),
])
def test_percent(share, text):
    assert percent(share) == text


def test_the_chatbot_uses_it():
    from diemthi.chatbot import replies

    doc = {"sbd": "01000001", "year": 2026, "province": {"code": "01", "name": "Hà Nội"},
           "scores": {"toan": 7.75}, "combinations": {}}
    assert "Toán: 7,75" in replies.found(doc)
