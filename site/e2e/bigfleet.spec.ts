// The fleet page with 10,000 agents (simulated): it renders, keeps only the rows in view in the page,
// and scrolls to the last one (e2e/bigfleet.ts). How fast is printed for a benchmark (make bench
// times it: bench/bigfleet.spec.ts), never bounded here: a slow shared machine must not fail it.
import { test } from "@playwright/test";
import { bigFleet } from "./bigfleet";
import { env } from "./helpers";

const token = env("PULSE_E2E_TOKEN");

test("10,000 agents render and scroll", async ({ page }) => {
  const { rendered, scrolled } = await bigFleet(page, token);
  test.info().annotations.push({ type: "timing", description: `sign-in to first rows ${rendered} ms; four jumps to the end ${scrolled} ms` });
  console.log(`fleet of 10,000: sign-in to first rows ${rendered} ms; four scroll jumps to the last row ${scrolled} ms`);
});
