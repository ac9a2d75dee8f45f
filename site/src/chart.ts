// The sparkline's geometry, kept apart from the drawing so it can be tested without a browser.

/** sparkPath draws values (oldest first) as an SVG path across a w×h box; "" for no values. */
export function sparkPath(values: number[], w: number, h: number): string {
  const v = values.filter((x) => Number.isFinite(x));
  if (v.length === 0) return "";
  const lo = Math.min(...v);
  const hi = Math.max(...v);
  const span = hi - lo || 1;
  const stepX = v.length > 1 ? w / (v.length - 1) : 0;
  const y = (x: number) => (hi === lo ? h / 2 : h - ((x - lo) / span) * h);
  return v.map((x, i) => `${i === 0 ? "M" : "L"}${round(i * stepX)},${round(y(x))}`).join(" ");
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
