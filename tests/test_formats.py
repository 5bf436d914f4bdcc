"""The one number formatter: what pages and chatbot print."""

import pytest

from diemthi.formats import score, thousands, top_percent


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


@pytest.mark.parametrize("higher,of,text", [
    (51234, 1150321, "top 4,5%"),  # 4.454% rounded up to a tenth
    (0, 1150321, "top 0,1%"),  # the very best never reads "top 0%"
    (1202, 26880, "top 4,5%"), (499, 1000, "top 50%"), (999, 1000, "top 100%"),
    (44, 1000, "top 4,5%"), (45, 1000, "top 4,6%"),
])
def test_top_percent(higher, of, text):
    assert top_percent({"higher": higher, "equal": 1, "of": of}) == text


def test_the_chatbot_uses_it():
    from diemthi.chatbot import replies

    doc = {"sbd": "01000001", "year": 2026, "province": {"code": "01", "name": "Hà Nội"},
           "scores": {"toan": 7.75}, "combinations": {}}
    assert "Toán: 7,75" in replies.found(doc)
