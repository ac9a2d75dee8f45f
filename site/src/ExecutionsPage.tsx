// The executions of workflows, newest first, filtered by the hub (GET /v1/executions?workflow=&status=),
// a page at a time; each links to its live page.
import { createResource, createSignal, For, Show, type JSX } from "solid-js";
import { ProblemError, type Hub } from "./api";
import type { paths } from "../../openapi/ts/pulse-api";
import { ago } from "./format";
import { Badge } from "./Badge";
import { ProblemNote } from "./ProblemNote";
import { href } from "./router";

type Query = NonNullable<paths["/v1/executions"]["get"]["parameters"]["query"]>;
type Status = NonNullable<Query["status"]>;
const statuses: Status[] = ["pending", "running", "succeeded", "failed", "cancelled"];

interface Filter {
  workflow: string;
  status: Status | "";
  cursor: string;
}

const input = "rounded border border-border bg-surface px-3 py-2 text-text placeholder:text-muted";

/** ExecutionsPage lists executions by filter. */
export function ExecutionsPage(props: { hub: Hub }): JSX.Element {
  const [draft, setDraft] = createSignal<Filter>({ workflow: "", status: "", cursor: "" });
  const [filter, setFilter] = createSignal<Filter>(draft());
  const [page] = createResource(filter, async (f) => {
    const query: Query = { limit: 50 };
    if (f.workflow) query.workflow = f.workflow;
    if (f.status) query.status = f.status;
    if (f.cursor) query.cursor = f.cursor;
    const { data, error } = await props.hub.GET("/v1/executions", { params: { query } });
    if (error) throw new ProblemError(error);
    return { executions: data?.executions ?? [], next: data?.next ?? "" };
  });
  const now = Date.now();

  return (
    <main class="mx-auto max-w-7xl px-4 py-6">
      <div class="mb-4 flex flex-wrap items-center gap-3">
        <h1 class="text-2xl font-semibold">Executions</h1>
        <a class="ml-auto rounded bg-accent px-4 py-2 font-medium text-accent-text" href={href({ page: "workflows" })}>
          Run a workflow
        </a>
      </div>
      <form
        class="mb-4 flex flex-wrap items-end gap-2"
        role="search"
        aria-label="Filter executions"
        onSubmit={(e) => {
          e.preventDefault();
          setFilter({ ...draft(), cursor: "" });
        }}
      >
        <div>
          <label for="x-workflow" class="mb-1 block text-sm font-medium">
            Workflow
          </label>
          <input id="x-workflow" class={input} value={draft().workflow} onInput={(e) => setDraft({ ...draft(), workflow: e.currentTarget.value.trim() })} />
        </div>
        <div>
          <label for="x-status" class="mb-1 block text-sm font-medium">
            Status
          </label>
          <select id="x-status" class={input} value={draft().status} onChange={(e) => setDraft({ ...draft(), status: e.currentTarget.value as Status | "" })}>
            <option value="">any</option>
            <For each={statuses}>{(s) => <option value={s}>{s}</option>}</For>
          </select>
        </div>
        <button type="submit" class="rounded bg-accent px-4 py-2 font-medium text-accent-text">
          Filter
        </button>
      </form>
      <Show when={page.error}>
        <ProblemNote error={page.error} />
      </Show>
      <div class="overflow-x-auto rounded-lg border border-border bg-surface">
        <table class="w-full text-left text-sm">
          <caption class="sr-only">Executions, newest first</caption>
          <thead class="bg-surface-2">
            <tr>
              <th scope="col" class="px-3 py-2">Workflow</th>
              <th scope="col" class="px-3 py-2">Status</th>
              <th scope="col" class="px-3 py-2">Version</th>
              <th scope="col" class="px-3 py-2">Started</th>
              <th scope="col" class="px-3 py-2">By</th>
            </tr>
          </thead>
          <tbody>
            <For
              each={page.error ? [] : (page.latest?.executions ?? [])}
              fallback={
                <tr>
                  <td colSpan={5} class="px-3 py-6 text-center text-muted">
                    {page.loading ? "Loading…" : "No executions match."}
                  </td>
                </tr>
              }
            >
              {(x) => (
                <tr class="border-t border-border" data-execution={x.id}>
                  <td class="px-3 py-2">
                    <a class="font-medium text-accent underline-offset-4 hover:underline" href={href({ page: "execution", id: x.id })}>
                      {x.workflow}
                    </a>
                    <div class="font-mono text-xs text-muted">{x.id}</div>
                  </td>
                  <td class="px-3 py-2">
                    <Badge state={x.status} />
                  </td>
                  <td class="px-3 py-2">{x.version}</td>
                  <td class="px-3 py-2">
                    <time datetime={x.startedAt} title={x.startedAt}>
                      {ago(x.startedAt, now)}
                    </time>
                  </td>
                  <td class="px-3 py-2 font-mono text-xs">{x.startedBy}</td>
                </tr>
              )}
            </For>
          </tbody>
        </table>
      </div>
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
