// Plans: the newest version of each (GET /v1/plans), each opening its page, and the form that applies
// a plan (PlanApply).
import { createResource, For, Show, type JSX } from "solid-js";
import { ProblemError, type Hub } from "./api";
import { ago } from "./format";
import { PlanApply } from "./PlanApply";
import { ProblemNote } from "./ProblemNote";
import { href } from "./router";

/** PlansPage lists plans and applies new ones. */
export function PlansPage(props: { hub: Hub }): JSX.Element {
  const [list, { refetch }] = createResource(async () => {
    const { data, error } = await props.hub.GET("/v1/plans", {});
    if (error) throw new ProblemError(error);
    return data?.plans ?? [];
  });
  return (
    <main class="mx-auto max-w-7xl px-4 py-6">
      <h1 class="mb-4 text-2xl font-semibold">Plans</h1>
      <p class="mb-4 text-sm text-muted">What must stay true on the agents a plan targets. Open one for where it stands on each agent and its rollout.</p>
      <Show when={list.error}>
        <ProblemNote error={list.error} />
      </Show>
      <div class="mb-6 overflow-x-auto rounded-lg border border-border bg-surface">
        <table class="w-full text-left text-sm">
          <caption class="sr-only">Plans</caption>
          <thead class="bg-surface-2">
            <tr>
              <th scope="col" class="px-3 py-2">Plan</th>
              <th scope="col" class="px-3 py-2">Version</th>
              <th scope="col" class="px-3 py-2">Mode</th>
              <th scope="col" class="px-3 py-2">Units</th>
              <th scope="col" class="px-3 py-2">Targets</th>
              <th scope="col" class="px-3 py-2">Applied</th>
            </tr>
          </thead>
          <tbody>
            <For
              each={list.error ? [] : (list.latest ?? [])}
              fallback={
                <tr>
                  <td colSpan={6} class="px-3 py-6 text-center text-muted">
                    {list.loading ? "Loading…" : "No plans yet."}
                  </td>
                </tr>
              }
            >
              {(p) => (
                <tr class="border-t border-border" data-plan={p.name}>
                  <td class="px-3 py-2">
                    <a class="font-medium text-accent underline-offset-4 hover:underline" href={href({ page: "plan", name: p.name })}>
                      {p.name}
                    </a>
                  </td>
                  <td class="px-3 py-2">{p.version}</td>
                  <td class="px-3 py-2">{p.mode}</td>
                  <td class="px-3 py-2">{p.units}</td>
                  <td class="px-3 py-2 font-mono text-xs">{(p.targets ?? []).join(" ")}</td>
                  <td class="px-3 py-2">
                    {ago(p.appliedAt, Date.now())} by <span class="font-mono text-xs">{p.appliedBy}</span>
                  </td>
                </tr>
              )}
            </For>
          </tbody>
        </table>
      </div>
      <h2 class="mb-2 text-lg font-semibold">Apply a plan</h2>
      <PlanApply hub={props.hub} onApplied={() => void refetch()} />
    </main>
  );
}
