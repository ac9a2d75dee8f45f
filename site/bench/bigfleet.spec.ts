// The 10,000-agent fleet (e2e/bigfleet.ts, the same run as its test) timed for `make bench`: sign-in
// to the first rows, and four scroll jumps to the last row, each the median of three fresh pages.
import { test } from "@playwright/test";
import { bigFleet } from "../e2e/bigfleet";
import { env } from "../e2e/helpers";
import { median, report } from "./report";

const token = env("PULSE_E2E_TOKEN");

test("10,000 agents: render and scroll", async ({ browser }) => {
  const rendered: number[] = [];
  const scrolled: number[] = [];
  for (let i = 0; i < 3; i++) {
    const context = await browser.newContext();
    const t = await bigFleet(await context.newPage(), token);
    rendered.push(t.rendered);
    scrolled.push(t.scrolled);
    await context.close();
  }
  console.log(`fleet of 10,000: sign-in to first rows ${rendered.join(", ")} ms; four scroll jumps to the last row ${scrolled.join(", ")} ms`);
  report("fleet10k-render-ms", median(rendered));
  report("fleet10k-scroll-ms", median(scrolled));
});
