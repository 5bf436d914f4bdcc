"""Distribution charts (phổ điểm) as inline SVG, drawn at render time.

A chart is the same for every candidate of a snapshot and scope; only the candidate's
own bar differs. :class:`Histogram` bins a distribution once and draws its bars as one
``<path>``; :meth:`Histogram.svg` adds the marked bar, so a chart costs a few string
joins. Colours live in the CSS (classes ``bars``, ``mine``), which
keeps the markup within a strict Content-Security-Policy (no inline styles).
"""

from __future__ import annotations

from markupsafe import Markup, escape

from ..formats import score

WIDTH, HEIGHT, BASE = 300, 96, 78  # drawing area; bars stand on y = BASE
MARGIN = 8  # each side, for the first and last tick labels
TICKS = {10: (0, 2, 4, 6, 8, 10), 30: (0, 5, 10, 15, 20, 25, 30)}


class Histogram:
    """One distribution binned for drawing: 0.25-wide bins on 0–10, 0.5 on 0–30.

    The bars are one step outline (``V<height>h<bin>`` per bin, integers but the bin
    width), a few hundred bytes for a whole chart."""

    def __init__(self, histogram: list[list[float]], top: int = 10):
        self.top = top
        self.step = 0.25 if top <= 10 else 0.5
        self.n = round(top / self.step) + 1
        self.bar = round(WIDTH / self.n, 1)  # 7.3 for 41 bins: every x is bar * i exactly
        self.width = round(self.bar * self.n, 1)
        self.counts = [0] * self.n
        for value, count in histogram:
            self.counts[self.index(value)] += int(count)
        peak = max(self.counts) or 1
        self.heights = [max(round(c / peak * (BASE - 12)), 1) if c else 0 for c in self.counts]
        self.bars = f"M0 {BASE}" + "".join(f"V{BASE - h}h{self.bar:g}" for h in self.heights) \
            + f"V{BASE}z"
        ticks = "".join(
            f'<text x="{self.x(t) + self.bar / 2:.1f}" y="{HEIGHT - 4}">{t}</text>'
            for t in TICKS.get(top, (0, top)))
        self.axis = f'<path class="axis" d="M0 {BASE}.5H{self.width:g}"/>{ticks}'

    def index(self, value: float) -> int:
        return min(max(int(value / self.step + 1e-9), 0), self.n - 1)

    def x(self, value: float) -> float:
        return self.index(value) * self.bar

    def svg(self, label: str, mark: float | None = None) -> Markup:
        """The chart, with ``mark`` (the candidate's score) drawn in its own colour.

        ``label`` is the accessible name: what a screen reader says instead of the bars."""
        mine = ""
        if mark is not None:
            i = self.index(mark)
            h = max(self.heights[i], 1)
            x = i * self.bar
            middle = x + self.bar / 2
            mine = (f'<path class="mine" d="M{x:.1f} {BASE}v-{h}h{self.bar:g}v{h}z"/>'
                    f'<path class="pin" d="M{middle:.1f} {BASE - h - 2}v-4"/>'
                    f'<text class="you" x="{min(max(middle, 24), self.width - 24):.1f}" '
                    f'y="{max(BASE - h - 9, 9)}">{score(mark)}</text>')
        return Markup(
            f'<svg class="chart" viewBox="-{MARGIN} 0 {self.width + 2 * MARGIN:g} {HEIGHT}" '
            f'role="img" aria-label="{escape(label)}"><path class="bars" d="{self.bars}"/>'
            f"{mine}{self.axis}</svg>")
