// Where in a workflow's source the hub's refusal points: its problem's errors are located as
// "body.source:LINE:COLUMN path" (domain.Refused).
import type { Problem } from "./api";

/** SourceProblem is one located problem; line 0 is the source as a whole. */
export interface SourceProblem {
  line: number;
  column: number;
  path: string;
  message: string;
}

/** sourceProblems reads the located problems of a refusal, in line order. */
export function sourceProblems(p: Problem | null | undefined): SourceProblem[] {
  const out: SourceProblem[] = [];
  for (const e of p?.errors ?? []) {
    const m = /^body\.source(?::(\d+):(\d+))?(?: (.*))?$/.exec(e.location ?? "");
    if (!m) continue;
    out.push({ line: Number(m[1] ?? 0), column: Number(m[2] ?? 0), path: m[3] ?? "", message: e.message ?? "" });
  }
  return out.sort((a, b) => a.line - b.line || a.column - b.column);
}

/** InputSpec is one input a workflow declares (its definition's inputs), in name order. */
export interface InputSpec {
  name: string;
  type: "string" | "int" | "bool";
  description: string;
  required: boolean;
  /** The default as the form shows it ("" when there is none). */
  default: string;
}

/** inputsOf reads the declared inputs of a workflow's parsed definition (GET /v1/workflows/{name}). */
export function inputsOf(definition: unknown): InputSpec[] {
  if (!definition || typeof definition !== "object") return [];
  const raw = (definition as { inputs?: unknown }).inputs;
  if (!raw || typeof raw !== "object") return [];
  const out: InputSpec[] = [];
  for (const [name, v] of Object.entries(raw as Record<string, unknown>)) {
    const o = (v && typeof v === "object" ? v : {}) as Record<string, unknown>;
    const type = o["type"] === "int" || o["type"] === "bool" ? o["type"] : "string";
    const d = o["default"];
    out.push({
      name,
      type,
      description: typeof o["description"] === "string" ? o["description"] : "",
      required: o["required"] === true,
      default: d === undefined || d === null ? "" : String(d),
    });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * inputValues turns the form's text into the start-execution inputs, typed as declared: an empty
 * optional field is left out (the workflow's default applies); a required one, or an int that is not
 * a whole number, is a problem named by the input.
 */
export function inputValues(specs: InputSpec[], form: Record<string, string>): { inputs: Record<string, string | number | boolean>; problems: Record<string, string> } {
  const inputs: Record<string, string | number | boolean> = {};
  const problems: Record<string, string> = {};
  for (const s of specs) {
    const text = form[s.name] ?? "";
    if (s.type === "bool") {
      if (text === "true" || text === "false") inputs[s.name] = text === "true";
      else if (s.required) problems[s.name] = "Choose true or false.";
      continue;
    }
    if (text.trim() === "") {
      if (s.required) problems[s.name] = "Required.";
      continue;
    }
    if (s.type === "int") {
      if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(Number(text.trim()))) problems[s.name] = "A whole number.";
      else inputs[s.name] = Number(text.trim());
      continue;
    }
    inputs[s.name] = text;
  }
  return { inputs, problems };
}

/**
 * stepOrder names an execution's steps in the order they first appear on its timeline, then those
 * not reached yet in name order.
 */
export function stepOrder(steps: Record<string, unknown>, timeline: { step?: string }[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const e of timeline) {
    if (e.step && e.step in steps && !seen.has(e.step)) {
      seen.add(e.step);
      out.push(e.step);
    }
  }
  return [...out, ...Object.keys(steps).filter((n) => !seen.has(n)).sort()];
}
