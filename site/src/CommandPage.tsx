// One command: its state as a whole and on every target, each target's output as it arrives, and a
// cancel button. States come live from the command's event stream (GET /v1/commands/{id}/events);
// output is followed per agent once it has started.
import { createResource, createSignal, For, onCleanup, Show, type JSX } from "solid-js";
import { createStore } from "solid-js/store";
import { asProblem, ProblemError, type Hub } from "./api";
import type { components } from "../../openapi/ts/pulse-api";
import { duration } from "./format";
import { Badge } from "./Badge";
import { ProblemNote } from "./ProblemNote";
import { followOutput } from "./output";
import { href } from "./router";
import { watch, type StreamState } from "./sse";

type AgentState = components["schemas"]["AgentState"];
type Status = components["schemas"]["CommandStatus"];

const final = new Set(["succeeded", "failed", "timed_out", "cancelled", "rejected", "expired", "tampered"]);
const started = new Set(["delivered", "running", ...final]);

interface Whole {
  state: string;
  counts: Record<string, number>;
  message: string;
  done: boolean;
  approvals: number;
  needed: number;
}

/** sentence ends s with a full stop. */
function sentence(s: string): string {
  return /[.!?]$/.test(s) ? s : s + ".";
}

/** exitOf is an agent's exit code: the hub leaves out a zero, which a success always has. */
function exitOf(a: AgentState | undefined): number | undefined {
  if (!a) return undefined;
  return a.exitCode ?? (a.state === "succeeded" ? 0 : undefined);
}

/** overall words a status as the command's state as a whole, as the stream's command events do. */
function overall(st: Status): string {
  if (st.denied) return "denied";
  if (st.cancelled) return "cancelled";
  if (st.awaitingApproval) return "awaiting_approval";
  return st.done ? "done" : "running";
}

/** CommandPage shows command id, live. */
export function CommandPage(props: { hub: Hub; hubURL: string; token: () => string | null; id: string }): JSX.Element {
  const [agents, setAgents] = createStore<Record<string, AgentState>>({});
  const [order, setOrder] = createSignal<string[]>([]);
  const [output, setOutput] = createStore<Record<string, string>>({});
  const [whole, setWhole] = createSignal<Whole | null>(null);
  const [comment, setComment] = createSignal("");
  const [decided, setDecided] = createSignal("");
  const [stream, setStream] = createSignal<StreamState>("connecting");
  const [streamError, setStreamError] = createSignal<unknown>(null);
  const [actionError, setActionError] = createSignal<unknown>(null);
  const abort = new AbortController();
  onCleanup(() => abort.abort());
  const following = new Set<string>();

  function update(a: AgentState) {
    if (!order().includes(a.agent)) setOrder([...order(), a.agent]);
    setAgents(a.agent, a);
    // A target that ended without running (denied, expired, cancelled before delivery) has no output.
    const hasOutput = final.has(a.state) ? a.outputBytes > 0 || a.chunks > 0 : started.has(a.state);
    if (hasOutput && !following.has(a.agent)) {
      following.add(a.agent);
      setOutput(a.agent, "");
      void followOutput(props.hub, props.id, a.agent, (s) => setOutput(a.agent, (o) => (o ?? "") + s), abort.signal);
    }
  }

  const [status] = createResource(async (): Promise<Status> => {
    const { data, error } = await props.hub.GET("/v1/commands/{id}", { params: { path: { id: props.id } } });
    if (error) throw new ProblemError(error);
    const st = data!;
    setWhole({ state: overall(st), counts: st.counts, message: "", done: st.done, approvals: 0, needed: st.approval?.count ?? 0 });
    for (const a of st.agents ?? []) update(a);
    void watch({
      url: new URL(`v1/commands/${encodeURIComponent(props.id)}/events`, props.hubURL + "/").toString(),
      token: props.token,
      signal: abort.signal,
      finished: () => whole()?.done === true || (order().length > 0 && order().every((id) => final.has(agents[id]?.state ?? ""))),
      onState: setStream,
      onRefused: async (resp) => setStreamError(new ProblemError(await asProblem(resp))),
      onEvent(ev) {
        try {
          if (ev.event === "agent") update(JSON.parse(ev.data) as AgentState);
          else if (ev.event === "command") {
            const u = JSON.parse(ev.data) as Partial<{ state: string; counts: Record<string, number>; message: string; done: boolean; approvals: number; approvalsNeeded: number }>;
            setWhole({
              state: u.state ?? "running",
              counts: u.counts ?? {},
              message: u.message ?? "",
              done: u.done === true,
              approvals: u.approvals ?? 0,
              needed: u.approvalsNeeded ?? whole()?.needed ?? 0,
            });
          }
        } catch {
          // A malformed event is skipped; the next one carries the whole state again.
        }
      },
    });
    return st;
  });

  async function decide(how: "approve" | "deny") {
    setActionError(null);
    setDecided("");
    const body = comment().trim() ? { comment: comment().trim() } : {};
    const opts = { params: { path: { id: props.id } }, body };
    const { error } = how === "approve" ? await props.hub.POST("/v1/commands/{id}/approve", opts) : await props.hub.POST("/v1/commands/{id}/deny", opts);
    if (error) setActionError(new ProblemError(error));
    else setDecided(how === "approve" ? "You approved it." : "You denied it.");
  }

  async function cancel() {
    setActionError(null);
    const { error } = await props.hub.POST("/v1/commands/{id}/cancel", { params: { path: { id: props.id } } });
    if (error) setActionError(new ProblemError(error));
  }

  const counts = () =>
    Object.entries(whole()?.counts ?? {})
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([s, n]) => `${n} ${s.replace(/_/g, " ")}`)
      .join(", ");

  return (
    <main class="mx-auto max-w-7xl px-4 py-6">
      <nav aria-label="Breadcrumb" class="mb-2 text-sm">
        <a class="text-accent underline" href="#/commands">
          Commands
        </a>{" "}
        / command
      </nav>
      <Show when={status.error}>
        <ProblemNote error={status.error} />
      </Show>
      <Show when={status.latest} fallback={<h1 class="mb-4 text-2xl font-semibold">{status.loading ? "Loading…" : props.id}</h1>}>
        {(st) => (
          <>
            <div class="mb-2 flex flex-wrap items-center gap-3">
              <h1 class="text-2xl font-semibold">
                <code>{st().command}</code>
              </h1>
              <Badge state={whole()?.state ?? overall(st())} />
              <span class="text-sm text-muted" aria-live="polite" data-testid="stream-state">
                {stream() === "live" ? "live" : stream() === "ended" ? "finished" : stream()}
              </span>
              <Show when={!whole()?.done}>
                <button type="button" class="ml-auto rounded border-2 border-danger-strong bg-danger-bg px-4 py-2 font-medium text-danger" onClick={() => void cancel()}>
                  Cancel
                </button>
              </Show>
            </div>
            <p class="mb-4 text-sm text-muted">
              <span class="font-mono">{props.id}</span> · on <span class="font-mono">{(st().targetExprs ?? []).join(" ")}</span> · by{" "}
              <span class="font-mono">{st().issuer}</span> · {counts()}
              {whole()?.message ? ` · ${whole()!.message}` : ""}
            </p>
            <Show when={Object.keys(st().params ?? {}).length > 0}>
              <p class="mb-4 font-mono text-sm">
                {Object.entries(st().params ?? {})
                  .map(([k, v]) => `${k}=${v}`)
                  .join(" ")}
              </p>
            </Show>
          </>
        )}
      </Show>
      <Show when={status.latest && (whole()?.state ?? "") === "awaiting_approval"}>
        <section aria-labelledby="approval-h" class="mb-4 rounded-lg border border-warn bg-warn-bg p-4 text-warn" data-testid="approval">
          <h2 id="approval-h" class="mb-1 text-lg font-semibold">
            Awaiting approval
          </h2>
          <p class="mb-3 text-sm">
            {sentence(status.latest?.approval?.reason ?? "The policy requires approvals before it runs")}
            {whole()?.needed ? ` ${whole()!.approvals} of ${whole()!.needed} approvals so far.` : ""}
          </p>
          <div class="flex flex-wrap items-end gap-2">
            <div>
              <label for="decide-comment" class="mb-1 block text-sm font-medium">
                Comment (optional)
              </label>
              <input
                id="decide-comment"
                class="w-72 rounded border border-border bg-surface px-3 py-2 text-text"
                value={comment()}
                onInput={(e) => setComment(e.currentTarget.value)}
              />
            </div>
            <button type="button" class="rounded bg-accent px-4 py-2 font-medium text-accent-text" onClick={() => void decide("approve")}>
              Approve
            </button>
            <button type="button" class="rounded border border-border bg-surface px-4 py-2 text-text" onClick={() => void decide("deny")}>
              Deny
            </button>
          </div>
        </section>
      </Show>
      <p class="mb-2 text-sm" aria-live="polite" data-testid="decided">
        {decided()}
      </p>
      <Show when={actionError()}>
        <ProblemNote error={actionError()} />
      </Show>
      <Show when={streamError()}>
        <ProblemNote error={streamError()} />
      </Show>
      <ul class="space-y-4">
        <For each={order()}>
          {(id) => (
            <li class="rounded-lg border border-border bg-surface p-4" data-agent={id}>
              <div class="mb-2 flex flex-wrap items-center gap-3">
                <a class="font-semibold text-accent underline-offset-4 hover:underline" href={href({ page: "agent", id })}>
                  {agents[id]?.name || id}
                </a>
                <Badge state={agents[id]?.state ?? "pending"} />
                <Show when={exitOf(agents[id]) !== undefined}>
                  <span class="text-sm">exit {exitOf(agents[id])}</span>
                </Show>
                <Show when={agents[id]?.durationMs !== undefined}>
                  <span class="text-sm text-muted">{duration(agents[id]?.durationMs)}</span>
                </Show>
                <Show when={agents[id]?.reason}>
                  <span class="text-sm text-warn">{agents[id]?.reason}</span>
                </Show>
              </div>
              <Show when={output[id] !== undefined} fallback={<p class="text-sm text-muted">{final.has(agents[id]?.state ?? "") ? "No output." : "No output yet."}</p>}>
                <pre
                  class="max-h-96 overflow-auto rounded bg-surface-2 p-3 font-mono text-xs whitespace-pre-wrap"
                  aria-label={`Output of ${agents[id]?.name || id}`}
                  tabindex="0"
                  data-testid="output"
                >
                  {output[id] || "…"}
                </pre>
              </Show>
            </li>
          )}
        </For>
      </ul>
    </main>
  );
}
