"""A candidate's stored body, written fast: one generated formatter per row pattern.

The stored body is the API's JSON after the per-province envelope (see
:class:`diemthi.store.Envelope`)::

    "scores":{"toan":7.75,"ngu_van":6.5},"foreign_language":{...},"combinations":{...}}

An import writes it for every row, so it is built by a function generated once per
pattern (which subjects were sat, which language), as ``collections.namedtuple`` builds
its methods: one ``%`` per row, no loop, no dict. Code generation lives here and nowhere
else; ``tests/test_bodies.py`` checks it against plain ``orjson.dumps`` of the document.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import orjson

MAX_SCORE = 1000  # a score in hundredths: 0..10.00
# the JSON text of every score and every total of three, as orjson writes the float
SCORE_TEXT = [orjson.dumps(h / 100).decode() for h in range(MAX_SCORE + 1)]
TOTAL_TEXT = [orjson.dumps(h / 100).decode() for h in range(3 * MAX_SCORE + 1)]

Formatter = Callable[[Sequence], str]  # scores in hundredths, or a row's cells


def body_formatter(keys: Sequence[str], language: tuple[str, str] | None,
                   combinations: Sequence[tuple[str, Sequence[int]]],
                   cells: Sequence[int] | None = None,
                   hundredths: Mapping[str, int] | None = None) -> Formatter:
    """The function that writes the stored body from a row's scores in hundredths.

    ``keys`` are the subjects sat, in order; ``language`` is ``(code, name)`` or None;
    ``combinations`` are ``(code, positions of its three subjects in keys)``. For
    ``keys=["toan", "vat_li", "hoa_hoc"]``, no language and ``[("A00", [0, 1, 2])]`` the
    generated source is::

        lambda v: '"scores":{"toan":%s,"vat_li":%s,"hoa_hoc":%s},"combinations":{"A00":%s}}' \\
            % (S[v[0]], S[v[1]], S[v[2]], T[v[0]+v[1]+v[2]],)

    where ``S`` and ``T`` are :data:`SCORE_TEXT` and :data:`TOTAL_TEXT`.

    With ``cells`` (where each key's cell is in the row, here ``[1, 4, 5]``) and
    ``hundredths`` (``H``: a cell's text → its score) the function takes the row's cells
    as read, and the importer's hot loop builds no list of scores per row::

        lambda v: '...' % (S[H[v[1]]], S[H[v[4]]], S[H[v[5]]], T[H[v[1]]+H[v[4]]+H[v[5]]],)

    A cell not in ``hundredths`` raises KeyError: the caller parses that row the slow way.
    """
    scores = ",".join(f"{_key(key)}:%s" for key in keys)
    foreign = "" if language is None else ',"foreign_language":' + orjson.dumps(
        {"code": language[0], "name": language[1]}).decode()
    template = ('"scores":{' + scores + "}" + _literal(foreign) + ',"combinations":{'
                + ",".join(f"{_key(code)}:%s" for code, _ in combinations) + "}}")
    value = ([f"v[{j}]" for j in range(len(keys))] if cells is None
             else [f"H[v[{int(i)}]]" for i in cells])
    args = [f"S[{v}]" for v in value]
    args += ["T[" + "+".join(value[int(i)] for i in positions) + "]"
             for _, positions in combinations]
    source = f"lambda v: {template!r} % ({', '.join(args)},)" if args \
        else f"lambda v: {template!r}"
    return eval(source, {"S": SCORE_TEXT, "T": TOTAL_TEXT,  # noqa: S307 - our text only
                         "H": hundredths})


def _key(name: str) -> str:
    """A JSON object key, as literal text of the template."""
    return _literal(orjson.dumps(name).decode())


def _literal(text: str) -> str:
    return text.replace("%", "%%")  # a % in a name is text, not a directive
