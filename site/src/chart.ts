// The agent page's chart data, shaped from the hub's metric answers (GET /v1/agents/{id}/metrics:
// buckets with avg, min, max and last) and kept apart from the drawing so it can be tested without a
// browser.

/** Point is one bucket of a series as the hub answers it (t: the bucket's start, Unix ms). */
export interface Point {
  t: number;
  avg: number;
  last: number;
}

/** Series is one answered series: its labels and buckets. */
export interface Series {
  labels?: Record<string, string>;
  points: Point[] | null;
}

/** Line is what a chart draws: times (Unix ms, ascending) and a value for each, null for none. */
export interface Line {
  t: number[];
  v: (number | null)[];
}

/** gaugeLine draws a gauge's averages. */
export function gaugeLine(points: Point[] | null | undefined): Line {
  const p = [...(points ?? [])].sort((a, b) => a.t - b.t);
  return { t: p.map((x) => x.t), v: p.map((x) => (Number.isFinite(x.avg) ? x.avg : null)) };
}

/**
 * busyLine turns node_cpu_seconds_total (one counter series per mode, summed over the CPUs) into the
 * share of CPU time not idle, in percent, between each bucket and the one before: 100 × (1 − Δidle /
 * Δall modes), from each bucket's last value. A bucket that lacks a mode, or where a counter went
 * back (the host rebooted), has no value.
 */
export function busyLine(series: Series[]): Line {
  const modes = series.length;
  const at = new Map<number, { total: number; idle: number; n: number }>();
  for (const s of series) {
    const idle = s.labels?.["mode"] === "idle";
    for (const p of s.points ?? []) {
      const e = at.get(p.t) ?? { total: 0, idle: 0, n: 0 };
      e.total += p.last;
      if (idle) e.idle += p.last;
      e.n++;
      at.set(p.t, e);
    }
  }
  const ts = [...at.keys()].sort((a, b) => a - b);
  const out: Line = { t: [], v: [] };
  for (let i = 1; i < ts.length; i++) {
    const a = at.get(ts[i - 1]!)!;
    const b = at.get(ts[i]!)!;
    const dt = b.total - a.total;
    const di = b.idle - a.idle;
    out.t.push(ts[i]!);
    out.v.push(a.n === modes && b.n === modes && dt > 0 && di >= 0 && di <= dt ? 100 * (1 - di / dt) : null);
  }
  return out;
}

/** usedPercent is 100 × (1 − part / whole) at each bucket both have (memory or disk in use). */
export function usedPercent(part: Point[] | null | undefined, whole: Point[] | null | undefined): Line {
  const w = new Map((whole ?? []).map((p) => [p.t, p.avg]));
  const out: Line = { t: [], v: [] };
  for (const p of [...(part ?? [])].sort((a, b) => a.t - b.t)) {
    const total = w.get(p.t);
    if (total === undefined) continue;
    out.t.push(p.t);
    out.v.push(total > 0 ? 100 * (1 - p.avg / total) : null);
  }
  return out;
}

/** Stats are a line's latest, lowest and highest value, and how many values it has. */
export interface Stats {
  latest: number;
  min: number;
  max: number;
  n: number;
}

/** stats sums a line up for the text beside its chart; null when it has no value. */
export function stats(l: Line): Stats | null {
  const v = l.v.filter((x): x is number => x !== null && Number.isFinite(x));
  if (v.length === 0) return null;
  return { latest: v[v.length - 1]!, min: Math.min(...v), max: Math.max(...v), n: v.length };
}
