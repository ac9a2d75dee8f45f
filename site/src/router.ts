// A hash router: the page is named after '#', so any static host serves every page from index.html
// and nothing but a path and a selector ever goes into the URL (never a token).
import { createSignal, onCleanup, type Accessor } from "solid-js";

/** Route is the page shown and what it is about. */
export type Route =
  | { page: "fleet" }
  | { page: "agent"; id: string }
  | { page: "commands" }
  | { page: "command"; id: string }
  | { page: "run"; targets: string }
  | { page: "alerts" }
  | { page: "approvals" }
  | { page: "workflows" }
  | { page: "executions" }
  | { page: "execution"; id: string }
  | { page: "plans" }
  | { page: "plan"; name: string }
  | { page: "audit" }
  | { page: "missing"; path: string };

/** parseRoute reads a location.hash ("#/agents/web-1"); an empty hash is the fleet. */
export function parseRoute(hash: string): Route {
  const raw = hash.replace(/^#/, "");
  const [path = "", query = ""] = raw.split("?", 2);
  const parts = path.split("/").filter((p) => p !== "").map(decode);
  const q = new URLSearchParams(query);
  const [first, second, ...rest] = parts;
  if (rest.length > 0) return { page: "missing", path };
  switch (first) {
    case undefined:
    case "fleet":
      return second === undefined ? { page: "fleet" } : { page: "missing", path };
    case "agents":
      return second ? { page: "agent", id: second } : { page: "fleet" };
    case "commands":
      return second ? { page: "command", id: second } : { page: "commands" };
    case "run":
      return second === undefined ? { page: "run", targets: q.get("targets") ?? "" } : { page: "missing", path };
    case "alerts":
      return second === undefined ? { page: "alerts" } : { page: "missing", path };
    case "approvals":
      return second === undefined ? { page: "approvals" } : { page: "missing", path };
    case "workflows":
      return second === undefined ? { page: "workflows" } : { page: "missing", path };
    case "executions":
      return second ? { page: "execution", id: second } : { page: "executions" };
    case "plans":
      return second ? { page: "plan", name: second } : { page: "plans" };
    case "audit":
      return second === undefined ? { page: "audit" } : { page: "missing", path };
  }
  return { page: "missing", path };
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** href is the link to a route. */
export function href(r: Route): string {
  switch (r.page) {
    case "fleet":
      return "#/fleet";
    case "agent":
      return `#/agents/${encodeURIComponent(r.id)}`;
    case "commands":
      return "#/commands";
    case "command":
      return `#/commands/${encodeURIComponent(r.id)}`;
    case "run":
      return r.targets ? `#/run?${new URLSearchParams({ targets: r.targets }).toString()}` : "#/run";
    case "alerts":
      return "#/alerts";
    case "approvals":
      return "#/approvals";
    case "workflows":
      return "#/workflows";
    case "executions":
      return "#/executions";
    case "execution":
      return `#/executions/${encodeURIComponent(r.id)}`;
    case "plans":
      return "#/plans";
    case "plan":
      return `#/plans/${encodeURIComponent(r.name)}`;
    case "audit":
      return "#/audit";
    case "missing":
      return `#${r.path}`;
  }
}

/** section is the top-level page a route belongs to, for the navigation's aria-current. */
export function section(r: Route): "fleet" | "commands" | "approvals" | "workflows" | "executions" | "plans" | "alerts" | "audit" | null {
  switch (r.page) {
    case "fleet":
    case "agent":
      return "fleet";
    case "commands":
    case "command":
    case "run":
      return "commands";
    case "approvals":
      return "approvals";
    case "workflows":
      return "workflows";
    case "executions":
    case "execution":
      return "executions";
    case "plans":
    case "plan":
      return "plans";
    case "alerts":
      return "alerts";
    case "audit":
      return "audit";
  }
  return null;
}

/** go shows a route. */
export function go(r: Route): void {
  location.hash = href(r);
}

/** createRoute follows location.hash. */
export function createRoute(): Accessor<Route> {
  const [route, setRoute] = createSignal<Route>(parseRoute(location.hash));
  const onChange = () => setRoute(parseRoute(location.hash));
  addEventListener("hashchange", onChange);
  onCleanup(() => removeEventListener("hashchange", onChange));
  return route;
}
