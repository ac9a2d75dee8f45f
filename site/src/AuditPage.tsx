// The audit trail: records from the hub (GET /v1/audit, by time and principal), filtered here by text
// on their action and targets, newest first; and Verify (POST /v1/audit/verify), which checks the
// sealed hash chain as the bucket holds it and, when it is broken, names the first changed record.
import { createResource, createSignal, For, Show, type JSX } from "solid-js";
import { ProblemError, type Hub } from "./api";
import type { components, paths } from "../../openapi/ts/pulse-api";
import { firstBreak, matchesText } from "./audit";
import { Badge } from "./Badge";
import { sinceQuery } from "./CommandsPage";
import { ProblemNote } from "./ProblemNote";

type Query = NonNullable<paths["/v1/audit"]["get"]["parameters"]["query"]>;
type Report = components["schemas"]["Report"];
type AuditRecord = components["schemas"]["Record"];

interface Filter {
  since: string;
  until: string;
  principal: string;
  limit: string;
}

const input = "rounded border border-border bg-surface px-3 py-2 text-text placeholder:text-muted";

/** AuditPage lists the audit trail and verifies its chain. */
export function AuditPage(props: { hub: Hub }): JSX.Element {
  const [draft, setDraft] = createSignal<Filter>({ since: "", until: "", principal: "", limit: "1000" });
  const [filter, setFilter] = createSignal<Filter>(draft());
  const [text, setText] = createSignal("");
  const [records, { refetch }] = createResource(filter, async (f): Promise<AuditRecord[]> => {
    const query: Query = {};
    const since = sinceQuery(f.since);
    if (since) query.since = since;
    const until = sinceQuery(f.until);
    if (until) query.until = until;
    if (f.principal.trim()) query.principal = f.principal.trim();
    const limit = Number(f.limit);
    if (Number.isInteger(limit) && limit > 0) query.limit = limit;
    const { data, error } = await props.hub.GET("/v1/audit", { params: { query } });
    if (error) throw new ProblemError(error);
    return [...(data?.records ?? [])].reverse();
  });
  const shown = () => (records.error ? [] : (records.latest ?? [])).filter((r) => matchesText(r, text()));
  const set = (k: keyof Filter, v: string) => setDraft({ ...draft(), [k]: v });

  const [report, setReport] = createSignal<Report | null>(null);
  const [verifyError, setVerifyError] = createSignal<unknown>(null);
  const [verifying, setVerifying] = createSignal(false);
  const broken = () => firstBreak(report()?.problem);
  async function verify() {
    setVerifyError(null);
    setVerifying(true);
    const { data, error } = await props.hub.POST("/v1/audit/verify", {});
    setVerifying(false);
    if (error) {
      setReport(null);
      setVerifyError(new ProblemError(error));
    } else setReport(data ?? null);
  }

  return (
    <main class="mx-auto max-w-7xl px-4 py-6">
      <div class="mb-4 flex flex-wrap items-center gap-3">
        <h1 class="text-2xl font-semibold">Audit</h1>
        <button type="button" class="ml-auto rounded bg-accent px-4 py-2 font-medium text-accent-text" disabled={verifying()} onClick={() => void verify()}>
          {verifying() ? "Verifying…" : "Verify the chain"}
        </button>
      </div>
      <Show when={verifyError()}>
        <ProblemNote error={verifyError()} />
      </Show>
      <Show when={report()}>
        {(r) => (
          <section
            aria-labelledby="verify-h"
            data-testid="verify-report"
            data-ok={r().ok ? "true" : "false"}
            role={r().ok ? "status" : "alert"}
            class={"mb-4 rounded border px-3 py-2 " + (r().ok ? "border-ok bg-ok-bg text-ok" : "border-danger bg-danger-bg text-danger")}
          >
            <h2 id="verify-h" class="font-semibold">
              {r().ok ? "The audit chain is whole" : "The audit chain is broken"}
            </h2>
            <Show when={!r().ok}>
              <Show when={broken()}>
                {(b) => {
                  const x = b();
                  return "record" in x ? (
                    <p class="mt-1">
                      First changed record: <code class="break-all font-semibold" data-testid="broken-record">{x.record}</code>
                    </p>
                  ) : (
                    <p class="mt-1">
                      First broken seal: <strong data-testid="broken-seal">{x.seal}</strong>
                    </p>
                  );
                }}
              </Show>
              <p class="mt-1 text-sm" data-testid="verify-problem">
                {r().problem}
              </p>
            </Show>
            <Show when={r().ok}>
              <p class="mt-1 text-sm">
                {r().seals} seal{r().seals === 1 ? "" : "s"}, {r().records} sealed record{r().records === 1 ? "" : "s"} checked
                {r().unsealed ? `, ${r().unsealed} written since the last seal (not yet protected)` : ""}.
              </p>
            </Show>
            <Show when={(r().gaps ?? []).length > 0}>
              <p class="mt-1 text-sm">
                {(r().gaps ?? []).length} gap{(r().gaps ?? []).length === 1 ? "" : "s"} in the seals, each explained by a hub start.
              </p>
            </Show>
          </section>
        )}
      </Show>

      <form
        class="mb-4 flex flex-wrap items-end gap-2"
        onSubmit={(e) => {
          e.preventDefault();
          if (JSON.stringify(draft()) === JSON.stringify(filter())) void refetch();
          else setFilter(draft());
        }}
      >
        <div>
          <label for="audit-since" class="mb-1 block text-sm font-medium">
            Since
          </label>
          <input id="audit-since" type="datetime-local" class={input} value={draft().since} onInput={(e) => set("since", e.currentTarget.value)} />
        </div>
        <div>
          <label for="audit-until" class="mb-1 block text-sm font-medium">
            Until
          </label>
          <input id="audit-until" type="datetime-local" class={input} value={draft().until} onInput={(e) => set("until", e.currentTarget.value)} />
        </div>
        <div>
          <label for="audit-principal" class="mb-1 block text-sm font-medium">
            Principal
          </label>
          <input id="audit-principal" class={input + " w-48"} placeholder="token:… or a name" value={draft().principal} onInput={(e) => set("principal", e.currentTarget.value)} />
        </div>
        <div>
          <label for="audit-limit" class="mb-1 block text-sm font-medium">
            At most
          </label>
          <input id="audit-limit" inputMode="numeric" class={input + " w-24"} value={draft().limit} onInput={(e) => set("limit", e.currentTarget.value)} />
        </div>
        <button type="submit" class="rounded border border-border bg-surface px-4 py-2 text-text">
          Filter
        </button>
        <div class="ml-auto">
          <label for="audit-text" class="mb-1 block text-sm font-medium">
            Action or target contains
          </label>
          <input id="audit-text" type="search" class={input + " w-56"} value={text()} onInput={(e) => setText(e.currentTarget.value)} />
        </div>
      </form>
      <p class="mb-2 text-sm text-muted">Without a time, the last 24 hours. Newest first.</p>
      <Show when={records.error}>
        <ProblemNote error={records.error} />
      </Show>
      <p class="mb-2 text-sm text-muted" aria-live="polite" data-testid="audit-count">
        {records.latest ? `${shown().length} of ${records.latest.length} records` : ""}
      </p>
      <div class="overflow-x-auto rounded-lg border border-border bg-surface">
        <table class="w-full text-left text-sm" data-testid="audit-records">
          <caption class="sr-only">Audit records, newest first</caption>
          <thead class="bg-surface-2">
            <tr>
              <th scope="col" class="px-3 py-2">Time</th>
              <th scope="col" class="px-3 py-2">Principal</th>
              <th scope="col" class="px-3 py-2">Action</th>
              <th scope="col" class="px-3 py-2">Targets</th>
              <th scope="col" class="px-3 py-2">Outcome</th>
              <th scope="col" class="px-3 py-2">Decided by</th>
            </tr>
          </thead>
          <tbody>
            <For
              each={shown()}
              fallback={
                <tr>
                  <td colSpan={6} class="px-3 py-6 text-center text-muted">
                    {records.loading ? "Loading…" : "No records match."}
                  </td>
                </tr>
              }
            >
              {(r) => (
                <tr class="border-t border-border align-top" data-record={r.id} data-action={r.action}>
                  <td class="whitespace-nowrap px-3 py-1">
                    <time datetime={r.time}>{new Date(r.time).toLocaleString()}</time>
                  </td>
                  <td class="px-3 py-1">
                    <span class="font-mono text-xs">{r.principal.id}</span>
                    <span class="ml-1 text-xs text-muted">{r.principal.via}</span>
                  </td>
                  <td class="px-3 py-1 font-mono text-xs">{r.action}</td>
                  <td class="max-w-xs break-all px-3 py-1 font-mono text-xs">{(r.targets ?? []).join(" ")}</td>
                  <td class="px-3 py-1">
                    <Badge state={r.outcome} />
                  </td>
                  <td class="px-3 py-1 font-mono text-xs">{(r.decision?.rules ?? []).join(", ")}</td>
                </tr>
              )}
            </For>
          </tbody>
        </table>
      </div>
    </main>
  );
}
