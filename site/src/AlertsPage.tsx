// Alerts, newest first, by state (GET /v1/alerts?state=), each with acknowledge and snooze buttons.
import { createResource, createSignal, For, Show, type JSX } from "solid-js";
import { ProblemError, type Hub } from "./api";
import type { components } from "../../openapi/ts/pulse-api";
import { ago } from "./format";
import { Badge } from "./Badge";
import { ProblemNote } from "./ProblemNote";
import { href } from "./router";

type Alert = components["schemas"]["Alert"];
type StateFilter = "firing" | "resolved" | "";

const small = "rounded border border-border bg-surface px-3 py-1 text-sm";

/** AlertsPage lists alerts; a refused action shows the hub's problem (a denial, its rule). */
export function AlertsPage(props: { hub: Hub }): JSX.Element {
  const [state, setState] = createSignal<StateFilter>("firing");
  const [alerts, { refetch }] = createResource(state, async (s): Promise<Alert[]> => {
    const { data, error } = await props.hub.GET("/v1/alerts", { params: { query: s ? { state: s } : {} } });
    if (error) throw new ProblemError(error);
    return data?.alerts ?? [];
  });
  const [actionError, setActionError] = createSignal<unknown>(null);
  const [snoozeFor, setSnoozeFor] = createSignal("1h");
  const rows = () => (alerts.error ? [] : (alerts.latest ?? []));

  async function act(fn: () => Promise<{ error?: unknown }>) {
    setActionError(null);
    const { error } = await fn();
    if (error) setActionError(new ProblemError(error as components["schemas"]["ErrorModel"]));
    else void refetch();
  }
  const ack = (a: Alert) => act(() => props.hub.POST("/v1/alerts/{id}/ack", { params: { path: { id: a.id } }, body: {} }));
  const snooze = (a: Alert) => act(() => props.hub.POST("/v1/alerts/{id}/snooze", { params: { path: { id: a.id } }, body: { for: snoozeFor() } }));

  return (
    <main class="mx-auto max-w-7xl px-4 py-6">
      <h1 class="mb-4 text-2xl font-semibold">Alerts</h1>
      <div class="mb-4 flex flex-wrap items-end gap-4">
        <fieldset class="flex gap-3">
          <legend class="mb-1 text-sm font-medium">State</legend>
          <For each={[["firing", "Firing"], ["resolved", "Resolved"], ["", "All"]] as const}>
            {([v, l]) => (
              <label class="flex items-center gap-1">
                <input type="radio" name="alert-state" value={v} checked={state() === v} onChange={() => setState(v)} />
                {l}
              </label>
            )}
          </For>
        </fieldset>
        <div>
          <label for="snooze-for" class="mb-1 block text-sm font-medium">
            Snooze for
          </label>
          <select id="snooze-for" class="rounded border border-border bg-surface px-3 py-1 text-text" value={snoozeFor()} onChange={(e) => setSnoozeFor(e.currentTarget.value)}>
            <For each={["30m", "1h", "4h", "1d", "7d"]}>{(d) => <option value={d}>{d}</option>}</For>
          </select>
        </div>
        <button type="button" class={small} onClick={() => void refetch()}>
          Refresh
        </button>
      </div>
      <Show when={alerts.error}>
        <ProblemNote error={alerts.error} />
      </Show>
      <Show when={actionError()}>
        <ProblemNote error={actionError()} />
      </Show>
      <div class="overflow-x-auto rounded-lg border border-border bg-surface">
        <table class="w-full text-left text-sm">
          <caption class="sr-only">Alerts{state() ? `, ${state()}` : ""}</caption>
          <thead class="bg-surface-2">
            <tr>
              <th scope="col" class="px-3 py-2">Alert</th>
              <th scope="col" class="px-3 py-2">State</th>
              <th scope="col" class="px-3 py-2">Agent</th>
              <th scope="col" class="px-3 py-2">Since</th>
              <th scope="col" class="px-3 py-2">Actions</th>
            </tr>
          </thead>
          <tbody>
            <For
              each={rows()}
              fallback={
                <tr>
                  <td colSpan={5} class="px-3 py-6 text-center text-muted">
                    {alerts.loading ? "Loading…" : "No alerts."}
                  </td>
                </tr>
              }
            >
              {(a) => (
                <tr class="border-t border-border" data-alert={a.id}>
                  <td class="px-3 py-2">
                    <div class="font-medium">{a.name}</div>
                    <div class="text-xs text-muted">
                      {a.severity} · {a.rule} · {a.detail}
                    </div>
                  </td>
                  <td class="px-3 py-2">
                    <Badge state={a.state} />
                    <Show when={a.ack}>{(k) => <div class="mt-1 text-xs">acknowledged by {k().by}</div>}</Show>
                    <Show when={a.silenced}>
                      <div class="mt-1 text-xs">{a.silenced}</div>
                    </Show>
                  </td>
                  <td class="px-3 py-2">
                    <a class="text-accent underline-offset-4 hover:underline" href={href({ page: "agent", id: a.agent })}>
                      {a.agent}
                    </a>
                  </td>
                  <td class="px-3 py-2">
                    <time datetime={a.since}>{ago(a.since, Date.now())}</time>
                  </td>
                  <td class="px-3 py-2">
                    <div class="flex gap-2">
                      <button type="button" class={small} disabled={!!a.ack} onClick={() => void ack(a)}>
                        Acknowledge
                      </button>
                      <button type="button" class={small} onClick={() => void snooze(a)}>
                        Snooze {snoozeFor()}
                      </button>
                    </div>
                  </td>
                </tr>
              )}
            </For>
          </tbody>
        </table>
      </div>
    </main>
  );
}
