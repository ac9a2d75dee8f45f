// One agent: its facts, labels, integrations (with why one is disabled), its metric charts (CPU,
// memory, load, disk; AgentMetrics), its resources as the hub last stored them, and its recent
// commands.
import { createResource, createSignal, For, onCleanup, Show, type JSX } from "solid-js";
import { ProblemError, type Hub } from "./api";
import { ago, labelText } from "./format";
import { Badge } from "./Badge";
import { CommandTable } from "./CommandTable";
import { ProblemNote } from "./ProblemNote";
import { AgentMetrics } from "./AgentMetrics";
import { href } from "./router";

const section = "mb-6 rounded-lg border border-border bg-surface p-4";

/** AgentPage shows the agent id (or name). */
export function AgentPage(props: { hub: Hub; id: string }): JSX.Element {
  const path = { path: { id: props.id } };
  const [agent] = createResource(async () => {
    const { data, error } = await props.hub.GET("/v1/agents/{id}", { params: path });
    if (error) throw new ProblemError(error);
    return data!;
  });
  const [resources] = createResource(async () => {
    const { data, error } = await props.hub.GET("/v1/agents/{id}/resources", { params: path });
    if (error) throw new ProblemError(error);
    return data!;
  });
  const [commands] = createResource(
    () => agent.latest?.id,
    async (id) => {
      const { data, error } = await props.hub.GET("/v1/commands", { params: { query: { agent: id, limit: 10 } } });
      if (error) throw new ProblemError(error);
      return data?.commands ?? [];
    },
  );
  const [now, setNow] = createSignal(Date.now());
  const timer = setInterval(() => setNow(Date.now()), 10000);
  onCleanup(() => clearInterval(timer));

  return (
    <main class="mx-auto max-w-7xl px-4 py-6">
      <nav aria-label="Breadcrumb" class="mb-2 text-sm">
        <a class="text-accent underline" href="#/fleet">
          Fleet
        </a>{" "}
        / agent
      </nav>
      <Show when={agent.error}>
        <ProblemNote error={agent.error} />
      </Show>
      <Show when={agent.latest} fallback={<h1 class="mb-4 text-2xl font-semibold">{agent.loading ? "Loading…" : props.id}</h1>}>
        {(a) => (
          <>
            <div class="mb-4 flex flex-wrap items-center gap-3">
              <h1 class="text-2xl font-semibold">{a().name}</h1>
              <Badge state={a().online ? "online" : "offline"} />
              <span class="font-mono text-xs text-muted">{a().id}</span>
              <a class="ml-auto rounded bg-accent px-4 py-2 font-medium text-accent-text" href={href({ page: "run", targets: a().id })}>
                Run a command here
              </a>
            </div>
            <div class="grid gap-x-6 md:grid-cols-2">
              <section class={section} aria-labelledby="facts-h">
                <h2 id="facts-h" class="mb-2 text-lg font-semibold">Facts</h2>
                <dl class="grid grid-cols-[max-content_1fr] gap-x-4 gap-y-1 text-sm">
                  <dt class="text-muted">Version</dt>
                  <dd class="font-mono">{a().version}</dd>
                  <dt class="text-muted">Last seen</dt>
                  <dd>{ago(a().lastSeen, now())}</dd>
                  <dt class="text-muted">Enrolled</dt>
                  <dd>{new Date(a().enrolledAt).toLocaleString()}</dd>
                  <For each={Object.entries(a().facts ?? {}).sort(([x], [y]) => x.localeCompare(y))}>
                    {([k, v]) => (
                      <>
                        <dt class="text-muted">{k}</dt>
                        <dd class="break-all font-mono">{v}</dd>
                      </>
                    )}
                  </For>
                </dl>
              </section>
              <section class={section} aria-labelledby="labels-h">
                <h2 id="labels-h" class="mb-2 text-lg font-semibold">Labels</h2>
                <ul class="mb-4 flex flex-wrap gap-1">
                  <For each={labelText(a().labels)} fallback={<li class="text-muted">none</li>}>
                    {(l) => <li class="rounded bg-surface-2 px-2 py-0.5 font-mono text-xs">{l}</li>}
                  </For>
                </ul>
                <h2 class="mb-2 text-lg font-semibold">Integrations</h2>
                <ul class="space-y-1 text-sm" data-testid="integrations">
                  <For each={a().integrations ?? []} fallback={<li class="text-muted">none reported</li>}>
                    {(i) => (
                      <li class="flex flex-wrap items-baseline gap-2">
                        <span class="font-semibold">{i.id}</span>
                        <Badge state={i.enabled ? "ok" : "disabled"} />
                        <Show when={!i.enabled}>
                          <span class="text-warn">{i.reason ?? "disabled"}</span>
                        </Show>
                      </li>
                    )}
                  </For>
                </ul>
              </section>
            </div>
          </>
        )}
      </Show>

      <AgentMetrics hub={props.hub} id={props.id} />

      <section class={section} aria-labelledby="res-h">
        <h2 id="res-h" class="mb-2 text-lg font-semibold">Resources</h2>
        <Show when={resources.error}>
          <ProblemNote error={resources.error} />
        </Show>
        <Show when={resources.latest}>
          {(inv) => (
            <>
              <p class="mb-2 text-sm text-muted">
                {(inv().resources ?? []).length} resources{inv().at ? `, collected ${ago(inv().at, now())}` : ""}
              </p>
              <For each={inv().errors ?? []}>
                {(e) => <p class="mb-2 rounded bg-warn-bg px-2 py-1 text-sm text-warn">{e.source}: {e.error}</p>}
              </For>
              <div class="overflow-x-auto">
                <table class="w-full text-left text-sm" data-testid="resources">
                  <caption class="sr-only">Resources of the agent</caption>
                  <thead class="bg-surface-2">
                    <tr>
                      <th scope="col" class="px-3 py-2">Type</th>
                      <th scope="col" class="px-3 py-2">Resource</th>
                      <th scope="col" class="px-3 py-2">Status</th>
                      <th scope="col" class="px-3 py-2">Reason</th>
                    </tr>
                  </thead>
                  <tbody>
                    <For
                      each={inv().resources ?? []}
                      fallback={
                        <tr>
                          <td colSpan={4} class="px-3 py-4 text-center text-muted">
                            No resources reported.
                          </td>
                        </tr>
                      }
                    >
                      {(r) => (
                        <tr class="border-t border-border">
                          <td class="px-3 py-1 font-mono text-xs">{r.type}</td>
                          <td class="px-3 py-1">
                            {r.name ?? r.id}
                            <Show when={r.name && r.name !== r.id}>
                              <span class="ml-2 font-mono text-xs text-muted">{r.id}</span>
                            </Show>
                          </td>
                          <td class="px-3 py-1">
                            <Badge state={r.status} />
                          </td>
                          <td class="px-3 py-1 text-muted">{r.reason ?? ""}</td>
                        </tr>
                      )}
                    </For>
                  </tbody>
                </table>
              </div>
            </>
          )}
        </Show>
      </section>

      <section class={section} aria-labelledby="cmd-h">
        <h2 id="cmd-h" class="mb-2 text-lg font-semibold">Recent commands</h2>
        <Show when={commands.error}>
          <ProblemNote error={commands.error} />
        </Show>
        <CommandTable commands={commands.latest ?? []} caption="Recent commands on the agent" empty="No commands yet." now={now()} />
      </section>
    </main>
  );
}
