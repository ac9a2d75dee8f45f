// The run form: a target selector with a live preview of the agents it matches, a command from their
// catalogs (only those every matched agent has), its parameters checked with the catalogs' patterns
// and caps before anything is sent, a timeout and a rate; on submit, the command's page.
import { createMemo, createResource, createSignal, For, onCleanup, Show, type JSX } from "solid-js";
import { ProblemError, type Agent, type Hub } from "./api";
import { checkParam, common, paramsOf, type CommandSpec } from "./params";
import { ProblemNote } from "./ProblemNote";
import { go } from "./router";

const input = "w-full rounded border border-border bg-surface px-3 py-2 text-text placeholder:text-muted aria-[invalid=true]:border-danger";
const label = "mb-1 block text-sm font-medium";
/** At most this many matched agents are asked for their catalogs. */
const catalogsOf = 50;

/** RunPage starts with targets (a selector) filled in. */
export function RunPage(props: { hub: Hub; targets: string }): JSX.Element {
  const [targets, setTargets] = createSignal(props.targets);
  const [selector, setSelector] = createSignal(props.targets.trim());
  let debounce: ReturnType<typeof setTimeout> | undefined;
  onCleanup(() => clearTimeout(debounce));
  const onTargets = (v: string) => {
    setTargets(v);
    clearTimeout(debounce);
    debounce = setTimeout(() => setSelector(v.trim()), 250);
  };

  const [matched] = createResource(selector, async (s): Promise<{ agents: Agent[]; catalogs: CommandSpec[][] }> => {
    const { data, error } = await props.hub.GET("/v1/agents", { params: { query: { selector: s } } });
    if (error) throw new ProblemError(error);
    const agents = data?.agents ?? [];
    const catalogs = await Promise.all(
      agents.slice(0, catalogsOf).map(async (a) => {
        const one = await props.hub.GET("/v1/agents/{id}", { params: { path: { id: a.id } } });
        return one.data?.catalog ?? [];
      }),
    );
    return { agents, catalogs };
  });
  const agents = () => (matched.error ? [] : (matched.latest?.agents ?? []));
  const commands = createMemo(() => (matched.error ? new Map<string, CommandSpec[]>() : common(matched.latest?.catalogs ?? [])));

  const [command, setCommand] = createSignal("");
  const specs = () => commands().get(command()) ?? [];
  const params = createMemo(() => paramsOf(specs()));
  const [values, setValues] = createSignal<Record<string, string>>({});
  const [timeout, setTimeoutSecs] = createSignal("");
  const [rate, setRate] = createSignal("");
  const [tried, setTried] = createSignal(false);
  const [busy, setBusy] = createSignal(false);
  const [refusal, setRefusal] = createSignal<unknown>(null);

  const problems = createMemo(() => {
    const out: Record<string, string> = {};
    for (const [name, ps] of params()) {
      const msg = checkParam(ps, values()[name] ?? "");
      if (msg) out[name] = msg;
    }
    return out;
  });
  const numberProblem = (v: string, max: number) =>
    v === "" ? null : /^[0-9]+$/.test(v) && Number(v) <= max ? null : `A whole number from 0 to ${max}.`;

  async function submit(e: SubmitEvent) {
    e.preventDefault();
    setTried(true);
    setRefusal(null);
    if (!selector() || !command() || Object.keys(problems()).length > 0 || numberProblem(timeout(), 86400) || numberProblem(rate(), 100000)) return;
    const sent: Record<string, string> = {};
    for (const [k, v] of Object.entries(values())) if (v !== "" && params().has(k)) sent[k] = v;
    setBusy(true);
    try {
      const { data, error } = await props.hub.POST("/v1/commands", {
        body: {
          command: command(),
          targets: [selector()],
          params: sent,
          ...(timeout() ? { timeoutSeconds: Number(timeout()) } : {}),
          ...(rate() ? { maxConcurrency: Number(rate()) } : {}),
        },
      });
      if (error) setRefusal(new ProblemError(error));
      else if (data) go({ page: "command", id: data.id });
    } finally {
      setBusy(false);
    }
  }

  return (
    <main class="mx-auto max-w-3xl px-4 py-6">
      <h1 class="mb-4 text-2xl font-semibold">Run a command</h1>
      <form class="space-y-4 rounded-lg border border-border bg-surface p-6" onSubmit={submit} novalidate>
        <div>
          <label for="run-targets" class={label}>
            Targets
          </label>
          <input
            id="run-targets"
            class={input}
            placeholder="all, an agent id or name, or env=prod,role=web"
            value={targets()}
            onInput={(e) => onTargets(e.currentTarget.value)}
            aria-describedby="run-preview"
            aria-invalid={tried() && !selector()}
          />
          <p id="run-preview" class="mt-1 text-sm text-muted" aria-live="polite" data-testid="run-preview">
            {!selector()
              ? "Name the agents: all, an id, a name, or labels."
              : matched.loading && !matched.latest
                ? "Looking…"
                : matched.error
                  ? "This selector matches no agents."
                  : `Matches ${agents().length} agent${agents().length === 1 ? "" : "s"}${agents().length ? ": " + agents().slice(0, 8).map((a) => a.name).join(", ") + (agents().length > 8 ? ", …" : "") : ""}.`}
          </p>
        </div>
        <div>
          <label for="run-command" class={label}>
            Command
          </label>
          <select
            id="run-command"
            class={input}
            value={command()}
            onChange={(e) => {
              setCommand(e.currentTarget.value);
              setValues({});
            }}
            aria-invalid={tried() && !command()}
          >
            <option value="">{commands().size ? "Choose a command" : "No command every target offers"}</option>
            <For each={[...commands().entries()]}>
              {([name, ss]) => (
                <option value={name}>
                  {name}
                  {ss[0]?.description ? ` — ${ss[0].description}` : ""}
                  {ss.some((s) => s.dangerous) ? " (dangerous)" : ""}
                </option>
              )}
            </For>
          </select>
        </div>
        <For each={[...params().entries()]}>
          {([name, ps]) => {
            const id = `run-param-${name}`;
            const shown = () => (tried() || (values()[name] ?? "") !== "" ? problems()[name] : undefined);
            return (
              <div>
                <label for={id} class={label}>
                  {name}
                  {ps.some((p) => p.required) ? " (required)" : ""}
                </label>
                <input
                  id={id}
                  class={input + " font-mono"}
                  value={values()[name] ?? ""}
                  onInput={(e) => setValues({ ...values(), [name]: e.currentTarget.value })}
                  aria-invalid={!!shown()}
                  aria-describedby={`${id}-hint`}
                />
                <p id={`${id}-hint`} class={"mt-1 text-sm " + (shown() ? "text-danger" : "text-muted")}>
                  {shown() ??
                    [ps[0]?.description, ps[0]?.pattern ? `pattern ${ps[0].pattern}` : "", ps[0]?.maxBytes ? `at most ${ps[0].maxBytes} bytes` : ""]
                      .filter(Boolean)
                      .join(" · ")}
                </p>
              </div>
            );
          }}
        </For>
        <div class="grid gap-4 sm:grid-cols-2">
          <div>
            <label for="run-timeout" class={label}>
              Timeout (seconds)
            </label>
            <input
              id="run-timeout"
              inputmode="numeric"
              class={input}
              placeholder={`default ${specs()[0]?.defaultTimeoutSeconds ?? 300}`}
              value={timeout()}
              onInput={(e) => setTimeoutSecs(e.currentTarget.value.trim())}
              aria-invalid={!!numberProblem(timeout(), 86400)}
              aria-describedby="run-timeout-hint"
            />
            <p id="run-timeout-hint" class="mt-1 text-sm text-muted">
              {numberProblem(timeout(), 86400) ?? "On each agent."}
            </p>
          </div>
          <div>
            <label for="run-rate" class={label}>
              At most this many at once
            </label>
            <input
              id="run-rate"
              inputmode="numeric"
              class={input}
              placeholder="all"
              value={rate()}
              onInput={(e) => setRate(e.currentTarget.value.trim())}
              aria-invalid={!!numberProblem(rate(), 100000)}
              aria-describedby="run-rate-hint"
            />
            <p id="run-rate-hint" class="mt-1 text-sm text-muted">
              {numberProblem(rate(), 100000) ?? "Waves of this size; empty: all together."}
            </p>
          </div>
        </div>
        <Show when={refusal()}>
          <ProblemNote error={refusal()} />
        </Show>
        <Show when={tried() && (!command() || Object.keys(problems()).length > 0)}>
          <p role="alert" class="text-sm text-danger">
            {!command() ? "Choose a command." : "Fix the parameters above."}
          </p>
        </Show>
        <button type="submit" disabled={busy()} class="rounded bg-accent px-4 py-2 font-medium text-accent-text disabled:opacity-60">
          {busy() ? "Sending…" : "Run"}
        </button>
      </form>
    </main>
  );
}
