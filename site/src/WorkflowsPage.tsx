// Workflows: the ones stored, and an editor that applies a source (PUT /v1/workflows/{name}); a
// refusal is shown at its line and column, beside the source with line numbers.
import { createResource, createSignal, For, Show, type JSX } from "solid-js";
import { ProblemError, type Hub, type Problem } from "./api";
import { ago } from "./format";
import { ProblemNote } from "./ProblemNote";
import { sourceProblems } from "./workflow";

const input = "w-full rounded border border-border bg-surface px-3 py-2 text-text placeholder:text-muted";

/** WorkflowsPage lists workflows and applies new versions. */
export function WorkflowsPage(props: { hub: Hub }): JSX.Element {
  const [list, { refetch }] = createResource(async () => {
    const { data, error } = await props.hub.GET("/v1/workflows", {});
    if (error) throw new ProblemError(error);
    return data?.workflows ?? [];
  });
  const [name, setName] = createSignal("");
  const [source, setSource] = createSignal("");
  const [refusal, setRefusal] = createSignal<Problem | null>(null);
  const [applied, setApplied] = createSignal("");
  const problems = () => sourceProblems(refusal());
  const lines = () => source().split("\n");
  const at = (n: number) => problems().filter((p) => p.line === n);

  async function apply(e: SubmitEvent) {
    e.preventDefault();
    setRefusal(null);
    setApplied("");
    const { data, error } = await props.hub.PUT("/v1/workflows/{name}", { params: { path: { name: name().trim() } }, body: { source: source() } });
    if (error) setRefusal(error);
    else {
      setApplied(`Applied ${name().trim()} as version ${data?.version ?? "?"}.`);
      void refetch();
    }
  }

  return (
    <main class="mx-auto max-w-7xl px-4 py-6">
      <h1 class="mb-4 text-2xl font-semibold">Workflows</h1>
      <Show when={list.error}>
        <ProblemNote error={list.error} />
      </Show>
      <div class="mb-6 overflow-x-auto rounded-lg border border-border bg-surface">
        <table class="w-full text-left text-sm">
          <caption class="sr-only">Workflows</caption>
          <thead class="bg-surface-2">
            <tr>
              <th scope="col" class="px-3 py-2">Workflow</th>
              <th scope="col" class="px-3 py-2">Version</th>
              <th scope="col" class="px-3 py-2">Steps</th>
              <th scope="col" class="px-3 py-2">Applied</th>
            </tr>
          </thead>
          <tbody>
            <For
              each={list.latest ?? []}
              fallback={
                <tr>
                  <td colSpan={4} class="px-3 py-6 text-center text-muted">
                    {list.loading ? "Loading…" : "No workflows yet."}
                  </td>
                </tr>
              }
            >
              {(w) => (
                <tr class="border-t border-border" data-workflow={w.name}>
                  <td class="px-3 py-2">
                    <button type="button" class="font-medium text-accent underline-offset-4 hover:underline" onClick={async () => {
                      const { data } = await props.hub.GET("/v1/workflows/{name}", { params: { path: { name: w.name } } });
                      setName(w.name);
                      setSource(data?.source ?? "");
                      setRefusal(null);
                    }}>
                      {w.name}
                    </button>
                    <div class="text-xs text-muted">{w.description ?? ""}</div>
                  </td>
                  <td class="px-3 py-2">{w.version}</td>
                  <td class="px-3 py-2">{w.steps}</td>
                  <td class="px-3 py-2">
                    {ago(w.appliedAt, Date.now())} by <span class="font-mono text-xs">{w.appliedBy}</span>
                  </td>
                </tr>
              )}
            </For>
          </tbody>
        </table>
      </div>

      <h2 class="mb-2 text-lg font-semibold">Apply a workflow</h2>
      <form class="space-y-4 rounded-lg border border-border bg-surface p-6" onSubmit={apply}>
        <div>
          <label for="wf-name" class="mb-1 block text-sm font-medium">
            Name
          </label>
          <input id="wf-name" class={input + " max-w-sm"} value={name()} onInput={(e) => setName(e.currentTarget.value)} />
        </div>
        <div>
          <label for="wf-source" class="mb-1 block text-sm font-medium">
            Source (YAML)
          </label>
          <textarea
            id="wf-source"
            rows={12}
            class={input + " font-mono text-sm"}
            value={source()}
            onInput={(e) => setSource(e.currentTarget.value)}
            aria-invalid={problems().length > 0}
            aria-describedby={problems().length ? "wf-problems" : undefined}
          />
        </div>
        <Show when={refusal()}>
          <ProblemNote error={new ProblemError(refusal()!)} />
        </Show>
        <Show when={problems().length > 0}>
          <div id="wf-problems">
            <h3 class="mb-1 text-sm font-semibold">Where the hub refused it</h3>
            <ol class="overflow-x-auto rounded border border-border bg-surface-2 py-2 font-mono text-xs" data-testid="wf-source-view">
              <For each={lines()}>
                {(text, i) => (
                  <li data-line={i() + 1} data-bad={at(i() + 1).length > 0 ? "true" : undefined} class={"px-3 " + (at(i() + 1).length ? "bg-danger-bg text-danger" : "")}>
                    <span class="mr-3 inline-block w-8 select-none text-right text-muted">{i() + 1}</span>
                    <span class="whitespace-pre">{text}</span>
                    <For each={at(i() + 1)}>
                      {(p) => (
                        <div class="ml-11 whitespace-pre-wrap font-sans font-semibold" data-testid="wf-problem">
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
        <p class="text-sm text-ok" aria-live="polite" data-testid="wf-applied">
          {applied()}
        </p>
        <button type="submit" class="rounded bg-accent px-4 py-2 font-medium text-accent-text">
          Apply
        </button>
      </form>
    </main>
  );
}
