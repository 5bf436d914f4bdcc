"""The generated body formatter against the plain, slow way: orjson.dumps of the document."""

import random

import orjson
import pytest

from diemthi.bodies import MAX_SCORE, body_formatter
from diemthi.reference import COMBINATIONS, LANGUAGES, SUBJECTS


def plain(keys, language, combinations, values) -> bytes:
    doc = {"scores": {k: v / 100 for k, v in zip(keys, values)}}
    if language:
        doc["foreign_language"] = {"code": language[0], "name": language[1]}
    doc["combinations"] = {code: sum(values[i] for i in positions) / 100
                           for code, positions in combinations}
    return orjson.dumps(doc)


def test_every_pattern_matches_orjson_dumps():
    rng = random.Random(12)
    subjects = list(SUBJECTS)
    for _ in range(300):
        keys = rng.sample(subjects, rng.randint(0, len(subjects)))
        code = rng.choice([None, *LANGUAGES])
        language = (code, LANGUAGES[code]) if code else None
        combinations = [(c.code, [keys.index(k) for k in c.subjects])
                        for c in COMBINATIONS.values() if set(keys) >= set(c.subjects)
                        and c.language in (None, code)]
        fn = body_formatter(keys, language, combinations)
        for _ in range(5):
            values = [rng.choice([0, 5, 25, 333, 775, 999, MAX_SCORE, rng.randint(0, MAX_SCORE)])
                      for _ in keys]
            body = fn(values)
            assert b"{" + body.encode() == plain(keys, language, combinations, values)
            orjson.loads("{" + body)  # and it is JSON


@pytest.mark.parametrize("key", ['a"b', "50%", "%s", "\\", "Tiếng Việt"])
def test_names_are_text_never_code_or_directives(key):
    fn = body_formatter([key], ("N9", "100% %s"), [("X%d", [0])])
    assert b"{" + fn([150]).encode() == plain([key], ("N9", "100% %s"), [("X%d", [0])], [150])


def test_a_row_of_cells_gives_the_same_body_as_its_scores():
    rng = random.Random(13)
    subjects = list(SUBJECTS)
    hundredths = {f"{h / 100:g}": h for h in range(MAX_SCORE + 1)}
    texts = list(hundredths)
    for _ in range(200):
        keys = rng.sample(subjects, rng.randint(1, len(subjects)))
        cells = sorted(rng.sample(range(20), len(keys)))
        combinations = [(c.code, [keys.index(k) for k in c.subjects])
                        for c in COMBINATIONS.values() if set(keys) >= set(c.subjects)]
        by_scores = body_formatter(keys, None, combinations)
        by_cells = body_formatter(keys, None, combinations, cells, hundredths)
        row = [rng.choice(["", "Vắng"]) for _ in range(20)]
        for i in cells:
            row[i] = rng.choice(texts)
        assert by_cells(tuple(row)) == by_scores([hundredths[row[i]] for i in cells])
    with pytest.raises(KeyError):  # a cell never seen: the caller's slow way
        body_formatter(["toan"], None, [], [0], hundredths)(("7,5",))
