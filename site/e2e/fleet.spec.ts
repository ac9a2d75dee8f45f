// The first slice of the dashboard against a real hub: sign-in (a wrong token refused with the hub's
// problem, the right one kept only in sessionStorage), the fleet with the real agent and its details,
// the label-selector filter, the hatch banner, and screenshots light and dark.
import { expect, test, type Page } from "@playwright/test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run this suite through integration-tests (make test-site)`);
  return v;
}

const token = env("PULSE_E2E_TOKEN");
const agentName = env("PULSE_E2E_AGENT");
const shots = process.env["PULSE_E2E_SHOTS"] || "test-results/screenshots";

/** screenshots saves the page as NAME-light.png and NAME-dark.png, checking each theme took. */
async function screenshots(page: Page, name: string) {
  mkdirSync(shots, { recursive: true });
  for (const scheme of ["light", "dark"] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    expect(bg, `body background in ${scheme}`).toBe(scheme === "light" ? "rgb(246, 247, 249)" : "rgb(15, 18, 22)");
    await page.screenshot({ path: join(shots, `${name}-${scheme}.png`), fullPage: true });
  }
}

async function signIn(page: Page, t: string) {
  await page.goto("./");
  await page.getByLabel("API token").fill(t);
  await page.getByRole("button", { name: "Sign in" }).click();
}

test("a wrong token is refused with the hub's problem detail", async ({ page }) => {
  await signIn(page, "pulse_not-a-real-token");
  await expect(page.getByRole("alert")).toContainText("HTTP 401");
  await expect(page.getByRole("heading", { name: "Sign in to Pulse" })).toBeVisible();
  await screenshots(page, "signin");
});

test("sign in and see the fleet, light and dark", async ({ page }) => {
  await signIn(page, token);
  await expect(page.getByRole("heading", { name: "Fleet" })).toBeVisible();

  // The token is in this tab's sessionStorage only: not in localStorage, not in the URL.
  expect(await page.evaluate(() => sessionStorage.getItem("pulse.token"))).toBe(token);
  expect(await page.evaluate(() => JSON.stringify(localStorage))).not.toContain(token);
  expect(page.url()).not.toContain(token);

  const row = page.locator("tbody tr", { hasText: agentName });
  await expect(row).toHaveCount(1);
  await expect(row).toContainText("online");
  await expect(row).toContainText("env=e2e");
  await expect(row).toContainText("role=web");
  await expect(row.locator("time")).toContainText("ago");
  // The agent's config has a broken exec command: the integration is soft-disabled with a reason.
  await expect(row).toContainText("exec:");
  // The agent's hatch was unsealed on the host before the suite ran.
  await expect(page.getByTestId("hatch-banner")).toContainText(`Shell hatch open on ${agentName}`);

  await screenshots(page, "fleet");

  // The toggle overrides the system's preference, and a reload keeps the session (sessionStorage).
  await page.emulateMedia({ colorScheme: "light" });
  await page.getByRole("button", { name: "Switch to dark theme" }).click();
  await expect(page.locator("html")).toHaveAttribute("data-theme", "dark");
  await page.reload();
  await expect(page.locator("tbody tr", { hasText: agentName })).toHaveCount(1);
  await expect(page.getByRole("button", { name: "Switch to light theme" })).toBeVisible();
});

test("the label selector is passed to the hub", async ({ page }) => {
  await signIn(page, token);
  await expect(page.locator("tbody tr", { hasText: agentName })).toHaveCount(1);

  const asked: string[] = [];
  page.on("request", (r) => {
    if (r.url().includes("/v1/agents")) asked.push(new URL(r.url()).searchParams.get("selector") ?? "");
  });
  // A selector that matches no agent is refused by the hub (422): its problem is shown, no rows.
  await page.getByLabel("Label selector").fill("env=nowhere");
  await page.getByRole("button", { name: "Filter" }).click();
  await expect(page.getByRole("alert").filter({ hasText: "HTTP 422" })).toBeVisible();
  await expect(page.locator("tbody tr", { hasText: agentName })).toHaveCount(0);
  await page.getByLabel("Label selector").fill("role=web");
  await page.getByRole("button", { name: "Filter" }).click();
  await expect(page.locator("tbody tr", { hasText: agentName })).toHaveCount(1);
  expect(asked).toEqual(["env=nowhere", "role=web"]);
});

test("config.json, read at run time, names the hub", async ({ page }) => {
  // A bucket deployment puts config.json beside index.html; here the browser is handed one that names
  // a hub where nothing listens, and the sign-in page shows it and says it did not answer.
  const elsewhere = "http://127.0.0.1:9";
  await page.route("**/config.json", (route) => route.fulfill({ json: { hub: elsewhere } }));
  await signIn(page, token);
  await expect(page.getByText(`Hub: ${elsewhere}`)).toBeVisible();
  await expect(page.getByRole("alert")).toContainText(`The hub at ${elsewhere} did not answer`);
});

test("a deep link is the dashboard too", async ({ page }) => {
  const resp = await page.goto("./agents/some/deep/link");
  expect(resp?.status()).toBe(200);
  expect(resp?.headers()["cache-control"]).toBe("no-cache");
  await expect(page.getByRole("heading", { name: "Sign in to Pulse" })).toBeVisible();
});

test("a revoked session goes back to sign-in with the hub's reason", async ({ page }) => {
  await signIn(page, token);
  await expect(page.getByRole("heading", { name: "Fleet" })).toBeVisible();
  // The token in the tab stops being valid (as when it is revoked): the next call answers 401.
  await page.evaluate(() => sessionStorage.setItem("pulse.token", "pulse_revoked"));
  await page.reload();
  await expect(page.getByRole("heading", { name: "Sign in to Pulse" })).toBeVisible();
  await expect(page.getByRole("alert")).toContainText("HTTP 401");
});
