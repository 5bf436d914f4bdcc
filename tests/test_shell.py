"""A filled Shell is exactly the plain Jinja render: the fast way against the slow way."""

from pathlib import Path

import pytest
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

import diemthi.web
from diemthi.web.shell import Shell, marker

TEMPLATES = Path(diemthi.web.__file__).parent / "templates"
ENV = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                  trim_blocks=True, lstrip_blocks=True)


@pytest.mark.parametrize("ranks", [[], ["hạng 1 / 2 trong tỉnh"],
                                   ["hạng 1.204 / 26.880 trong tỉnh", "top 4,5% cả nước"]])
@pytest.mark.parametrize("previous", [None, "năm 2025 tương đương 7,5 điểm"])
@pytest.mark.parametrize("chart", [None, Markup('<svg class="chart"><path d="M0 1"/></svg>')])
def test_subject_shell_is_the_plain_render(ranks, previous, chart):
    real = {"name": "Ngoại ngữ (Tiếng <Anh> & \"Pháp\")", "score": "8,25", "ranks": ranks,
            "previous": previous, "chart": chart, "caption": "Phổ điểm <i>"}
    template = ENV.get_template("_subject.html")
    shell = Shell(template, {"s": {
        "name": marker("name"), "score": marker("score"),
        "ranks": [marker(f"rank{i}") for i in range(len(ranks))],
        "previous": marker("previous") if previous else None,
        "chart": marker("chart") if chart else None, "caption": marker("caption")}})
    values = {"name": escape(real["name"]), "score": escape(real["score"]),
              "previous": escape(previous or ""), "chart": chart or "",
              "caption": escape(real["caption"])}
    values.update((f"rank{i}", escape(line)) for i, line in enumerate(ranks))
    assert shell.fill(values) == template.render(s=real)


def test_the_frame_of_a_page():
    template = ENV.from_string("<title>SBD {{ sbd }}</title>{% for y in years %}"
                               "<option{% if y == year %} selected{% endif %}>{{ y }}</option>"
                               "{% endfor %}<ul>{{ body }}</ul>")
    shell = Shell(template, {"sbd": marker("sbd"), "years": [2026, 2025], "year": 2025,
                             "body": marker("body")})
    assert shell.fixed[0] == "<title>SBD " and shell.names == ["sbd", "body"]
    assert shell.fill({"sbd": "01000001", "body": "<li>x</li>"}) == template.render(
        sbd="01000001", years=[2026, 2025], year=2025, body=Markup("<li>x</li>"))


def test_a_filter_that_breaks_a_marker_is_refused():
    with pytest.raises(ValueError):
        Shell(ENV.from_string("{{ x[:2] }}"), {"x": marker("value")})
