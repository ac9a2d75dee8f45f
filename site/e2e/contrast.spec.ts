// Every text/background pair of the semantic tokens in src/index.css meets WCAG AA (4.5:1 for body
// text) in both themes, read from the stylesheet itself so a changed token is checked at once.
import { expect, test } from "@playwright/test";
import { readFileSync } from "node:fs";

const css = readFileSync(new URL("../src/index.css", import.meta.url), "utf8");

/** tokens reads the --pulse-* colours of the first block that follows selector. */
function tokens(selector: string): Map<string, string> {
  const at = css.indexOf(selector);
  if (at < 0) throw new Error(`index.css has no ${selector}`);
  const body = css.slice(css.indexOf("{", at) + 1, css.indexOf("}", at));
  const out = new Map<string, string>();
  for (const m of body.matchAll(/--pulse-([a-z0-9-]+):\s*(#[0-9a-f]{6})/gi)) out.set(m[1]!, m[2]!);
  return out;
}

function luminance(hex: string): number {
  const c = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);
  const [r, g, b] = c.map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)) as [number, number, number];
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

function contrast(a: string, b: string): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x) as [number, number];
  return (hi + 0.05) / (lo + 0.05);
}

// [text, background]: every pairing the pages use.
const pairs: [string, string][] = [
  ["text", "bg"],
  ["text", "surface"],
  ["text", "surface-2"],
  ["muted", "bg"],
  ["muted", "surface"],
  ["muted", "surface-2"],
  ["accent-text", "accent"],
  ["accent", "bg"],
  ["accent", "surface"],
  ["ok", "ok-bg"],
  ["off", "off-bg"],
  ["warn", "warn-bg"],
  ["danger", "danger-bg"],
];

for (const [theme, selector] of [
  ["light", ":root {"],
  ["dark", ':root[data-theme="dark"]'],
  ["dark (system)", ':root:not([data-theme="light"])'],
] as const) {
  test(`contrast of the ${theme} tokens`, () => {
    const t = tokens(selector);
    for (const [fg, bg] of pairs) {
      const a = t.get(fg);
      const b = t.get(bg);
      expect(a && b, `${theme}: --pulse-${fg} and --pulse-${bg} are defined`).toBeTruthy();
      expect(contrast(a!, b!), `${theme}: ${fg} on ${bg}`).toBeGreaterThanOrEqual(4.5);
    }
  });
}

test("the two dark blocks agree", () => {
  expect([...tokens(':root:not([data-theme="light"])')]).toEqual([...tokens(':root[data-theme="dark"]')]);
});
