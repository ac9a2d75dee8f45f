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
