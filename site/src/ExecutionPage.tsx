// One execution of a workflow: its steps on a live timeline (every recorded event on the execution's
// stream, GET /v1/executions/{id}/events, brings its state again; polled each second while the stream
// is down), each step's commands linked to their page, the prompt a step waits on with its choices or
// a text answer (POST /v1/executions/{id}/respond), and cancel.
import { createSignal, For, onCleanup, Show, type JSX } from "solid-js";
import { asProblem, ProblemError, type Hub } from "./api";
import type { components } from "../../openapi/ts/pulse-api";
import { Badge } from "./Badge";
import { ProblemNote } from "./ProblemNote";
import { href } from "./router";
import { watch, type StreamState } from "./sse";
import { stepOrder } from "./workflow";

type Execution = components["schemas"]["ExecutionView"];
type Step = components["schemas"]["StepState"];

const finalExec = new Set(["succeeded", "failed", "cancelled"]);

function time(s: string | undefined): string {
  if (!s) return "";
  const t = new Date(s);
  return Number.isNaN(t.getTime()) ? s : t.toLocaleTimeString();
}

/** ExecutionPage shows execution id, live. */
export function ExecutionPage(props: { hub: Hub; hubURL: string; token: () => string | null; id: string }): JSX.Element {
  const [exec, setExec] = createSignal<Execution | null>(null);
  const [loadError, setLoadError] = createSignal<unknown>(null);
  const [actionError, setActionError] = createSignal<unknown>(null);
  const [stream, setStream] = createSignal<StreamState>("connecting");
  const [said, setSaid] = createSignal("");
  const [text, setText] = createSignal<Record<string, string>>({});
  const [busy, setBusy] = createSignal(false);
  const abort = new AbortController();
  onCleanup(() => abort.abort());

  const done = () => finalExec.has(exec()?.state.status ?? "");

  // One load at a time; an event arriving during a load asks for one more after it.
  let loading = false;
  let again = false;
  async function load(): Promise<void> {
    if (loading) {
      again = true;
      return;
    }
    loading = true;
    try {
      do {
        again = false;
        const { data, error } = await props.hub.GET("/v1/executions/{id}", { params: { path: { id: props.id } } });
        if (error) setLoadError(new ProblemError(error));
        else if (data) {
          setLoadError(null);
          setExec(data);
        }
      } while (again && !abort.signal.aborted);
    } finally {
      loading = false;
    }
  }

  void load().then(() => {
    if (abort.signal.aborted) return;
    void watch({
      url: new URL(`v1/executions/${encodeURIComponent(props.id)}/events`, props.hubURL + "/").toString(),
      token: props.token,
      signal: abort.signal,
      finished: () => done(),
      onState(s) {
        setStream(s);
        if (s === "ended" || s === "live") void load();
      },
      onRefused: async (resp) => {
        setStream("ended");
        if (resp.status !== 404) setActionError(new ProblemError(await asProblem(resp)));
      },
      onEvent: () => void load(),
    });
  });
  // While the stream is not live (connecting, reconnecting, refused), poll each second.
  const poll = setInterval(() => {
    if (stream() !== "live" && !done()) void load();
  }, 1000);
  onCleanup(() => clearInterval(poll));

  // Steps by name, so a reload keeps each step's markup (and a half-typed answer) in place.
  const names = (): string[] => {
    const st = exec()?.state;
    return st ? stepOrder(st.steps, st.timeline ?? []) : [];
  };
  const blank: Step = { name: "", type: "", status: "pending" };
  const stepOf = (n: string): Step => exec()?.state.steps[n] ?? { ...blank, name: n };

  async function respond(step: string, answer: string) {
    if (!answer.trim()) {
      setActionError(new ProblemError({ status: 422, title: "An answer is needed", detail: "Type an answer first." }));
      return;
    }
    setActionError(null);
    setBusy(true);
    const { data, error } = await props.hub.POST("/v1/executions/{id}/respond", { params: { path: { id: props.id } }, body: { step, answer } });
    setBusy(false);
    if (error) setActionError(new ProblemError(error));
    else {
      setSaid(`You answered “${answer}” to ${step}.`);
      if (data) setExec(data);
    }
  }

  async function cancel() {
    setActionError(null);
    const { data, error } = await props.hub.POST("/v1/executions/{id}/cancel", { params: { path: { id: props.id } } });
    if (error) setActionError(new ProblemError(error));
    else if (data) setExec(data);
  }

  const inputs = () => Object.entries(exec()?.state.inputs ?? {});

  return (
    <main class="mx-auto max-w-7xl px-4 py-6">
      <nav aria-label="Breadcrumb" class="mb-2 text-sm">
        <a class="text-accent underline" href={href({ page: "executions" })}>
          Executions
        </a>{" "}
        / execution
      </nav>
      <Show when={loadError()}>
        <ProblemNote error={loadError()} />
      </Show>
      <Show when={exec()} fallback={<h1 class="mb-4 text-2xl font-semibold">{loadError() ? props.id : "Loading…"}</h1>}>
        {(x) => (
          <>
            <div class="mb-2 flex flex-wrap items-center gap-3">
              <h1 class="text-2xl font-semibold">{x().workflow}</h1>
              <span data-testid="execution-status">
                <Badge state={x().state.status} />
              </span>
              <span class="text-sm text-muted" aria-live="polite" data-testid="stream-state">
                {stream() === "live" ? "live" : stream() === "ended" ? "finished" : stream()}
              </span>
              <Show when={!done()}>
                <button type="button" class="ml-auto rounded border-2 border-danger-strong bg-danger-bg px-4 py-2 font-medium text-danger" onClick={() => void cancel()}>
                  Cancel execution
                </button>
              </Show>
            </div>
            <p class="mb-4 text-sm text-muted">
              <span class="font-mono">{x().id}</span> · version {x().version} · by <span class="font-mono">{x().startedBy}</span>
              {x().state.startedAt ? ` · started ${time(x().state.startedAt)}` : ""}
              {x().state.finishedAt ? ` · finished ${time(x().state.finishedAt)}` : ""}
              {x().state.reason ? ` · ${x().state.reason}` : ""}
            </p>
            <Show when={inputs().length > 0}>
              <dl class="mb-4 flex flex-wrap gap-x-6 gap-y-1 text-sm" data-testid="execution-inputs">
                <For each={inputs()}>
                  {([k, v]) => (
                    <div class="flex gap-2">
                      <dt class="text-muted">{k}</dt>
                      <dd class="font-mono">{JSON.stringify(v)}</dd>
                    </div>
                  )}
                </For>
              </dl>
            </Show>
          </>
        )}
      </Show>
      <p class="mb-2 text-sm text-ok" aria-live="polite" data-testid="responded">
        {said()}
      </p>
      <Show when={actionError()}>
        <ProblemNote error={actionError()} />
      </Show>
      <Show when={exec()}>
        <h2 class="mb-2 text-lg font-semibold">Steps</h2>
        <ol class="space-y-3" aria-label="Steps" data-testid="timeline">
          <For each={names()}>
            {(n) => {
              const s = () => stepOf(n);
              return (
              <li class="rounded-lg border border-border bg-surface p-4" data-step={s().name} data-status={s().status}>
                <div class="flex flex-wrap items-center gap-3">
                  <h3 class="font-semibold">{s().name}</h3>
                  <span class="text-xs text-muted">{s().type}</span>
                  <Badge state={s().status} />
                  <span class="text-sm text-muted">
                    {s().startedAt ? time(s().startedAt) : ""}
                    {s().finishedAt ? ` – ${time(s().finishedAt)}` : ""}
                  </span>
                  <Show when={s().reason}>
                    <span class="text-sm text-warn">{s().reason}</span>
                  </Show>
                </div>
                <Show when={(s().attempts ?? []).length > 0}>
                  <ul class="mt-2 space-y-1 text-sm">
                    <For each={s().attempts ?? []}>
                      {(a) => (
                        <li class="flex flex-wrap items-center gap-2">
                          <span class="text-muted">attempt {a.number}:</span>
                          <a class="font-mono text-accent underline" href={href({ page: "command", id: a.commandId })} data-testid="step-command">
                            {a.commandId}
                          </a>
                          <Badge state={a.status} />
                          <span class="text-muted">on {(a.targets ?? []).join(" ")}</span>
                        </li>
                      )}
                    </For>
                  </ul>
                </Show>
                <Show when={s().answer}>
                  <p class="mt-2 text-sm">
                    Answered <strong>{s().answer}</strong>
                    {s().answeredBy ? ` by ${s().answeredBy}` : ""}.
                  </p>
                </Show>
                <Show when={s().status === "awaiting_response" ? s().prompt : undefined}>
                  {(prompt) => {
                    const p = prompt();
                    const qid = `prompt-${s().name.replace(/[^A-Za-z0-9_-]/g, "-")}`;
                    return (
                      <section aria-labelledby={qid} class="mt-3 rounded border border-warn bg-warn-bg p-3 text-warn" data-testid="prompt">
                        <h4 id={qid} class="mb-2 font-semibold">
                          {p.message}
                        </h4>
                        <Show when={p.deadline}>
                          <p class="mb-2 text-sm">
                            Waits until {time(p.deadline)}
                            {p.default ? `, then takes “${p.default}”` : ""}.
                          </p>
                        </Show>
                        <Show
                          when={(p.options ?? []).length > 0}
                          fallback={
                            <form
                              class="flex flex-wrap items-end gap-2"
                              onSubmit={(e) => {
                                e.preventDefault();
                                void respond(s().name, text()[s().name] ?? "");
                              }}
                            >
                              <div>
                                <label for={qid + "-answer"} class="mb-1 block text-sm font-medium">
                                  Answer
                                </label>
                                <input
                                  id={qid + "-answer"}
                                  class="w-72 rounded border border-border bg-surface px-3 py-2 text-text"
                                  value={text()[s().name] ?? ""}
                                  onInput={(e) => setText({ ...text(), [s().name]: e.currentTarget.value })}
                                />
                              </div>
                              <button type="submit" disabled={busy()} class="rounded bg-accent px-4 py-2 font-medium text-accent-text">
                                Send answer
                              </button>
                            </form>
                          }
                        >
                          <div role="group" aria-labelledby={qid} class="flex flex-wrap gap-2">
                            <For each={p.options ?? []}>
                              {(o) => (
                                <button type="button" disabled={busy()} class="rounded bg-accent px-4 py-2 font-medium text-accent-text" onClick={() => void respond(s().name, o)}>
                                  {o}
                                </button>
                              )}
                            </For>
                          </div>
                        </Show>
                      </section>
                    );
                  }}
                </Show>
              </li>
              );
            }}
          </For>
        </ol>
        <Show when={(exec()?.state.timeline ?? []).length > 0}>
          <h2 class="mb-2 mt-6 text-lg font-semibold">Timeline</h2>
          <ol class="space-y-1 rounded-lg border border-border bg-surface p-4 text-sm" data-testid="events">
            <For each={exec()?.state.timeline ?? []}>
              {(e) => (
                <li class="flex flex-wrap gap-2">
                  <time class="font-mono text-muted" datetime={e.at}>
                    {time(e.at)}
                  </time>
                  <span class="font-medium">{e.step ?? "execution"}</span>
                  <span>{e.status.replace(/_/g, " ")}</span>
                  <Show when={e.reason}>
                    <span class="text-muted">— {e.reason}</span>
                  </Show>
                </li>
              )}
            </For>
          </ol>
        </Show>
      </Show>
    </main>
  );
}
