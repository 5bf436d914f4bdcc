"""A template rendered once, with markers where each page's values go: then a page is a join.

The result page is rendered on every cache miss, and Jinja's per-render cost (a context,
escaping every variable, the base template's blocks) is most of a miss. Its frame is the
same for every candidate, so :class:`Shell` renders it once with a marker in place of
each value and keeps the fixed text between them. A sample of what it keeps, for a
template ``<h1>SBD {{ sbd }}</h1><ul>{{ subjects }}</ul>``::

    parts = ['<h1>SBD ', 'sbd', '</h1><ul>', 'subjects', '</ul>']  # text, name, text, ...

and :meth:`Shell.fill` joins them with the values, which the caller has already escaped
(or built as markup). ``tests/test_pages.py`` checks a filled shell against a plain render.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from jinja2 import Template
from markupsafe import Markup

MARK = "\ue000"  # a private-use character: nothing escapes it, no page text contains it
_SPLIT = re.compile(MARK + r"(\w+)" + MARK)


def marker(name: str) -> Markup:
    """What stands in for value ``name`` while the shell is rendered."""
    return Markup(f"{MARK}{name}{MARK}")


class Shell:
    def __init__(self, template: Template, context: Mapping[str, Any]):
        text = template.render(**context)
        pieces = _SPLIT.split(text)
        self.fixed = pieces[0::2]  # the text around the values
        self.names = pieces[1::2]  # the value between fixed[i] and fixed[i + 1]
        if MARK in "".join(self.fixed):
            raise ValueError("a marker was cut (a filter changed it?)")

    def fill(self, values: Mapping[str, str]) -> str:
        """The page, with ``values`` (already escaped) in place of the markers."""
        fixed, out = self.fixed, [self.fixed[0]]
        for i, name in enumerate(self.names, 1):
            out.append(values[name])
            out.append(fixed[i])
        return "".join(out)
