// The run form's checks, the same the hub makes against every target's catalog: a command must be in
// each target's catalog, and each parameter must match its pattern (RE2, the whole value) and cap.
import type { components } from "../../openapi/ts/pulse-api";

export type CommandSpec = components["schemas"]["CommandSpec"];
export type ParamSpec = components["schemas"]["ParamSpec"];

/** common is the commands every catalog has, by name, with each target's spec of it. */
export function common(catalogs: CommandSpec[][]): Map<string, CommandSpec[]> {
  const out = new Map<string, CommandSpec[]>();
  if (catalogs.length === 0) return out;
  for (const spec of catalogs[0]!) out.set(spec.name, [spec]);
  for (const cat of catalogs.slice(1)) {
    const here = new Map(cat.map((s) => [s.name, s]));
    for (const [name, specs] of out) {
      const s = here.get(name);
      if (s) specs.push(s);
      else out.delete(name);
    }
  }
  return new Map([...out].sort(([a], [b]) => a.localeCompare(b)));
}

/** paramsOf lists the parameters of a command across its specs, by name, each with every spec of it. */
export function paramsOf(specs: CommandSpec[]): Map<string, ParamSpec[]> {
  const out = new Map<string, ParamSpec[]>();
  for (const s of specs) for (const p of s.params ?? []) out.set(p.name, [...(out.get(p.name) ?? []), p]);
  return out;
}

/** checkParam says what is wrong with value under every spec of a parameter, or null. */
export function checkParam(specs: ParamSpec[], value: string): string | null {
  if (value === "") return specs.some((p) => p.required) ? "Required." : null;
  const bytes = new TextEncoder().encode(value).length;
  for (const p of specs) {
    if (p.maxBytes && p.maxBytes > 0 && bytes > p.maxBytes) return `At most ${p.maxBytes} bytes (this is ${bytes}).`;
    if (p.pattern) {
      let re: RegExp | null = null;
      try {
        re = new RegExp(`^(?:${p.pattern})$`, "u");
      } catch {
        re = null; // an RE2 form JavaScript does not know: the hub checks it
      }
      if (re && !re.test(value)) return `Must match ${p.pattern}.`;
    }
  }
  return null;
}
