// The 10,000-agent fleet (simulated: the browser is handed the list in place of the hub's), shared by
// its test (e2e/bigfleet.spec.ts: rows windowed, the last one reached) and the benchmark that times it
// (bench/bigfleet.spec.ts). It asserts structure only, never how fast.
import { expect, type Page } from "@playwright/test";
import { signIn } from "./helpers";

/** FleetTimes are how long the page took, in milliseconds. */
export interface FleetTimes {
  /** From sign-in to the first rows shown. */
  rendered: number;
  /** Four jumps of the scroller, a quarter of the list each, to the last row shown. */
  scrolled: number;
}

/** bigFleet signs page in with token over 10,000 simulated agents, and scrolls to the last one. */
export async function bigFleet(page: Page, token: string): Promise<FleetTimes> {
  const now = new Date().toISOString();
  const agents = Array.from({ length: 10000 }, (_, i) => {
    const n = String(i).padStart(5, "0");
    return {
      id: `ag-${n}`,
      name: `host-${n}`,
      online: i % 7 !== 0,
      lastSeen: now,
      version: "1.0.0",
      enrolledAt: now,
      labels: { env: i % 2 ? "prod" : "dev", role: "web", rack: `r${i % 40}` },
      ...(i % 13 === 0 ? { disabled: [{ id: "exec", enabled: false, reason: "configuration: a broken command" }] } : {}),
    };
  });
  const body = JSON.stringify({ agents });
  await page.route((u) => u.pathname === "/v1/agents", (route) => route.fulfill({ contentType: "application/json", body }));

  const t0 = Date.now();
  await signIn(page, token);
  await expect(page.getByText("10000 agents")).toBeVisible();
  await expect(page.locator("tr[data-agent='ag-00000']")).toBeVisible();
  const rendered = Date.now() - t0;
  const inPage = await page.locator("tbody tr[data-agent]").count();
  expect(inPage, "rows in the page").toBeLessThan(100);
  await expect(page.locator("table")).toHaveAttribute("aria-rowcount", "10001");

  const scroller = page.getByTestId("fleet-scroller");
  const t1 = Date.now();
  for (const frac of [0.25, 0.5, 0.75, 1]) {
    await scroller.evaluate((el, f) => {
      el.scrollTop = (el.scrollHeight - el.clientHeight) * f;
    }, frac);
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r(null))));
  }
  await expect(page.locator("tr[data-agent='ag-09999']")).toBeVisible();
  await expect(page.locator("tr[data-agent='ag-09999']")).toHaveAttribute("aria-rowindex", "10001");
  const scrolled = Date.now() - t1;
  expect(await page.locator("tbody tr[data-agent]").count()).toBeLessThan(100);
  return { rendered, scrolled };
}
