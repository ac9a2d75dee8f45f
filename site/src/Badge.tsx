// A state shown as a coloured word: green for good, red for failed, amber for waiting, grey otherwise.
import type { JSX } from "solid-js";

const good = new Set(["ok", "succeeded", "done", "online", "resolved", "converged", "completed"]);
const bad = new Set(["failed", "timed_out", "rejected", "tampered", "denied", "firing", "degraded", "halted", "aborted", "drifted", "refused", "broken"]);
const waiting = new Set(["running", "delivered", "queued", "pending", "awaiting_approval", "awaiting_response", "rolling", "paused", "applying", "awaiting"]);

/** tone is the badge's colour classes for a state. */
export function tone(state: string): string {
  if (good.has(state)) return "bg-ok-bg text-ok";
  if (bad.has(state)) return "bg-danger-bg text-danger";
  if (waiting.has(state)) return "bg-warn-bg text-warn";
  return "bg-off-bg text-off";
}

/** Badge shows one state. */
export function Badge(props: { state: string }): JSX.Element {
  return (
    <span class={"whitespace-nowrap rounded px-2 py-0.5 text-xs font-semibold " + tone(props.state)} data-state={props.state}>
      {props.state.replace(/_/g, " ")}
    </span>
  );
}
