// A small line chart of one metric series, drawn as inline SVG, with its latest, lowest and highest
// value said in words for screen readers (and everyone else).
import { Show, type JSX } from "solid-js";
import { sparkPath } from "./chart";

/** Sparkline draws values (oldest first). */
export function Sparkline(props: { label: string; values: number[] }): JSX.Element {
  const w = 320;
  const h = 64;
  const last = () => props.values[props.values.length - 1];
  const fmt = (n: number) => (Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(2));
  return (
    <Show when={props.values.length > 0} fallback={<p class="text-sm text-muted">No samples in the last hour yet.</p>}>
      <figure class="m-0">
        <svg
          role="img"
          aria-label={`${props.label}: ${props.values.length} points, latest ${fmt(last() ?? 0)}`}
          viewBox={`0 0 ${w} ${h}`}
          class="h-16 w-full max-w-md text-accent"
          preserveAspectRatio="none"
          data-testid="sparkline"
        >
          <path d={sparkPath(props.values, w, h)} fill="none" stroke="currentColor" stroke-width="2" vector-effect="non-scaling-stroke" />
        </svg>
        <figcaption class="mt-1 text-sm text-muted">
          latest {fmt(last() ?? 0)}, min {fmt(Math.min(...props.values))}, max {fmt(Math.max(...props.values))}
        </figcaption>
      </figure>
    </Show>
  );
}
