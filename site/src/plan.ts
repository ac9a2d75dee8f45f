// What a plan's page offers, kept apart from the page so it can be tested without a browser.

/** RolloutOp is an operation on a rollout. */
export type RolloutOp = "pause" | "resume" | "promote" | "abort";

/**
 * rolloutOps lists the operations a rollout in state allows, as the hub decides them (docs/plans.md):
 * pause from rolling or halted, resume from paused or halted, promote from rolling or paused, abort
 * from any state but a final one. No rollout, or a final one: none.
 */
export function rolloutOps(state: string | undefined): RolloutOp[] {
  switch (state) {
    case "rolling":
      return ["pause", "promote", "abort"];
    case "paused":
      return ["resume", "promote", "abort"];
    case "halted":
      return ["pause", "resume", "abort"];
  }
  return [];
}
