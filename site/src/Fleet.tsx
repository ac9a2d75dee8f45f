// The fleet page: every agent with its state, last heartbeat, labels, version and soft-disabled
// integrations, a red banner for each host whose shell hatch is open, filtered by a label selector
// that the hub applies (GET /v1/agents?selector=).
import { createEffect, createResource, createSignal, For, onCleanup, Show, type JSX } from "solid-js";
import { describe, ProblemError, type Agent, type Hub } from "./api";
import { ago, labelText } from "./format";
import { go, href } from "./router";

/** fetchAgents lists the agents matching selector (empty: all), or throws the hub's problem. */
async function fetchAgents(hub: Hub, selector: string): Promise<Agent[]> {
  const query = selector ? { selector } : {};
  const { data, error } = await hub.GET("/v1/agents", { params: { query } });
  if (error) throw new ProblemError(error);
  if (!data) throw new Error("the hub answered no agents");
  return data.agents ?? [];
}

/** From this many rows on, the table is windowed; margin rows are kept beyond each edge of the view. */
const windowFrom = 300;
const margin = 10;

/** Fleet is the page; it refreshes every 15 seconds. */
export function Fleet(props: { hub: Hub }): JSX.Element {
  const [draft, setDraft] = createSignal("");
  const [selector, setSelector] = createSignal("");
  const [now, setNow] = createSignal(Date.now());
  const [agents, { refetch }] = createResource(selector, (s) => fetchAgents(props.hub, s));
  const timer = setInterval(() => {
    setNow(Date.now());
    void refetch();
  }, 15000);
  onCleanup(() => clearInterval(timer));

  // Reading a resource that failed throws; a refused selector shows the hub's problem and no rows.
  const rows = (): Agent[] => (agents.state === "errored" ? [] : (agents.latest ?? []));
  const hatches = () => rows().filter((a) => a.hatch?.open);

  // A large fleet is windowed: only the rows in view (and a margin) are in the page, between two
  // spacers as tall as the rows left out, so 10,000 agents scroll as smoothly as ten.
  let scroller: HTMLDivElement | undefined;
  const [scrollTop, setScrollTop] = createSignal(0);
  const [viewH, setViewH] = createSignal(800);
  const [rowH, setRowH] = createSignal(57);
  const windowed = () => rows().length >= windowFrom;
  const range = (): [number, number] => {
    const n = rows().length;
    if (!windowed()) return [0, n];
    const first = Math.max(0, Math.floor(scrollTop() / rowH()) - margin);
    return [first, Math.min(n, Math.ceil((scrollTop() + viewH()) / rowH()) + margin)];
  };
  const visible = () => rows().slice(...range());
  createEffect(() => {
    visible();
    const tr = scroller?.querySelector("tbody tr[data-agent]");
    const h = tr?.getBoundingClientRect().height ?? 0;
    if (windowed() && h > 0 && Math.abs(h - rowH()) > 0.5) setRowH(h);
  });
  const clip = () => (windowed() ? "max-h-10 overflow-hidden" : "");

  return (
    <main class="mx-auto max-w-7xl px-4 py-6">
      <h1 class="mb-4 text-2xl font-semibold">Fleet</h1>

      <For each={hatches()}>
        {(a) => (
          <div role="alert" data-testid="hatch-banner" class="mb-3 rounded border-2 border-danger-strong bg-danger-bg px-4 py-3 text-danger">
            <strong>Shell hatch open on {a.name}</strong>
            {a.hatch?.by ? `, opened by ${a.hatch.by}` : ""}
            {a.hatch?.expiresAt ? `, until ${new Date(a.hatch.expiresAt).toLocaleString()}` : ""}. Any operator allowed
            to use it can run arbitrary shell there.
          </div>
        )}
      </For>

      <form
        class="mb-4 flex flex-wrap items-end gap-2"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          setSelector(draft().trim());
        }}
      >
        <div>
          <label for="selector" class="mb-1 block text-sm font-medium">
            Label selector
          </label>
          <input
            id="selector"
            name="selector"
            placeholder="env=prod,role=web"
            class="w-72 rounded border border-border bg-surface px-3 py-2 text-text placeholder:text-muted"
            value={draft()}
            onInput={(e) => setDraft(e.currentTarget.value)}
          />
        </div>
        <button type="submit" class="rounded bg-accent px-4 py-2 font-medium text-accent-text">
          Filter
        </button>
        <button
          type="button"
          class="rounded border border-border bg-surface px-4 py-2"
          onClick={() => {
            setNow(Date.now());
            void refetch();
          }}
        >
          Refresh
        </button>
        <a class="rounded border border-border bg-surface px-4 py-2" href={href({ page: "run", targets: selector() || "all" })}>
          Run a command on {selector() ? "these" : "all"}
        </a>
      </form>

      <Show when={agents.error}>
        <p role="alert" class="mb-4 rounded border border-danger bg-danger-bg px-3 py-2 text-danger">
          {describe(agents.error)}
        </p>
      </Show>

      <div
        ref={scroller}
        class={"overflow-x-auto rounded-lg border border-border bg-surface " + (windowed() ? "max-h-[70vh] overflow-y-auto" : "")}
        data-testid="fleet-scroller"
        onScroll={(e) => {
          setScrollTop(e.currentTarget.scrollTop);
          setViewH(e.currentTarget.clientHeight);
        }}
      >
        <table class="w-full text-left text-sm" aria-rowcount={rows().length + 1}>
          <caption class="sr-only">Agents{selector() ? ` matching ${selector()}` : ""}</caption>
          <thead class={"bg-surface-2" + (windowed() ? " sticky top-0 z-10" : "")}>
            <tr>
              <th scope="col" class="px-3 py-2">Agent</th>
              <th scope="col" class="px-3 py-2">State</th>
              <th scope="col" class="px-3 py-2">Last seen</th>
              <th scope="col" class="px-3 py-2">Version</th>
              <th scope="col" class="px-3 py-2">Labels</th>
              <th scope="col" class="px-3 py-2">Disabled integrations</th>
            </tr>
          </thead>
          <tbody>
            <Show when={range()[0] > 0}>
              <tr aria-hidden="true" style={{ height: `${range()[0] * rowH()}px` }} />
            </Show>
            <For
              each={visible()}
              fallback={
                <tr>
                  <td colSpan={6} class="px-3 py-6 text-center text-muted">
                    {agents.loading ? "Loading…" : agents.error ? "No agents shown." : "No agents match."}
                  </td>
                </tr>
              }
            >
              {(a, i) => (
                <tr
                  class="cursor-pointer border-t border-border hover:bg-surface-2"
                  data-agent={a.id}
                  aria-rowindex={range()[0] + i() + 2}
                  onClick={(e) => {
                    // The name is the link (for keyboards and screen readers); the rest of the row is a
                    // bigger target for a pointer.
                    if (!(e.target as Element).closest("a")) go({ page: "agent", id: a.id });
                  }}
                >
                  <td class="px-3 py-2">
                    <a class="font-medium text-accent underline-offset-4 hover:underline" href={href({ page: "agent", id: a.id })}>
                      {a.name}
                    </a>
                    <div class="font-mono text-xs text-muted">{a.id}</div>
                  </td>
                  <td class="px-3 py-2">
                    <span
                      class={
                        "whitespace-nowrap rounded px-2 py-0.5 text-xs font-semibold " +
                        (a.online ? "bg-ok-bg text-ok" : "bg-off-bg text-off")
                      }
                    >
                      {a.online ? "online" : "offline"}
                    </span>
                    <Show when={a.hatch?.open}>
                      <span class="ml-1 whitespace-nowrap rounded bg-danger-bg px-2 py-0.5 text-xs font-semibold text-danger">hatch open</span>
                    </Show>
                  </td>
                  <td class="px-3 py-2">
                    <time datetime={a.lastSeen ?? ""} title={a.lastSeen ?? ""}>
                      {ago(a.lastSeen, now())}
                    </time>
                  </td>
                  <td class="px-3 py-2 font-mono text-xs">{a.version || "—"}</td>
                  <td class="px-3 py-2">
                    <ul class={"flex flex-wrap gap-1 " + clip()}>
                      <For each={labelText(a.labels)}>
                        {(l) => <li class="rounded bg-surface-2 px-2 py-0.5 font-mono text-xs">{l}</li>}
                      </For>
                    </ul>
                  </td>
                  <td class="px-3 py-2">
                    <Show when={(a.disabled ?? []).length > 0} fallback={<span class="text-muted">none</span>}>
                      <ul class={"space-y-1 " + clip()}>
                        <For each={a.disabled ?? []}>
                          {(d) => (
                            <li class="rounded bg-warn-bg px-2 py-0.5 text-xs text-warn">
                              <span class="font-semibold">{d.id}</span>: {d.reason ?? "disabled"}
                            </li>
                          )}
                        </For>
                      </ul>
                    </Show>
                  </td>
                </tr>
              )}
            </For>
            <Show when={windowed() && range()[1] < rows().length}>
              <tr aria-hidden="true" style={{ height: `${(rows().length - range()[1]) * rowH()}px` }} />
            </Show>
          </tbody>
        </table>
      </div>
      <p class="mt-2 text-sm text-muted" aria-live="polite">
        {rows().length} agent{rows().length === 1 ? "" : "s"}
        {selector() ? ` matching ${selector()}` : ""}
      </p>
    </main>
  );
}
