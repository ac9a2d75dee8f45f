// The approvals inbox: commands waiting for the signed-in person's approval (GET /v1/approvals: not
// their own, not approved by them yet, in a group the policy requires). Each opens its command page,
// where it is approved or denied.
import { createResource, onCleanup, Show, type JSX } from "solid-js";
import { ProblemError, type Hub } from "./api";
import { CommandTable, type CommandSummary } from "./CommandTable";
import { ProblemNote } from "./ProblemNote";

/** ApprovalsPage lists what waits for the caller; it refreshes every 10 seconds. */
export function ApprovalsPage(props: { hub: Hub }): JSX.Element {
  const [waiting, { refetch }] = createResource(async (): Promise<CommandSummary[]> => {
    const { data, error } = await props.hub.GET("/v1/approvals", {});
    if (error) throw new ProblemError(error);
    return data?.commands ?? [];
  });
  const timer = setInterval(() => void refetch(), 10000);
  onCleanup(() => clearInterval(timer));
  return (
    <main class="mx-auto max-w-7xl px-4 py-6">
      <h1 class="mb-4 text-2xl font-semibold">Approvals</h1>
      <p class="mb-4 text-sm text-muted">Commands that wait for your approval. Open one to approve or deny it.</p>
      <Show when={waiting.error}>
        <ProblemNote error={waiting.error} />
      </Show>
      <CommandTable
        commands={waiting.error ? [] : (waiting.latest ?? [])}
        caption="Commands awaiting your approval"
        empty={waiting.loading ? "Loading…" : "Nothing waits for you."}
        now={Date.now()}
      />
    </main>
  );
}
