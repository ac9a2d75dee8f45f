// One refusal or failure, shown as an alert. A policy denial (403) also names the rule that decided
// it, read from the hub's problem detail ("… (rule: viewer_read_only)").
import { For, Show, type JSX } from "solid-js";
import { describe, ProblemError } from "./api";
import { rulesOf } from "./format";

/** ProblemNote shows err (a ProblemError, a problem, or anything thrown). */
export function ProblemNote(props: { error: unknown }): JSX.Element {
  const problem = () => {
    const e = props.error;
    if (e instanceof ProblemError) return e.problem;
    if (e && typeof e === "object" && "status" in e) return e as { status?: number; detail?: string };
    return null;
  };
  const rules = () => (problem()?.status === 403 ? rulesOf(problem()?.detail) : []);
  return (
    <div role="alert" class="mb-4 rounded border border-danger bg-danger-bg px-3 py-2 text-danger">
      <Show when={problem()?.status === 403}>
        <strong class="block">Denied by policy</strong>
      </Show>
      <span>{describe(problem() ?? props.error)}</span>
      <Show when={rules().length > 0}>
        <p class="mt-1 text-sm" data-testid="denial-rules">
          Decided by rule{rules().length === 1 ? "" : "s"}:{" "}
          <For each={rules()}>{(r, i) => <><code class="font-semibold">{r}</code>{i() < rules().length - 1 ? ", " : ""}</>}</For>
        </p>
      </Show>
    </div>
  );
}
