// The hub the dashboard talks to, read at run time so one build serves every deployment: a
// config.json beside index.html names it (a bucket or CDN deployment); without one the dashboard
// talks to the origin that served it (embedded in `pulse serve`).

/** SiteConfig is what config.json may say. */
export interface SiteConfig {
  /** The hub's base URL, e.g. https://pulse.example.com. */
  hub: string;
}

/** parseConfig takes the hub from a config.json body, or falls back to the page's origin. */
export function parseConfig(body: unknown, origin: string): SiteConfig {
  if (body && typeof body === "object" && "hub" in body) {
    const hub = (body as { hub: unknown }).hub;
    if (typeof hub === "string" && hub.trim() !== "") {
      return { hub: hub.trim().replace(/\/+$/, "") };
    }
  }
  return { hub: origin };
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
