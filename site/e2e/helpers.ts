// What the page tests share: the environment TestDashboard sets, sign-in, and for each page its
// screenshots light and dark with an axe check of each (no serious or critical violations).
import AxeBuilder from "@axe-core/playwright";
import { expect, type Page } from "@playwright/test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

export function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run this suite through integration-tests (make test-site)`);
  return v;
}

export const shots = process.env["PULSE_E2E_SHOTS"] || "test-results/screenshots";

export async function signIn(page: Page, t: string) {
  await page.goto("./");
  await page.getByLabel("API token").fill(t);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("heading", { name: "Fleet" })).toBeVisible();
}

/** axe fails on any serious or critical accessibility violation of the page as it is now. */
export async function axe(page: Page, what: string) {
  const { violations } = await new AxeBuilder({ page }).analyze();
  const bad = violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.help}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  expect(bad, `axe on ${what}`).toEqual([]);
}

/** shoot saves NAME-light.png and NAME-dark.png, checking each theme took and passes axe. */
export async function shoot(page: Page, name: string) {
  mkdirSync(shots, { recursive: true });
  for (const scheme of ["light", "dark"] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    expect(bg, `body background in ${scheme}`).toBe(scheme === "light" ? "rgb(246, 247, 249)" : "rgb(15, 18, 22)");
    await axe(page, `${name} (${scheme})`);
    await page.screenshot({ path: join(shots, `${name}-${scheme}.png`), fullPage: true });
  }
}
