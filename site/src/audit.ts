// The audit page's pure parts: the text filter over records, and what a failed verification names.

/** AuditLike is the part of an audit record the text filter reads. */
export interface AuditLike {
  action: string;
  targets?: string[] | null;
}

/**
 * matchesText says whether a record's action or one of its targets contains every word of text
 * (case-insensitively); empty text matches every record.
 */
export function matchesText(r: AuditLike, text: string): boolean {
  const words = text.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return true;
  const hay = [r.action, ...(r.targets ?? [])].join(" ").toLowerCase();
  return words.every((w) => hay.includes(w));
}

/** Break is what a failed verification names first: a record (its store key and id), a seal, or neither. */
export type Break = { record: string; id: string } | { seal: number } | null;

/** firstBreak reads the record or seal that a verification report's problem names. */
export function firstBreak(problem: string | undefined): Break {
  if (!problem) return null;
  const r = /^record (\S+)/.exec(problem);
  if (r) {
    const key = r[1]!;
    const id = key.slice(key.lastIndexOf("/") + 1).replace(/\.json$/, "");
    return { record: key, id };
  }
  const s = /seal (\d+)/.exec(problem);
  if (s) return { seal: Number(s[1]) };
  return null;
}
