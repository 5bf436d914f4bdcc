"""The inline SVG histograms: bins, the outline of the bars, the candidate's bar."""

import re

from diemthi.web.charts import BASE, Histogram


def outline(path: str) -> list[int]:
    """The height of each bin from the step outline 'M0 78V<y>h<w>V<y>h<w>...V78z'."""
    return [BASE - int(y) for y in re.findall(r"V(\d+)h", path)]


def test_subject_bins_are_quarter_points():
    h = Histogram([[0.0, 3], [0.2, 1], [7.75, 10], [7.8, 2], [10.0, 5]])
    assert h.n == 41 and sum(h.counts) == 21 and h.bar == 7.3 and h.width == 299.3
    assert h.counts[0] == 4  # 0 and 0.2 share the first bin
    assert h.counts[31] == 12 and h.counts[40] == 5
    heights = outline(h.bars)
    assert len(heights) == 41
    assert heights[31] == BASE - 12  # the tallest bin reaches the top
    assert heights[0] == round(4 / 12 * (BASE - 12)) and heights[40] == round(5 / 12 * (BASE - 12))
    assert [i for i, x in enumerate(heights) if x] == [0, 31, 40]  # empty bins stay flat
    assert h.bars.startswith(f"M0 {BASE}V") and h.bars.endswith(f"V{BASE}z")


def test_combination_bins_are_half_points():
    h = Histogram([[25.25, 1], [30.0, 1]], top=30)
    assert h.n == 61 and h.counts[50] == 1 and h.counts[60] == 1 and h.bar == 4.9


def test_a_tiny_bin_is_still_visible():
    h = Histogram([[5.0, 100000], [9.0, 1]])
    assert outline(h.bars)[36] == 1


def test_the_candidates_bar_is_marked():
    h = Histogram([[5.0, 10], [7.75, 4]])
    svg = str(h.svg("Phổ điểm Toán; điểm của bạn 7,75", 7.75))
    assert svg.startswith('<svg class="chart" viewBox="-8 0 315.3 96" role="img" '
                          'aria-label="Phổ điểm Toán; điểm của bạn 7,75">')
    mine = re.search(r'<path class="mine" d="M([\d.]+) 78v-(\d+)h7.3v\d+z"', svg)
    assert float(mine.group(1)) == round(31 * 7.3, 1)  # bin 31 holds 7.75
    assert int(mine.group(2)) == outline(h.bars)[31]
    assert ">7,75</text>" in svg
    plain = str(h.svg("Phổ điểm"))
    assert 'class="mine"' not in plain and "style" not in plain


def test_labels_are_escaped():
    assert 'aria-label="a &lt;b&gt; &#34;c&#34;"' in str(Histogram([[1, 1]]).svg('a <b> "c"'))
