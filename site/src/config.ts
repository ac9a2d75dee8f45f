// The hub the dashboard talks to, read at run time so one build serves every deployment: a
// config.json beside index.html names it (a bucket or CDN deployment); without one the dashboard
// talks to the origin that served it (embedded in `pulse serve`).

/** SiteConfig is what config.json may say. */
export interface SiteConfig {
  /** The hub's base URL, e.g. https://pulse.example.com. */
  hub: string;
  /**
   * "forward": a forward-auth proxy in front of the hub names the person, so the page signs in
   * without a token when the hub answers it. Asked only when said: a request without credentials
   * counts as a failed authentication at a hub without such a proxy.
   */
  auth: "token" | "forward";
}

/** parseConfig takes the hub from a config.json body, or falls back to the page's origin. */
export function parseConfig(body: unknown, origin: string): SiteConfig {
  const b = body && typeof body === "object" ? (body as { hub?: unknown; auth?: unknown }) : {};
  const auth = b.auth === "forward" ? "forward" : "token";
  if (typeof b.hub === "string" && b.hub.trim() !== "") {
    return { hub: b.hub.trim().replace(/\/+$/, ""), auth };
  }
  return { hub: origin, auth };
}

/** loadConfig fetches ./config.json relative to the page; absent or unreadable means same origin. */
export async function loadConfig(): Promise<SiteConfig> {
  try {
    const resp = await fetch(new URL("config.json", document.baseURI), { cache: "no-cache" });
    const type = resp.headers.get("Content-Type") ?? "";
    if (resp.ok && type.includes("json")) {
      return parseConfig(await resp.json(), location.origin);
    }
  } catch {
    // No config.json (or not JSON): the hub is the origin that served the page.
  }
  return parseConfig(undefined, location.origin);
}

/**
 * probeForwarded asks the hub for the fleet without a token: behind a forward-auth proxy (one the hub
 * trusts to name the person) it answers 200, and the dashboard needs no token at all.
 */
export async function probeForwarded(hub: string): Promise<boolean> {
  try {
    const resp = await fetch(new URL("v1/agents?selector=all", hub + "/"), { cache: "no-store" });
    return resp.ok;
  } catch {
    return false;
  }
}
