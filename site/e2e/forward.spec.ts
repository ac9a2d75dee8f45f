// Behind a forward-auth proxy (config.json says "auth": "forward"; the hub trusts the proxy's address)
// the dashboard signs in with no token at all: the proxy's Remote-User and Remote-Groups headers,
// added here to every API request as a proxy would, name the person.
import { expect, test } from "@playwright/test";
import { env } from "./helpers";

const agentName = env("PULSE_E2E_AGENT");

test("behind a forward-auth proxy there is no token to type", async ({ page }) => {
  await page.route("**/config.json", (route) => route.fulfill({ json: { auth: "forward" } }));
  await page.route(
    (u) => u.pathname.startsWith("/v1/"),
    (route) => route.continue({ headers: { ...route.request().headers(), "remote-user": "fiona", "remote-groups": "admin" } }),
  );
  await page.goto("./");
  await expect(page.getByRole("heading", { name: "Fleet" })).toBeVisible();
  await expect(page.locator("tbody tr", { hasText: agentName })).toHaveCount(1);
  await expect(page.getByText("Signed in through your proxy")).toBeVisible();
  await expect(page.getByRole("button", { name: "Sign out" })).toHaveCount(0);
  expect(await page.evaluate(() => sessionStorage.getItem("pulse.token"))).toBeNull();
});

test("without the proxy's headers the same page asks for a token", async ({ page }) => {
  await page.route("**/config.json", (route) => route.fulfill({ json: { auth: "forward" } }));
  const probe = page.waitForResponse((r) => new URL(r.url()).pathname === "/v1/agents");
  await page.goto("./");
  expect((await probe).status()).toBe(401);
  await expect(page.getByRole("heading", { name: "Sign in to Pulse" })).toBeVisible();
  // The probe's refusal is expected: it is not shown as an error.
  await expect(page.getByRole("alert")).toHaveCount(0);
});
