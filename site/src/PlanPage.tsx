// One plan: where it stands on each agent (GET /v1/plans/{name}/status), live from its event stream
// (GET /v1/plans/{name}/events: `plan` for the whole, `agent` for one agent's state; polled every few
// seconds while the stream is down); its rollout with the waves and events, and pause, resume,
// promote and abort; rollback; operations the policy holds for approvals (proposals) with approve
// and deny; the newest version's source, and applying a new one. A refusal shows the hub's problem, a
// denial its policy rule.
import { createSignal, For, onCleanup, Show, type JSX } from "solid-js";
import { asProblem, ProblemError, type Hub } from "./api";
import type { components } from "../../openapi/ts/pulse-api";
import { ago } from "./format";
import { Badge } from "./Badge";
import { PlanApply } from "./PlanApply";
import { ProblemNote } from "./ProblemNote";
import { href } from "./router";
import { watch, type StreamState } from "./sse";
import { rolloutOps, type RolloutOp } from "./plan";

type Status = components["schemas"]["PlanStatusView"];
type AgentStatus = components["schemas"]["PlanAgentStatus"];
type Rollout = components["schemas"]["RolloutView"];
type Proposal = components["schemas"]["ProposalView"];
type Version = components["schemas"]["PlanVersion"];
type RolloutState = components["schemas"]["RolloutState"];

/** PlanUpdate is the data of a `plan` event on the plan's stream. */
interface PlanUpdate {
  name: string;
  version: number;
  mode: string;
  agents: number;
  converged: number;
  rollout?: RolloutState;
}

const section = "mb-6 rounded-lg border border-border bg-surface p-4";
const small = "rounded border border-border bg-surface px-3 py-1 text-sm text-text disabled:opacity-60";
const input = "rounded border border-border bg-surface px-3 py-2 text-text placeholder:text-muted";

function time(s: string | undefined): string {
  if (!s) return "";
  const t = new Date(s);
  return Number.isNaN(t.getTime()) ? s : t.toLocaleString();
}

/** coalesced runs fn now, or once more after the run in progress when asked during it. */
function coalesced(fn: () => Promise<void>): () => void {
  let running = false;
  let again = false;
  const run = async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        await fn();
      } while (again);
    } finally {
      running = false;
    }
  };
  return () => void run();
}

const opLabel: Record<RolloutOp, string> = { pause: "Pause", resume: "Resume", promote: "Promote next wave", abort: "Abort" };

/** PlanPage shows plan name, live. */
export function PlanPage(props: { hub: Hub; hubURL: string; token: () => string | null; name: string }): JSX.Element {
  const path = { path: { name: props.name } };
  const [status, setStatus] = createSignal<Status | null>(null);
  const [loadError, setLoadError] = createSignal<unknown>(null);
  const [rollout, setRollout] = createSignal<Rollout | null>(null);
  const [proposals, setProposals] = createSignal<Proposal[]>([]);
  const [version, setVersion] = createSignal<Version | null>(null);
  const [stream, setStream] = createSignal<StreamState>("connecting");
  const [actionError, setActionError] = createSignal<unknown>(null);
  const [said, setSaid] = createSignal("");
  const [reason, setReason] = createSignal("");
  const [comment, setComment] = createSignal("");
  const [busy, setBusy] = createSignal(false);
  const abort = new AbortController();
  onCleanup(() => abort.abort());

  const loadRollout = async () => {
    const { data, error, response } = await props.hub.GET("/v1/plans/{name}/rollout", { params: path });
    if (error && response.status !== 404) setActionError(new ProblemError(error));
    setRollout(data ?? null);
  };
  const loadProposals = async () => {
    const { data } = await props.hub.GET("/v1/plans/{name}/proposals", { params: path });
    setProposals(data?.proposals ?? []);
  };
  const loadAll = coalesced(async () => {
    const { data, error } = await props.hub.GET("/v1/plans/{name}/status", { params: path });
    if (error) {
      setLoadError(new ProblemError(error));
      return;
    }
    setLoadError(null);
    setStatus(data);
    if (version()?.version !== data.version) {
      const v = await props.hub.GET("/v1/plans/{name}", { params: path });
      if (v.data) setVersion(v.data);
    }
    await Promise.all([loadRollout(), loadProposals()]);
  });
  const refreshRollout = coalesced(async () => {
    await Promise.all([loadRollout(), loadProposals()]);
  });

  function onAgent(a: AgentStatus) {
    const st = status();
    if (!st) return;
    const agents = [...(st.agents ?? [])];
    const i = agents.findIndex((x) => x.agent === a.agent);
    if (i >= 0) agents[i] = a;
    else agents.push(a);
    setStatus({ ...st, agents });
    if (rollout()) refreshRollout();
  }
  function onPlan(u: PlanUpdate) {
    const st = status();
    if (!st || st.version !== u.version) {
      loadAll();
      return;
    }
    const next: Status = { ...st, mode: u.mode, converged: u.converged };
    if (u.rollout) next.rollout = u.rollout;
    else delete next.rollout;
    setStatus(next);
    refreshRollout();
  }

  loadAll();
  void watch({
    url: new URL(`v1/plans/${encodeURIComponent(props.name)}/events`, props.hubURL + "/").toString(),
    token: props.token,
    signal: abort.signal,
    finished: () => false, // a plan's stream does not end: a drop is reconnected
    onState(s) {
      setStream(s);
      if (s === "live") loadAll();
    },
    onRefused: async (resp) => {
      setStream("ended");
      if (resp.status !== 404) setLoadError(new ProblemError(await asProblem(resp)));
    },
    onEvent(ev) {
      try {
        if (ev.event === "agent") onAgent(JSON.parse(ev.data) as AgentStatus);
        else if (ev.event === "plan") onPlan(JSON.parse(ev.data) as PlanUpdate);
      } catch {
        loadAll();
      }
    },
  });
  // While the stream is down (connecting, reconnecting), look every 3 s; a refused stream is not
  // looked at again.
  const poll = setInterval(() => {
    if (stream() !== "live" && stream() !== "ended") loadAll();
  }, 3000);
  onCleanup(() => clearInterval(poll));

  async function op(o: RolloutOp) {
    setActionError(null);
    setSaid("");
    setBusy(true);
    const body = reason().trim() ? { reason: reason().trim() } : {};
    const p = { params: path, body };
    const { data, error } =
      o === "pause"
        ? await props.hub.POST("/v1/plans/{name}/rollout/pause", p)
        : o === "resume"
          ? await props.hub.POST("/v1/plans/{name}/rollout/resume", p)
          : o === "promote"
            ? await props.hub.POST("/v1/plans/{name}/rollout/promote", p)
            : await props.hub.POST("/v1/plans/{name}/rollout/abort", p);
    setBusy(false);
    if (error) {
      setActionError(new ProblemError(error));
      return;
    }
    if (data) setRollout(data);
    setSaid(data?.proposal ? `The ${o} waits for approval: ${data.proposal.approvals.reason}.` : `Rollout ${data?.state.replace(/_/g, " ") ?? o}.`);
    loadAll();
  }

  async function rollback() {
    setActionError(null);
    setSaid("");
    setBusy(true);
    const { data, error } = await props.hub.POST("/v1/plans/{name}/rollback", { params: path, body: reason().trim() ? { reason: reason().trim() } : {} });
    setBusy(false);
    if (error) {
      setActionError(new ProblemError(error));
      return;
    }
    setSaid(
      data?.proposal
        ? `The rollback waits for approval: ${data.proposal.approvals.reason}.`
        : `Rolled back: version ${data?.version ?? "?"} has the content of version ${data?.rolledBackTo ?? "?"}.`,
    );
    loadAll();
  }

  async function decide(p: Proposal, how: "approve" | "deny") {
    setActionError(null);
    setSaid("");
    setBusy(true);
    const params = { path: { name: props.name, id: p.id } };
    const body = comment().trim() ? { comment: comment().trim() } : {};
    const { data, error } =
      how === "approve"
        ? await props.hub.POST("/v1/plans/{name}/proposals/{id}/approve", { params, body })
        : await props.hub.POST("/v1/plans/{name}/proposals/{id}/deny", { params, body });
    setBusy(false);
    if (error) {
      setActionError(new ProblemError(error));
      return;
    }
    setSaid(`${how === "approve" ? "Approved" : "Denied"} ${p.op} (${p.id}): ${data?.state ?? ""}${data?.outcome ? `, ${data.outcome}` : ""}.`);
    loadAll();
  }

  const awaiting = () => proposals().filter((p) => p.state === "awaiting");
  const others = () => proposals().filter((p) => p.state !== "awaiting").slice(0, 5);
  const allowed = () => rolloutOps(rollout()?.state);

  return (
    <main class="mx-auto max-w-7xl px-4 py-6">
      <nav aria-label="Breadcrumb" class="mb-2 text-sm">
        <a class="text-accent underline" href={href({ page: "plans" })}>
          Plans
        </a>{" "}
        / plan
      </nav>
      <Show when={loadError()}>
        <ProblemNote error={loadError()} />
      </Show>
      <div class="mb-2 flex flex-wrap items-center gap-3">
        <h1 class="text-2xl font-semibold">{props.name}</h1>
        <Show when={status()}>
          {(st) => (
            <>
              <span class="rounded bg-surface-2 px-2 py-0.5 text-sm font-semibold" data-testid="plan-version">
                version {st().version}
              </span>
              <span class="text-sm">
                mode <strong>{st().mode}</strong>
              </span>
              <span class="text-sm" data-testid="plan-converged">
                <strong>{st().converged}</strong> of {(st().agents ?? []).length} agent{(st().agents ?? []).length === 1 ? "" : "s"} converged
              </span>
            </>
          )}
        </Show>
        <span class="text-sm text-muted" aria-live="polite" data-testid="stream-state">
          {stream()}
        </span>
      </div>
      <Show when={status()}>
        {(st) => (
          <p class="mb-4 text-sm text-muted">
            Targets <span class="font-mono">{(st().targets ?? []).join(" ")}</span> · applied {ago(st().appliedAt, Date.now())} by{" "}
            <span class="font-mono">{st().appliedBy}</span>
            <Show when={version()?.rolledBackTo}>{(to) => <> · the content of version {to()} (a rollback)</>}</Show>
          </p>
        )}
      </Show>

      <p class="mb-2 text-sm text-ok" aria-live="polite" data-testid="plan-said">
        {said()}
      </p>
      <Show when={actionError()}>
        <ProblemNote error={actionError()} />
      </Show>

      <Show when={awaiting().length > 0}>
        <section aria-labelledby="proposals-h" class="mb-6 rounded-lg border border-warn bg-warn-bg p-4 text-warn" data-testid="proposals">
          <h2 id="proposals-h" class="mb-2 text-lg font-semibold">
            Awaiting approval
          </h2>
          <ul class="space-y-3">
            <For each={awaiting()}>
              {(p) => (
                <li data-proposal={p.id} class="text-sm">
                  <p>
                    <strong>{p.op}</strong> (on version {p.basedOn}) proposed by <span class="font-mono">{p.requestedBy}</span> {ago(p.at, Date.now())}:{" "}
                    {p.approvals.reason}
                    {(p.rules ?? []).length ? (
                      <>
                        {" "}
                        (rule{(p.rules ?? []).length === 1 ? "" : "s"} <code class="font-semibold">{(p.rules ?? []).join(", ")}</code>)
                      </>
                    ) : (
                      ""
                    )}
                    .
                  </p>
                  <p>
                    {(p.approvers ?? []).length} of {p.approvals.count} approval{p.approvals.count === 1 ? "" : "s"} from {(p.approvals.groups ?? []).join(", ") || "anyone"}
                    {(p.approvers ?? []).length ? ` (so far: ${(p.approvers ?? []).join(", ")})` : ""}.
                  </p>
                  <div class="mt-2 flex flex-wrap gap-2">
                    <button type="button" class={small} disabled={busy()} onClick={() => void decide(p, "approve")}>
                      Approve {p.op}
                    </button>
                    <button type="button" class={small} disabled={busy()} onClick={() => void decide(p, "deny")}>
                      Deny {p.op}
                    </button>
                  </div>
                </li>
              )}
            </For>
          </ul>
          <label for="proposal-comment" class="mb-1 mt-3 block text-sm font-medium">
            Comment (for the record)
          </label>
          <input id="proposal-comment" class={input + " w-full max-w-md"} value={comment()} onInput={(e) => setComment(e.currentTarget.value)} />
        </section>
      </Show>

      <section class={section} aria-labelledby="rollout-h" data-testid="rollout">
        <div class="mb-2 flex flex-wrap items-center gap-3">
          <h2 id="rollout-h" class="text-lg font-semibold">
            Rollout
          </h2>
          <Show when={rollout()}>
            {(r) => (
              <>
                <span data-testid="rollout-state">
                  <Badge state={r().state} />
                </span>
                <span class="text-sm text-muted">
                  of version {r().version}, {r().released} of {(r().waves ?? []).length} wave{(r().waves ?? []).length === 1 ? "" : "s"} released
                  {r().rollout.bakeSeconds ? `, bake ${r().rollout.bakeSeconds} s` : ""}
                </span>
              </>
            )}
          </Show>
        </div>
        <Show when={rollout()} fallback={<p class="mb-3 text-sm text-muted">The newest version has no rollout: it goes to every target at once.</p>}>
          {(r) => (
            <>
              <Show when={r().reason}>
                <p class="mb-2 text-sm" data-testid="rollout-reason">
                  {r().reason}
                </p>
              </Show>
              <div class="mb-3 overflow-x-auto">
                <table class="w-full text-left text-sm" data-testid="waves">
                  <caption class="sr-only">Waves of the rollout</caption>
                  <thead class="bg-surface-2">
                    <tr>
                      <th scope="col" class="px-3 py-2">Wave</th>
                      <th scope="col" class="px-3 py-2">Agents</th>
                      <th scope="col" class="px-3 py-2">Released</th>
                      <th scope="col" class="px-3 py-2">Converged</th>
                      <th scope="col" class="px-3 py-2">Failed</th>
                    </tr>
                  </thead>
                  <tbody>
                    <For each={r().waves ?? []}>
                      {(w) => (
                        <tr class="border-t border-border" data-wave={w.wave}>
                          <td class="px-3 py-1">{w.wave}</td>
                          <td class="px-3 py-1">{(w.agents ?? []).length}</td>
                          <td class="px-3 py-1">{w.released ? "yes" : "not yet"}</td>
                          <td class="px-3 py-1" data-testid="wave-converged">
                            {w.converged}
                          </td>
                          <td class={"px-3 py-1 " + (w.failed ? "font-semibold text-danger" : "")} data-testid="wave-failed">
                            {w.failed}
                          </td>
                        </tr>
                      )}
                    </For>
                  </tbody>
                </table>
              </div>
              <Show when={(r().events ?? []).length > 0}>
                <h3 class="mb-1 text-sm font-semibold">Events</h3>
                <ol class="mb-3 space-y-1 text-sm" data-testid="rollout-events">
                  <For each={r().events ?? []}>
                    {(e) => (
                      <li class="flex flex-wrap gap-2" data-kind={e.kind}>
                        <time class="font-mono text-muted" datetime={e.at}>
                          {time(e.at)}
                        </time>
                        <span class="font-medium">{e.kind.replace(/_/g, " ")}</span>
                        {e.wave ? <span>wave {e.wave}</span> : ""}
                        <span class="text-muted">by {e.by}</span>
                        <Show when={e.reason}>
                          <span>— {e.reason}</span>
                        </Show>
                      </li>
                    )}
                  </For>
                </ol>
              </Show>
            </>
          )}
        </Show>
        <div class="flex flex-wrap items-end gap-2">
          <div>
            <label for="op-reason" class="mb-1 block text-sm font-medium">
              Reason (for the record)
            </label>
            <input id="op-reason" class={input + " w-64"} value={reason()} onInput={(e) => setReason(e.currentTarget.value)} />
          </div>
          <For each={allowed()}>
            {(o) => (
              <button type="button" class={o === "abort" ? "rounded border-2 border-danger-strong bg-danger-bg px-3 py-1.5 text-sm font-medium text-danger" : small + " py-1.5"} disabled={busy()} onClick={() => void op(o)}>
                {opLabel[o]}
              </button>
            )}
          </For>
          <button type="button" class={small + " py-1.5"} disabled={busy()} onClick={() => void rollback()}>
            Roll back
          </button>
        </div>
      </section>

      <section class={section} aria-labelledby="agents-h">
        <h2 id="agents-h" class="mb-2 text-lg font-semibold">
          Agents
        </h2>
        <div class="overflow-x-auto">
          <table class="w-full text-left text-sm" data-testid="plan-agents">
            <caption class="sr-only">Where the plan stands on each agent</caption>
            <thead class="bg-surface-2">
              <tr>
                <th scope="col" class="px-3 py-2">Agent</th>
                <th scope="col" class="px-3 py-2">Version</th>
                <th scope="col" class="px-3 py-2">Wave</th>
                <th scope="col" class="px-3 py-2">Units</th>
                <th scope="col" class="px-3 py-2">Reported</th>
              </tr>
            </thead>
            <tbody>
              <For
                each={status()?.agents ?? []}
                fallback={
                  <tr>
                    <td colSpan={5} class="px-3 py-4 text-center text-muted">
                      {status() ? "The plan's targets select no agent now." : "Loading…"}
                    </td>
                  </tr>
                }
              >
                {(a) => (
                  <tr class="border-t border-border align-top" data-agent={a.agent} data-version={a.version}>
                    <td class="px-3 py-2">
                      <a class="font-medium text-accent underline-offset-4 hover:underline" href={href({ page: "agent", id: a.agent })}>
                        {a.name}
                      </a>
                      <div>
                        <Badge state={a.online ? "online" : "offline"} />
                      </div>
                    </td>
                    <td class="px-3 py-2">
                      {a.version || "none"}
                      <Show when={status() && a.version !== status()!.version}>
                        <span class="text-muted"> (newest {status()!.version})</span>
                      </Show>
                      <Show when={a.refused}>
                        <div class="text-danger">
                          refused version {a.refusedVersion}: {a.refused}
                        </div>
                      </Show>
                    </td>
                    <td class="px-3 py-2">{a.wave ?? "—"}</td>
                    <td class="px-3 py-2">
                      <ul class="space-y-1">
                        <For each={a.units ?? []} fallback={<li class="text-muted">no report yet</li>}>
                          {(u) => (
                            <li class="flex flex-wrap items-baseline gap-2" data-unit={u.unit} data-state={u.state}>
                              <span class="font-mono text-xs">{u.unit}</span>
                              <span class="text-xs text-muted">{u.type}</span>
                              <Badge state={u.state} />
                              <Show when={u.reason || u.waitingOn}>
                                <span class="text-muted">{u.reason ?? `waiting on ${u.waitingOn}`}</span>
                              </Show>
                            </li>
                          )}
                        </For>
                      </ul>
                    </td>
                    <td class="px-3 py-2">{a.reportedAt ? <time datetime={a.reportedAt}>{ago(a.reportedAt, Date.now())}</time> : "never"}</td>
                  </tr>
                )}
              </For>
            </tbody>
          </table>
        </div>
      </section>

      <Show when={others().length > 0}>
        <section class={section} aria-labelledby="past-h">
          <h2 id="past-h" class="mb-2 text-lg font-semibold">
            Recent proposals
          </h2>
          <ul class="space-y-1 text-sm" data-testid="past-proposals">
            <For each={others()}>
              {(p) => (
                <li class="flex flex-wrap items-baseline gap-2" data-proposal={p.id}>
                  <Badge state={p.state} />
                  <span>
                    {p.op} by <span class="font-mono">{p.requestedBy}</span>, approved by {(p.approvers ?? []).join(", ") || "nobody"}
                    {p.outcome ? ` — ${p.outcome}` : ""}
                  </span>
                </li>
              )}
            </For>
          </ul>
        </section>
      </Show>

      <Show when={version()}>
        {(v) => (
          <section class="mb-6" aria-labelledby="source-h">
            <h2 id="source-h" class="mb-2 text-lg font-semibold">
              Apply a new version
            </h2>
            <p class="mb-2 text-sm text-muted">The source of version {v().version}, the newest, to edit and apply again.</p>
            <PlanApply hub={props.hub} name={props.name} source={v().source} onApplied={() => loadAll()} />
          </section>
        )}
      </Show>
    </main>
  );
}
