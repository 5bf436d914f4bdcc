// Phổ điểm as a small SVG, drawn as the web pages draw it (diemthi/web/charts.py):
// 0.25-wide bins on 0–10, the candidate's bar in its own colour with the score above it.
import React from "react";
import { score } from "./format.js";

const WIDTH = 300;
const HEIGHT = 96;
const BASE = 78; // bars stand on y = BASE
const TICKS = [0, 2, 4, 6, 8, 10];

export function Histogram({ histogram, mark, label, top = 10 }) {
  const step = 0.25;
  const n = Math.round(top / step) + 1;
  const index = (value) => Math.min(Math.max(Math.floor(value / step + 1e-9), 0), n - 1);
  const counts = new Array(n).fill(0);
  for (const [value, count] of histogram) counts[index(value)] += count;
  const bar = WIDTH / n;
  const peak = Math.max(...counts) || 1;
  const heights = counts.map((c) => (c / peak) * (BASE - 12));
  const path = (i) => {
    const h = Math.max(heights[i], 1);
    return `M${(i * bar).toFixed(1)} ${BASE}v-${h.toFixed(1)}h${bar.toFixed(1)}v${h.toFixed(1)}z`;
  };
  const bars = counts.map((c, i) => (c ? path(i) : "")).join("");
  const mine = index(mark);
  const x = mine * bar + bar / 2;
  return (
    <svg className="chart" viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={label}>
      <path className="bars" d={bars} />
      <path className="mine" d={path(mine)} />
      <path className="pin" d={`M${x.toFixed(1)} ${(BASE - heights[mine] - 2).toFixed(1)}v-4`} />
      <text className="you" x={Math.min(Math.max(x, 24), WIDTH - 24).toFixed(1)}
        y={Math.max(BASE - heights[mine] - 9, 9).toFixed(1)}>
        {score(mark)}
      </text>
      <path className="axis" d={`M0 ${BASE}.5H${WIDTH}`} />
      {TICKS.map((t) => (
        <text key={t} x={(index(t) * bar + bar / 2).toFixed(1)} y={HEIGHT - 4}>
          {t}
        </text>
      ))}
    </svg>
  );
}
