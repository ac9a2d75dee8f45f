// Workflows: the ones stored, a run form built from a workflow's declared inputs (POST /v1/executions,
// then its execution page), and an editor that applies a source (PUT /v1/workflows/{name}); a refusal
// is shown at its line and column, beside the source with line numbers.
import { createResource, createSignal, For, Show, type JSX } from "solid-js";
import { ProblemError, type Hub, type Problem } from "./api";
import { ago } from "./format";
import { ProblemNote } from "./ProblemNote";
import { go } from "./router";
import { SourceProblems } from "./SourceProblems";
import { inputsOf, inputValues, sourceProblems, type InputSpec } from "./workflow";

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
  // The run form: the workflow chosen to run, its inputs, the values typed, and what was wrong.
  const [running, setRunning] = createSignal<{ name: string; inputs: InputSpec[] } | null>(null);
  const [values, setValues] = createSignal<Record<string, string>>({});
  const [wrong, setWrong] = createSignal<Record<string, string>>({});
  const [runError, setRunError] = createSignal<unknown>(null);

  async function openRun(wf: string) {
    setRunError(null);
    setWrong({});
    const { data, error } = await props.hub.GET("/v1/workflows/{name}", { params: { path: { name: wf } } });
    if (error) {
      setRunning(null);
      setRunError(new ProblemError(error));
      return;
    }
    const specs = inputsOf(data?.definition);
    setValues(Object.fromEntries(specs.map((i) => [i.name, i.default])));
    setRunning({ name: wf, inputs: specs });
    queueMicrotask(() => document.getElementById("run-h")?.focus());
  }

  async function run(e: SubmitEvent) {
    e.preventDefault();
    const r = running();
    if (!r) return;
    setRunError(null);
    const { inputs, problems: bad } = inputValues(r.inputs, values());
    setWrong(bad);
    if (Object.keys(bad).length > 0) return;
    const { data, error } = await props.hub.POST("/v1/executions", { body: { workflow: r.name, inputs } });
    if (error) setRunError(new ProblemError(error));
    else if (data) go({ page: "execution", id: data.id });
  }

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
              <th scope="col" class="px-3 py-2"><span class="sr-only">Actions</span></th>
            </tr>
          </thead>
          <tbody>
            <For
              each={list.latest ?? []}
              fallback={
                <tr>
                  <td colSpan={5} class="px-3 py-6 text-center text-muted">
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
                  <td class="px-3 py-2 text-right">
                    <button type="button" class="rounded border border-border bg-surface px-3 py-1 text-sm" aria-label={`Run ${w.name}`} onClick={() => void openRun(w.name)}>
                      Run
                    </button>
                  </td>
                </tr>
              )}
            </For>
          </tbody>
        </table>
      </div>

      <Show when={runError() && !running()}>
        <ProblemNote error={runError()} />
      </Show>
      <Show when={running()}>
        {(r) => (
          <section aria-labelledby="run-h" class="mb-6">
            <h2 id="run-h" tabindex="-1" class="mb-2 text-lg font-semibold">
              Run {r().name}
            </h2>
            <form class="space-y-4 rounded-lg border border-border bg-surface p-6" onSubmit={run} noValidate>
              <Show when={r().inputs.length === 0}>
                <p class="text-sm text-muted">This workflow takes no inputs.</p>
              </Show>
              <For each={r().inputs}>
                {(i) => {
                  const id = `run-in-${i.name}`;
                  const help = () => [i.description ? `${id}-help` : "", wrong()[i.name] ? `${id}-err` : ""].filter(Boolean).join(" ") || undefined;
                  return (
                    <div data-input={i.name}>
                      <label for={id} class="mb-1 block text-sm font-medium">
                        {i.name}
                        {i.required ? " (required)" : ""} <span class="font-normal text-muted">{i.type}</span>
                      </label>
                      <Show
                        when={i.type === "bool"}
                        fallback={
                          <input
                            id={id}
                            class={input + " max-w-sm"}
                            inputMode={i.type === "int" ? "numeric" : undefined}
                            required={i.required}
                            value={values()[i.name] ?? ""}
                            aria-invalid={wrong()[i.name] ? true : undefined}
                            aria-describedby={help()}
                            onInput={(e) => setValues({ ...values(), [i.name]: e.currentTarget.value })}
                          />
                        }
                      >
                        <select
                          id={id}
                          class={input + " max-w-sm"}
                          value={values()[i.name] ?? ""}
                          aria-invalid={wrong()[i.name] ? true : undefined}
                          aria-describedby={help()}
                          onChange={(e) => setValues({ ...values(), [i.name]: e.currentTarget.value })}
                        >
                          <option value="">{i.required ? "choose" : "the default"}</option>
                          <option value="true">true</option>
                          <option value="false">false</option>
                        </select>
                      </Show>
                      <Show when={i.description}>
                        <p id={`${id}-help`} class="mt-1 text-xs text-muted">
                          {i.description}
                        </p>
                      </Show>
                      <Show when={wrong()[i.name]}>
                        <p id={`${id}-err`} class="mt-1 text-sm text-danger">
                          {wrong()[i.name]}
                        </p>
                      </Show>
                    </div>
                  );
                }}
              </For>
              <Show when={runError()}>
                <ProblemNote error={runError()} />
              </Show>
              <div class="flex gap-2">
                <button type="submit" class="rounded bg-accent px-4 py-2 font-medium text-accent-text">
                  Start execution
                </button>
                <button type="button" class="rounded border border-border bg-surface px-4 py-2 text-text" onClick={() => setRunning(null)}>
                  Close
                </button>
              </div>
            </form>
          </section>
        )}
      </Show>

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
        <SourceProblems id="wf-problems" prefix="wf" source={source()} problems={problems()} />
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
