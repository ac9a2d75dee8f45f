// The dashboard's first load against the real hub of BenchmarkDashboard: the JavaScript it ships
// before any lazy chunk (gzip, level 9, of each script the page loads up to its first agent row), and
// the time from navigation to that row, in a fresh browser context each time (nothing cached), the
// median of five. Figures are printed (bench/report.ts), never bounded.
import { expect, test } from "@playwright/test";
import { gzipSync } from "node:zlib";
import { env } from "../e2e/helpers";
import { median, report } from "./report";

const token = env("PULSE_E2E_TOKEN");

/** signedIn makes the page start signed in, as a reload of a signed-in tab does (sessionStorage). */
const signedIn = (t: string) => {
  sessionStorage.setItem("pulse.token", t);
  // When the first agent row appears, in ms since navigation started.
  new MutationObserver((_, obs) => {
    if (document.querySelector("tbody tr[data-agent]")) {
      (window as unknown as { firstRow: number }).firstRow = performance.now();
      obs.disconnect();
    }
  }).observe(document, { childList: true, subtree: true });
};

test("first load: JavaScript shipped and time to the first agent row", async ({ browser }) => {
  const times: number[] = [];
  let js: { name: string; raw: number; gzip: number }[] = [];
  for (let i = 0; i < 6; i++) {
    const context = await browser.newContext();
    await context.addInitScript(signedIn, token);
    const page = await context.newPage();
    const scripts: Promise<{ name: string; raw: number; gzip: number }>[] = [];
    page.on("response", (r) => {
      if (r.request().resourceType() !== "script") return;
      scripts.push(r.body().then((b) => ({ name: new URL(r.url()).pathname, raw: b.length, gzip: gzipSync(b, { level: 9 }).length })));
    });
    await page.goto("./#/fleet");
    await expect(page.locator("tbody tr[data-agent]").first()).toBeVisible();
    const t = await page.evaluate(() => (window as unknown as { firstRow?: number }).firstRow);
    expect(t, "the first row was seen").toBeGreaterThan(0);
    js = await Promise.all(scripts);
    // The first context warms the hub and the machine; the five after it count.
    if (i > 0) times.push(t!);
    await context.close();
  }
  expect(js.length, "scripts loaded").toBeGreaterThan(0);
  expect(js.filter((s) => s.name.includes("uplot")), "no lazy chunk on the first load").toEqual([]);
  const gzip = js.reduce((n, s) => n + s.gzip, 0);
  const raw = js.reduce((n, s) => n + s.raw, 0);
  console.log(`first load: ${js.length} script(s), ${raw} bytes, ${gzip} gzip (${js.map((s) => `${s.name} ${s.gzip}`).join(", ")}); to the first agent row ${times.map((t) => t.toFixed(0)).join(", ")} ms`);
  report("first-js-gzip-KiB", Math.round((gzip / 1024) * 100) / 100);
  report("first-js-files", js.length);
  report("first-load-ms", Math.round(median(times)));
});
