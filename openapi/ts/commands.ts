// Runs a command on agents through the hub API with the generated types, so `tsc --noEmit` (check.sh)
// proves that pulse-api.d.ts describes what a TypeScript caller needs: the request body of
// POST /v1/commands, the CommandStatus it answers, and the RFC 9457 problem of a refusal.
import type { components, paths } from "./pulse-api";

/** The body of POST /v1/commands, as the document declares it. */
export type CreateCommand = paths["/v1/commands"]["post"]["requestBody"]["content"]["application/json"];
/** What the hub answers when it accepted a command (202). */
export type CommandStatus = paths["/v1/commands"]["post"]["responses"][202]["content"]["application/json"];
/** A refusal: the problem details of any non-2xx answer. */
export type Problem = components["schemas"]["ErrorModel"];
/** One target's state; the states are an enum in the document. */
export type AgentState = components["schemas"]["AgentState"];

/** ProblemError carries a problem the hub answered, worded as the CLI words it. */
export class ProblemError extends Error {
  constructor(readonly problem: Problem) {
    super(problemLine(problem));
  }
}

/** problemLine: the detail, each located error the detail does not already say, and the status. */
export function problemLine(p: Problem): string {
  let msg = p.detail || p.title || "";
  for (const e of p.errors ?? []) {
    if (e.location && e.message && !msg.includes(e.message)) {
      msg += `; ${e.location}: ${e.message}`;
    }
  }
  return `${msg} (HTTP ${p.status ?? 0})`;
}

/** runCommand sends a command to the hub and returns its first status, or throws a ProblemError. */
export async function runCommand(hub: string, token: string, body: CreateCommand): Promise<CommandStatus> {
  const resp = await fetch(new URL("v1/commands", hub.endsWith("/") ? hub : hub + "/"), {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!resp.ok) {
    throw new ProblemError((await resp.json()) as Problem);
  }
  return (await resp.json()) as CommandStatus;
}

/** finished: the targets in a final state, by the document's enum. */
const finished: ReadonlySet<AgentState["state"]> = new Set<AgentState["state"]>([
  "succeeded", "failed", "timed_out", "cancelled", "rejected", "expired",
]);

/** summary is one line about a command: its id, how many targets are done, and the counts. */
export function summary(st: CommandStatus): string {
  const agents = st.agents ?? []; // nullable in the document: the hub may send null
  const done = agents.filter((a) => finished.has(a.state)).length;
  const counts = Object.entries(st.counts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([state, n]) => `${n} ${state}`)
    .join(", ");
  const exits = agents.flatMap((a) => (a.exitCode === undefined ? [] : [`${a.name}=${a.exitCode}`]));
  return `${st.id} ${st.command}: ${done}/${agents.length} done (${counts})${exits.length ? " exit " + exits.join(" ") : ""}`;
}

/** A restart of one web server at a time, stopping after the first failure. */
export const rollingRestart: CreateCommand = {
  command: "service_restart",
  targets: ["role=web"],
  params: { unit: "nginx" },
  maxConcurrency: 1,
  maxErrors: 1,
};

// The types are strict enough to refuse what the hub would refuse. Each line below must not compile:
// @ts-expect-error targets is required
export const noTargets: CreateCommand = { command: "host_uptime" };
// @ts-expect-error parameters are strings
export const numberParam: CreateCommand = { command: "echo", targets: ["all"], params: { text: 1 } };
// @ts-expect-error "exploded" is not a state
export const badState: AgentState["state"] = "exploded";
