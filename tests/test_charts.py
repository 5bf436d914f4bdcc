"""The inline SVG histograms: bins, the candidate's bar, accessible names."""

import re

from diemthi.web.charts import BASE, WIDTH, Histogram


def bars(path: str) -> list[tuple[float, float, float]]:
    """(x, height, width) of each bar in a path of 'M x BASE v-h h w v h z' pieces."""
    return [(float(x), float(h), float(w))
            for x, h, w in re.findall(r"M([\d.]+) \d+v-([\d.]+)h([\d.]+)v[\d.]+z", path)]


def test_subject_bins_are_quarter_points():
    h = Histogram([[0.0, 3], [0.2, 1], [7.75, 10], [7.8, 2], [10.0, 5]])
    assert h.n == 41 and sum(h.counts) == 21
    assert h.counts[0] == 4  # 0 and 0.2 share the first bin
    assert h.counts[31] == 12 and h.counts[40] == 5
    drawn = bars(h.bars)
    assert len(drawn) == 3
    tallest = max(drawn, key=lambda b: b[1])
    assert abs(tallest[0] - 31 * WIDTH / 41) < 0.1 and abs(tallest[1] - (BASE - 12)) < 0.1


def test_combination_bins_are_half_points():
    h = Histogram([[25.25, 1], [30.0, 1]], top=30)
    assert h.n == 61 and h.counts[50] == 1 and h.counts[60] == 1


def test_the_candidates_bar_is_marked():
    h = Histogram([[5.0, 10], [7.75, 4]])
    svg = str(h.svg("Phổ điểm Toán; điểm của bạn 7,75", 7.75))
    assert svg.startswith('<svg class="chart" viewBox="-8 0 316 96" role="img" '
                          'aria-label="Phổ điểm Toán; điểm của bạn 7,75">')
    mine = re.search(r'<path class="mine" d="([^"]+)"', svg).group(1)
    assert bars(mine)[0][0] == bars(h.svg("x").split('class="bars" d="')[1])[1][0]
    assert ">7,75</text>" in svg
    plain = str(h.svg("Phổ điểm"))
    assert 'class="mine"' not in plain and "style" not in plain


def test_labels_are_escaped():
    assert 'aria-label="a &lt;b&gt; &#34;c&#34;"' in str(Histogram([[1, 1]]).svg('a <b> "c"'))
