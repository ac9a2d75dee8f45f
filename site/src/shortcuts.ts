// The keyboard shortcuts: "g" then a letter goes to a page (g f the fleet, g p the plans …), "?"
// lists them. The matching is kept apart from the page so it can be tested without a browser.
import type { Route } from "./router";

/** Shortcut is one key sequence and where it goes. */
export interface Shortcut {
  /** The keys, as typed one after the other ("g f"). */
  keys: string;
  label: string;
  route: Route;
}

export const goShortcuts: Shortcut[] = [
  { keys: "g f", label: "Fleet", route: { page: "fleet" } },
  { keys: "g c", label: "Commands", route: { page: "commands" } },
  { keys: "g r", label: "Run a command", route: { page: "run", targets: "" } },
  { keys: "g i", label: "Approvals (your inbox)", route: { page: "approvals" } },
  { keys: "g w", label: "Workflows", route: { page: "workflows" } },
  { keys: "g e", label: "Executions", route: { page: "executions" } },
  { keys: "g p", label: "Plans", route: { page: "plans" } },
  { keys: "g a", label: "Alerts", route: { page: "alerts" } },
  { keys: "g u", label: "Audit", route: { page: "audit" } },
];

/** How long after "g" the second key still counts, in milliseconds. */
export const sequenceMs = 1500;

/** What a key press does: go somewhere, show the list, wait for the next key, or nothing. */
export type KeyAction = { go: Route } | { help: true } | { pending: true } | null;

/**
 * createSequence reads key presses (KeyboardEvent.key, at time now in ms) and says what each one
 * does. A "g" waits for the next key for sequenceMs; "?" asks for the list.
 */
export function createSequence(shortcuts: Shortcut[] = goShortcuts): (key: string, now: number) => KeyAction {
  let prefix = "";
  let at = 0;
  return (key, now) => {
    const held = prefix && now - at <= sequenceMs ? prefix : "";
    prefix = "";
    if (held) {
      const hit = shortcuts.find((s) => s.keys === `${held} ${key}`);
      if (hit) return { go: hit.route };
    }
    if (key === "?") return { help: true };
    if (shortcuts.some((s) => s.keys.startsWith(`${key} `))) {
      prefix = key;
      at = now;
      return { pending: true };
    }
    return null;
  };
}

/**
 * typing says whether a key press belongs to what has focus (a field, a select, an editable text,
 * or a key with Ctrl, Alt or Meta held), so no shortcut takes it.
 */
export function typing(target: { tagName?: string; isContentEditable?: boolean } | null, mods: { ctrlKey: boolean; altKey: boolean; metaKey: boolean }): boolean {
  if (mods.ctrlKey || mods.altKey || mods.metaKey) return true;
  const tag = (target?.tagName ?? "").toUpperCase();
  return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target?.isContentEditable === true;
}
