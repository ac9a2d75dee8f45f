// What the command palette offers and how a query picks among it.
import type { Route } from "./router";

/** Entry is one place the palette can jump to. */
export interface Entry {
  label: string;
  /** What kind of place: a page, an agent or a plan. */
  kind: "page" | "agent" | "plan";
  /** Words matched besides the label (an agent's id). */
  also?: string;
  route: Route;
}

export const pageEntries: Entry[] = [
  { label: "Fleet", kind: "page", route: { page: "fleet" } },
  { label: "Commands", kind: "page", route: { page: "commands" } },
  { label: "Run a command", kind: "page", route: { page: "run", targets: "" } },
  { label: "Approvals", kind: "page", route: { page: "approvals" } },
  { label: "Workflows", kind: "page", route: { page: "workflows" } },
  { label: "Executions", kind: "page", route: { page: "executions" } },
  { label: "Plans", kind: "page", route: { page: "plans" } },
  { label: "Alerts", kind: "page", route: { page: "alerts" } },
  { label: "Audit", kind: "page", route: { page: "audit" } },
];

/**
 * matches filters entries by query, case-insensitively: labels that start with it first, then those
 * that contain it (or whose other words do), each in their given order. At most limit.
 */
export function matches(entries: Entry[], query: string, limit = 20): Entry[] {
  const q = query.trim().toLowerCase();
  if (!q) return entries.slice(0, limit);
  const starts: Entry[] = [];
  const contains: Entry[] = [];
  for (const e of entries) {
    const l = e.label.toLowerCase();
    if (l.startsWith(q)) starts.push(e);
    else if (l.includes(q) || (e.also ?? "").toLowerCase().includes(q)) contains.push(e);
  }
  return [...starts, ...contains].slice(0, limit);
}
