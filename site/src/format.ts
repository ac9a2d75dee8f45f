// How the fleet page words times and labels.

/** ago words how long ago t was, for a person scanning a table. */
export function ago(t: string | undefined, now: number): string {
  if (!t) return "never";
  const ms = now - Date.parse(t);
  if (Number.isNaN(ms)) return t;
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

/** labelText lists labels as k=v, sorted by key. */
export function labelText(labels: Record<string, string> | undefined): string[] {
  return Object.entries(labels ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`);
}

/** rulesOf names the policy rules a denial's detail cites ("… (rule: viewer_read_only)"). */
export function rulesOf(detail: string | undefined): string[] {
  const out: string[] = [];
  for (const m of (detail ?? "").matchAll(/\(rule: ([^)]+)\)/g)) {
    const r = m[1]!.trim();
    if (r && !out.includes(r)) out.push(r);
  }
  return out;
}

/** duration words milliseconds as 850ms, 4.2s, 3m 5s. */
export function duration(ms: number | undefined): string {
  if (ms === undefined) return "—";
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m ${s % 60}s`;
}
