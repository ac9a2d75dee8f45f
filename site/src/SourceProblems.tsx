// A refused source (a workflow's, a plan's) shown with line numbers and each of the hub's problems
// under the line and column it names (sourceProblems in workflow.ts reads them).
import { For, Show, type JSX } from "solid-js";
import type { SourceProblem } from "./workflow";

/**
 * SourceProblems lists source's lines, the ones problems name marked; prefix names its test ids
 * (PREFIX-source-view, PREFIX-problem) and id is the element's, for aria-describedby.
 */
export function SourceProblems(props: { id: string; prefix: string; source: string; problems: SourceProblem[] }): JSX.Element {
  const lines = () => props.source.split("\n");
  const at = (n: number) => props.problems.filter((p) => p.line === n);
  const whole = () => at(0);
  return (
    <Show when={props.problems.length > 0}>
      <div id={props.id}>
        <h3 class="mb-1 text-sm font-semibold">Where the hub refused it</h3>
        <For each={whole()}>
          {(p) => (
            <p class="mb-1 text-sm font-semibold text-danger" data-testid={`${props.prefix}-problem`}>
              {p.path ? `${p.path}: ` : ""}
              {p.message}
            </p>
          )}
        </For>
        <ol class="overflow-x-auto rounded border border-border bg-surface-2 py-2 font-mono text-xs" data-testid={`${props.prefix}-source-view`}>
          <For each={lines()}>
            {(text, i) => (
              <li data-line={i() + 1} data-bad={at(i() + 1).length > 0 ? "true" : undefined} class={"px-3 " + (at(i() + 1).length ? "bg-danger-bg text-danger" : "")}>
                <span class="mr-3 inline-block w-8 select-none text-right text-muted">{i() + 1}</span>
                <span class="whitespace-pre">{text}</span>
                <For each={at(i() + 1)}>
                  {(p) => (
                    <div class="ml-11 whitespace-pre-wrap font-sans font-semibold" data-testid={`${props.prefix}-problem`}>
                      line {p.line}, column {p.column}
                      {p.path ? ` (${p.path})` : ""}: {p.message}
                    </div>
                  )}
                </For>
              </li>
            )}
          </For>
        </ol>
      </div>
    </Show>
  );
}
