// The same build served as plain static files from another origin (a Go http.FileServer in
// TestDashboard, like a bucket or a CDN), naming the hub in its config.json: the hub allows that origin
// (pulse serve --cors-origin), so the page signs in, lists the fleet and runs a command with its
// output and event stream, every call going to the hub across origins.
import { expect, test } from "@playwright/test";
import { env } from "./helpers";

const token = env("PULSE_E2E_TOKEN");
const agentName = env("PULSE_E2E_AGENT");
const hub = env("PULSE_E2E_HUB").replace(/\/+$/, "");
const site = env("PULSE_E2E_STATIC");

test("the build served from another origin works against the hub (CORS)", async ({ page }) => {
  expect(new URL(site).origin).not.toBe(new URL(hub).origin);
  const api: string[] = [];
  page.on("request", (r) => {
    if (r.url().includes("/v1/")) api.push(new URL(r.url()).origin);
  });
  const failed: string[] = [];
  page.on("requestfailed", (r) => failed.push(`${r.url()}: ${r.failure()?.errorText}`));

  await page.goto(site);
  await expect(page.getByText(`Hub: ${hub}`)).toBeVisible();
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.locator("tbody tr", { hasText: agentName })).toHaveCount(1);

  await page.goto(`${site}#/run?targets=${encodeURIComponent(agentName)}`);
  await expect(page.getByTestId("run-preview")).toContainText(`Matches 1 agent: ${agentName}`);
  await page.getByLabel("Command").selectOption("host_uptime");
  await page.getByRole("button", { name: "Run" }).click();
  await expect(page).toHaveURL(/#\/commands\/[^/]+$/);
  const card = page.locator("li[data-agent]");
  await expect(card.getByTestId("output")).toContainText(/up \d+/, { timeout: 20_000 });
  await expect(card.getByTestId("output")).not.toContainText("did not say where");
  await expect(card.locator("[data-state]")).toHaveAttribute("data-state", "succeeded");
  await expect(page.getByTestId("stream-state")).toHaveText("finished");

  expect(api.length).toBeGreaterThan(0);
  expect(new Set(api)).toEqual(new Set([new URL(hub).origin]));
  expect(failed).toEqual([]);
});
