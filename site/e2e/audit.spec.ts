// The audit page against the real hub and bucket of TestDashboard: the records, filtered by the hub
// (principal, time) and on the page (action or target), and Verify on the chain as MinIO holds it:
// whole; then a bucket writer (the test's tamperer, PULSE_E2E_TAMPER, holding MinIO's credentials)
// edits a sealed record, and Verify names that record; the record put back, whole again. Screenshots
// light and dark of both reports, with axe.
import { expect, test } from "@playwright/test";
import { env, shoot, signIn } from "./helpers";

const token = env("PULSE_E2E_TOKEN");
const tamperer = env("PULSE_E2E_TAMPER");

test("the audit chain verifies whole, names the record a bucket writer changed, and is whole once it is put back", async ({ page, request }) => {
  await signIn(page, token);
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Audit" }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Audit" })).toBeVisible();
  const rows = page.getByTestId("audit-records").locator("tr[data-record]");
  await expect(rows.first()).toBeVisible();

  // The text filter looks at actions and targets, on the page.
  await page.getByLabel("Action or target contains").fill("token");
  await expect(rows.first()).toBeVisible();
  for (const a of await rows.evaluateAll((trs) => trs.map((tr) => tr.textContent ?? ""))) expect(a.toLowerCase()).toContain("token");
  await page.getByLabel("Action or target contains").fill("");
  // The principal and the time go to the hub.
  const asked: URLSearchParams[] = [];
  page.on("request", (r) => {
    if (r.url().includes("/v1/audit?")) asked.push(new URL(r.url()).searchParams);
  });
  const who = (await rows.first().locator("td").nth(1).locator("span").first().textContent())!.trim();
  await page.getByLabel("Principal").fill(who);
  await page.getByRole("button", { name: "Filter" }).click();
  await expect.poll(() => asked.at(-1)?.get("principal")).toBe(who);
  await expect.poll(async () => (await rows.evaluateAll((trs) => trs.map((tr) => tr.children[1]?.textContent ?? ""))).every((t) => t.includes(who))).toBe(true);
  await page.getByLabel("Since").fill("2999-01-01T00:00");
  await page.getByRole("button", { name: "Filter" }).click();
  await expect(page.getByText("No records match.")).toBeVisible();
  expect(asked.at(-1)?.get("since")).toBe(new Date("2999-01-01T00:00").toISOString());
  await page.getByLabel("Since").fill("");
  await page.getByLabel("Principal").fill("");
  await page.getByRole("button", { name: "Filter" }).click();
  await expect(rows.first()).toBeVisible();

  const report = page.getByTestId("verify-report");
  await page.getByRole("button", { name: "Verify the chain" }).click();
  await expect(report).toHaveAttribute("data-ok", "true");
  await expect(report).toContainText("The audit chain is whole");
  await expect(report).toContainText(/\d+ seals?, \d+ sealed records? checked/);
  await shoot(page, "audit");

  const t = await request.post(`${tamperer}/tamper`);
  expect(t.status(), await t.text()).toBe(200);
  const { key } = (await t.json()) as { key: string };
  try {
    await page.getByRole("button", { name: "Verify the chain" }).click();
    await expect(report).toHaveAttribute("data-ok", "false");
    await expect(report).toHaveAttribute("role", "alert");
    await expect(report.getByTestId("broken-record")).toHaveText(key);
    await expect(report.getByTestId("verify-problem")).toContainText(`record ${key} was changed after it was sealed in seal`);
    await shoot(page, "audit-broken");
  } finally {
    const r = await request.post(`${tamperer}/restore`);
    expect(r.status(), await r.text()).toBe(204);
  }
  await page.getByRole("button", { name: "Verify the chain" }).click();
  await expect(report).toHaveAttribute("data-ok", "true");
});
