// An agent's main series charted with uPlot (loaded on first use): CPU busy, memory in use, load and
// the root filesystem in use, over the last 1, 6 or 24 hours, asked again every 10 s (live, so the
// agent uploads its samples every 10 s while the page is open). Colours come from the theme's tokens
// and follow a theme change. The canvases are hidden from assistive technology: a table says each
// series' latest, lowest and highest value, and each chart the value under the cursor.
import { createEffect, createMemo, createResource, createSignal, For, Index, onCleanup, onMount, Show, type Accessor, type JSX } from "solid-js";
import { ProblemError, type Hub } from "./api";
import { busyLine, gaugeLine, stats, usedPercent, type Line, type Series } from "./chart";
import { ProblemNote } from "./ProblemNote";
import type { Chart, ChartColours } from "./uplotChart";

/** Range is how far back the charts look. */
export type Range = "1h" | "6h" | "24h";
const rangeMs: Record<Range, number> = { "1h": 3600e3, "6h": 6 * 3600e3, "24h": 24 * 3600e3 };
const ranges: [Range, string][] = [
  ["1h", "1 hour"],
  ["6h", "6 hours"],
  ["24h", "24 hours"],
];

/** Charted is one chart's line and how it is worded. */
interface Charted {
  key: string;
  title: string;
  /** What is charted, for the text alternative. */
  what: string;
  line: Line;
  /** The time the chart spans, Unix ms: the range asked for, up to when it was asked. */
  span: [number, number];
  format(v: number): string;
  range?: [number, number];
}

const pct = (v: number) => `${v.toFixed(v >= 10 || v === 0 ? 0 : 1)}%`;
const num = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2));

/** themeColours reads the chart colours from the semantic tokens as the page shows them now. */
function themeColours(): ChartColours {
  const css = getComputedStyle(document.documentElement);
  const v = (n: string) => css.getPropertyValue(`--pulse-${n}`).trim();
  return { line: v("accent"), axis: v("muted"), grid: v("border") };
}

/** createThemeTick changes whenever the theme may have changed (the toggle, the system's scheme). */
function createThemeTick(): Accessor<number> {
  const [tick, setTick] = createSignal(0);
  const bump = () => setTick((n) => n + 1);
  const mq = matchMedia("(prefers-color-scheme: dark)");
  mq.addEventListener("change", bump);
  const mo = new MutationObserver(bump);
  mo.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  onCleanup(() => {
    mq.removeEventListener("change", bump);
    mo.disconnect();
  });
  return tick;
}

let lib: Promise<typeof import("./uplotChart")> | undefined;
const uplot = () => (lib ??= import("./uplotChart"));

function MetricChart(props: { c: Charted; theme: Accessor<number> }): JSX.Element {
  let box: HTMLDivElement | undefined;
  const [width, setWidth] = createSignal(0);
  const [hover, setHover] = createSignal<number | null>(null);
  let chart: Chart | undefined;
  onMount(() => {
    const ro = new ResizeObserver(() => setWidth(box?.clientWidth ?? 0));
    if (box) ro.observe(box);
    setWidth(box?.clientWidth ?? 0);
    onCleanup(() => ro.disconnect());
  });
  // Drawn anew when the theme changes (its colours are the chart's); new data is set in place.
  const sized = createMemo(() => width() > 0);
  createEffect(() => {
    props.theme();
    if (!box || !sized()) return;
    let gone = false;
    void uplot().then((m) => {
      if (gone || !box) return;
      chart?.destroy();
      chart = m.draw(box, props.c.line, {
        width: box.clientWidth,
        height: 160,
        label: props.c.title,
        span: props.c.span,
        format: props.c.format,
        ...(props.c.range ? { range: props.c.range } : {}),
        colours: themeColours(),
        onHover: setHover,
      });
    });
    onCleanup(() => {
      gone = true;
    });
  });
  createEffect(() => chart?.setData(props.c.line, props.c.span));
  createEffect(() => {
    const w = width();
    if (w > 0) chart?.setWidth(w);
  });
  onCleanup(() => chart?.destroy());
  const at = () => {
    const i = hover();
    if (i === null) return "";
    const t = props.c.line.t[i];
    const v = props.c.line.v[i];
    return t === undefined ? "" : `${new Date(t).toLocaleTimeString()}: ${v === null || v === undefined ? "no value" : props.c.format(v)}`;
  };
  return (
    <figure class="m-0 min-w-0" data-chart={props.c.key} data-points={props.c.line.t.length}>
      <figcaption class="mb-1 flex flex-wrap justify-between gap-2 text-sm">
        <span class="font-semibold">{props.c.title}</span>
        <span class="font-mono text-xs text-muted">{at()}</span>
      </figcaption>
      <div ref={box} aria-hidden="true" class="h-40 w-full" data-testid="uplot-box" />
    </figure>
  );
}

/** AgentMetrics charts agent id's main series. */
export function AgentMetrics(props: { hub: Hub; id: string }): JSX.Element {
  const [range, setRange] = createSignal<Range>("1h");
  const theme = createThemeTick();
  const query = async (name: string, from: Range, extra: { label?: string[]; live?: boolean } = {}): Promise<Series[]> => {
    const { data, error } = await props.hub.GET("/v1/agents/{id}/metrics", {
      params: { path: { id: props.id }, query: { name, from, ...extra } },
    });
    if (error) throw new ProblemError(error);
    return data?.series ?? [];
  };
  const [charts, { refetch }] = createResource(range, async (from): Promise<Charted[]> => {
    const root = { label: ["mountpoint=/"] };
    const now = Date.now();
    const span: [number, number] = [now - rangeMs[from], now];
    const [cpu, avail, total, load, fsAvail, fsSize] = await Promise.all([
      query("node_cpu_seconds_total", from),
      query("node_memory_MemAvailable_bytes", from),
      query("node_memory_MemTotal_bytes", from),
      query("node_load1", from, { live: true }),
      query("node_filesystem_avail_bytes", from, root),
      query("node_filesystem_size_bytes", from, root),
    ]);
    return [
      { key: "cpu", span, title: "CPU busy", what: "share of CPU time not idle", line: busyLine(cpu), format: pct, range: [0, 100] },
      { key: "memory", span, title: "Memory in use", what: "memory not available, of the total", line: usedPercent(avail[0]?.points, total[0]?.points), format: pct, range: [0, 100] },
      { key: "load", span, title: "Load (1 min)", what: "node_load1", line: gaugeLine(load[0]?.points), format: num },
      { key: "disk", span, title: "Disk in use (/)", what: "the root filesystem's space not available", line: usedPercent(fsAvail[0]?.points, fsSize[0]?.points), format: pct, range: [0, 100] },
    ];
  });
  const timer = setInterval(() => void refetch(), 10000);
  onCleanup(() => clearInterval(timer));
  const label = () => ranges.find(([r]) => r === range())?.[1] ?? range();
  const list = () => charts.latest ?? [];

  return (
    <section class="mb-6 rounded-lg border border-border bg-surface p-4" aria-labelledby="metrics-h" data-testid="agent-metrics">
      <div class="mb-3 flex flex-wrap items-center gap-4">
        <h2 id="metrics-h" class="text-lg font-semibold">
          Metrics, last {label()}
        </h2>
        <fieldset class="flex gap-3 text-sm">
          <legend class="sr-only">Range</legend>
          <For each={ranges}>
            {([r, l]) => (
              <label class="flex items-center gap-1">
                <input type="radio" name="metrics-range" value={r} checked={range() === r} onChange={() => setRange(r)} />
                {l}
              </label>
            )}
          </For>
        </fieldset>
        <span class="text-xs text-muted">{charts.loading ? "loading…" : "refreshed every 10 s"}</span>
      </div>
      <Show when={charts.error}>
        <ProblemNote error={charts.error} />
      </Show>
      <Show when={list().length > 0}>
        <div class="grid gap-4 md:grid-cols-2">
          <Index each={list()}>{(c) => <MetricChart c={c()} theme={theme} />}</Index>
        </div>
        <div class="mt-4 overflow-x-auto">
          <table class="w-full text-left text-sm" data-testid="metrics-summary">
            <caption class="mb-1 text-left text-sm text-muted">The charts in numbers, over the last {label()}</caption>
            <thead class="bg-surface-2">
              <tr>
                <th scope="col" class="px-3 py-1">Series</th>
                <th scope="col" class="px-3 py-1">Latest</th>
                <th scope="col" class="px-3 py-1">Lowest</th>
                <th scope="col" class="px-3 py-1">Highest</th>
                <th scope="col" class="px-3 py-1">Points</th>
              </tr>
            </thead>
            <tbody>
              <For each={list()}>
                {(c) => {
                  const s = () => stats(c.line);
                  return (
                    <tr class="border-t border-border" data-series={c.key}>
                      <th scope="row" class="px-3 py-1 font-medium">
                        {c.title} <span class="font-normal text-muted">({c.what})</span>
                      </th>
                      <Show
                        when={s()}
                        fallback={
                          <td colSpan={4} class="px-3 py-1 text-muted">
                            no samples yet
                          </td>
                        }
                      >
                        {(x) => (
                          <>
                            <td class="px-3 py-1 font-mono" data-testid="latest">
                              {c.format(x().latest)}
                            </td>
                            <td class="px-3 py-1 font-mono">{c.format(x().min)}</td>
                            <td class="px-3 py-1 font-mono">{c.format(x().max)}</td>
                            <td class="px-3 py-1 font-mono">{x().n}</td>
                          </>
                        )}
                      </Show>
                    </tr>
                  );
                }}
              </For>
            </tbody>
          </table>
        </div>
      </Show>
    </section>
  );
}
