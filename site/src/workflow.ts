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
