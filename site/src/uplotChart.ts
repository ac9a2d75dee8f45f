// uPlot behind a small interface, in a module of its own that the agent page imports only when it
// draws (a dynamic import): the first page a person loads does not carry uPlot.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { Line } from "./chart";

/** Colours of a chart, read from the semantic tokens of the theme shown. */
export interface ChartColours {
  line: string;
  axis: string;
  grid: string;
}

/** ChartOptions are what a chart shows beside its line. */
export interface ChartOptions {
  width: number;
  height: number;
  /** The series' name, for uPlot's own use (its legend is off: the page says the values in text). */
  label: string;
  format(v: number): string;
  /** The y range's floor and ceiling when fixed (0–100 for percentages). */
  range?: [number, number];
  /** The time the x axis spans (Unix ms), the whole range asked for, however much of it has data. */
  span: [number, number];
  colours: ChartColours;
  /** Called with the hovered point's index, or null when the cursor leaves. */
  onHover?(i: number | null): void;
}

/** Chart is one drawn chart. */
export interface Chart {
  setData(l: Line, span: [number, number]): void;
  setWidth(w: number): void;
  destroy(): void;
}

function data(l: Line): uPlot.AlignedData {
  return [l.t.map((t) => t / 1000), l.v];
}

/** draw makes a time-axis line chart of l in el. */
export function draw(el: HTMLElement, l: Line, o: ChartOptions): Chart {
  let span = o.span;
  const axis = { stroke: o.colours.axis, grid: { stroke: o.colours.grid, width: 1 }, ticks: { stroke: o.colours.grid, width: 1 } };
  const opts: uPlot.Options = {
    width: o.width,
    height: o.height,
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    padding: [8, 24, 0, 0],
    scales: { x: { time: true, range: () => [span[0] / 1000, span[1] / 1000] }, y: o.range ? { range: o.range } : { range: (_u, lo, hi) => [Math.min(0, lo), hi > lo ? hi * 1.1 : lo + 1] } },
    axes: [axis, { ...axis, size: 56, values: (_u, splits) => splits.map((v) => o.format(v)) }],
    series: [{}, { label: o.label, stroke: o.colours.line, fill: o.colours.line + "22", width: 2, spanGaps: false, points: { show: false } }],
    hooks: {
      setCursor: [
        (u) => {
          const i = u.cursor.idx;
          o.onHover?.(i === undefined || i === null ? null : i);
        },
      ],
    },
  };
  const u = new uPlot(opts, data(l), el);
  return {
    setData: (next, s) => {
      span = s;
      u.setData(data(next));
    },
    setWidth: (w) => u.setSize({ width: w, height: o.height }),
    destroy: () => u.destroy(),
  };
}
