// The history of commands, newest first, filtered by the hub (GET /v1/commands?state=&command=&agent=),
// a page at a time.
import { createResource, createSignal, Show, type JSX } from "solid-js";
import { ProblemError, type Hub } from "./api";
import type { paths } from "../../openapi/ts/pulse-api";
import { CommandTable, type CommandSummary } from "./CommandTable";
import { ProblemNote } from "./ProblemNote";

type Query = NonNullable<paths["/v1/commands"]["get"]["parameters"]["query"]>;
type State = NonNullable<Query["state"]>;
const states: State[] = ["running", "awaiting_approval", "done", "cancelled", "denied"];

interface Filter {
  state: State | "";
  command: string;
  agent: string;
  issuer: string;
  /** A datetime-local value (the person's local time), or "". */
  since: string;
  cursor: string;
}

/** sinceQuery turns a datetime-local value into the RFC 3339 time the hub takes, or null. */
export function sinceQuery(local: string): string | null {
  if (!local) return null;
  const t = new Date(local);
  return Number.isNaN(t.getTime()) ? null : t.toISOString();
}

const input = "rounded border border-border bg-surface px-3 py-2 text-text placeholder:text-muted";

/** CommandsPage lists commands by filter. */
export function CommandsPage(props: { hub: Hub }): JSX.Element {
  const [draft, setDraft] = createSignal<Filter>({ state: "", command: "", agent: "", issuer: "", since: "", cursor: "" });
  const [filter, setFilter] = createSignal<Filter>(draft());
  const [page] = createResource(filter, async (f): Promise<{ commands: CommandSummary[]; next: string }> => {
    const query: Query = { limit: 50 };
    if (f.state) query.state = f.state;
    if (f.command) query.command = f.command;
    if (f.agent) query.agent = f.agent;
    if (f.issuer) query.issuer = f.issuer;
    const since = sinceQuery(f.since);
    if (since) query.since = since;
    if (f.cursor) query.cursor = f.cursor;
    const { data, error } = await props.hub.GET("/v1/commands", { params: { query } });
    if (error) throw new ProblemError(error);
    return { commands: data?.commands ?? [], next: data?.next ?? "" };
  });
  const set = (k: keyof Filter, v: string) => setDraft({ ...draft(), [k]: v });

  return (
    <main class="mx-auto max-w-7xl px-4 py-6">
      <div class="mb-4 flex flex-wrap items-center gap-3">
        <h1 class="text-2xl font-semibold">Commands</h1>
        <a class="ml-auto rounded bg-accent px-4 py-2 font-medium text-accent-text" href="#/run">
          Run a command
        </a>
      </div>
      <form
        class="mb-4 flex flex-wrap items-end gap-2"
        role="search"
        aria-label="Filter commands"
        onSubmit={(e) => {
          e.preventDefault();
          setFilter({ ...draft(), cursor: "" });
        }}
      >
        <div>
          <label for="f-state" class="mb-1 block text-sm font-medium">
            State
          </label>
          <select id="f-state" class={input} value={draft().state} onChange={(e) => set("state", e.currentTarget.value)}>
            <option value="">any</option>
            {states.map((s) => (
              <option value={s}>{s.replace(/_/g, " ")}</option>
            ))}
          </select>
        </div>
        <div>
          <label for="f-command" class="mb-1 block text-sm font-medium">
            Command name
          </label>
          <input id="f-command" class={input} placeholder="service_restart" value={draft().command} onInput={(e) => set("command", e.currentTarget.value.trim())} />
        </div>
        <div>
          <label for="f-agent" class="mb-1 block text-sm font-medium">
            Agent id
          </label>
          <input id="f-agent" class={input} value={draft().agent} onInput={(e) => set("agent", e.currentTarget.value.trim())} />
        </div>
        <div>
          <label for="f-issuer" class="mb-1 block text-sm font-medium">
            Issued by
          </label>
          <input id="f-issuer" class={input} placeholder="person:alice" value={draft().issuer} onInput={(e) => set("issuer", e.currentTarget.value.trim())} />
        </div>
        <div>
          <label for="f-since" class="mb-1 block text-sm font-medium">
            Since
          </label>
          <input id="f-since" type="datetime-local" class={input} value={draft().since} onInput={(e) => set("since", e.currentTarget.value)} />
        </div>
        <button type="submit" class="rounded bg-accent px-4 py-2 font-medium text-accent-text">
          Filter
        </button>
      </form>
      <Show when={page.error}>
        <ProblemNote error={page.error} />
      </Show>
      <CommandTable
        commands={page.error ? [] : (page.latest?.commands ?? [])}
        caption="Commands, newest first"
        empty={page.loading ? "Loading…" : "No commands match."}
        now={Date.now()}
      />
      <Show when={page.latest?.next}>
        {(next) => (
          <button type="button" class="mt-3 rounded border border-border bg-surface px-4 py-2" onClick={() => setFilter({ ...filter(), cursor: next() })}>
            Older
          </button>
        )}
      </Show>
    </main>
  );
}
