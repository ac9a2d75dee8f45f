// Plans against the real hub and agent of TestDashboard (whose files integration may write under
// PULSE_E2E_FILES): a refused source shown at its line, a plan applied from the Plans page and
// followed live to converged on its page, a new version with a staged rollout that bakes for an hour
// (rolling, its wave converged), paused, resumed, a promote the hub refuses (every wave is released),
// aborted, and rolled back to the first version's content, which the agent writes to disk; then, with
// the agent labelled env=prod for a while, ada's apply that the policy holds for a second admin's
// approval, shown as such, refused to its own proposer, approved by bob in a second browser context and
// seen live on ada's page. Both pages pass axe and are screenshotted light and dark.
import { expect, test, type Page } from "@playwright/test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { env, shoot, signIn } from "./helpers";

const token = env("PULSE_E2E_TOKEN");
const ada = env("PULSE_E2E_ADA");
const bob = env("PULSE_E2E_BOB");
const hub = env("PULSE_E2E_HUB");
const agentId = env("PULSE_E2E_AGENT_ID");
const files = env("PULSE_E2E_FILES");
const motd = join(files, "motd");

function source(content: string, rollout = ""): string {
  return `targets: [role=web]
units:
  - name: motd
    type: file
    spec: {path: ${motd}, content: "${content}\\n", mode: "0644"}
${rollout}`;
}

async function converged(page: Page, version: number) {
  const row = page.getByTestId("plan-agents").locator(`tr[data-agent="${agentId}"]`);
  await expect(row).toHaveAttribute("data-version", String(version), { timeout: 20_000 });
  await expect(row.locator('[data-unit="motd"]')).toHaveAttribute("data-state", "converged", { timeout: 20_000 });
}

function readMotd(): string {
  try {
    return readFileSync(motd, "utf8");
  } catch {
    return "";
  }
}

test("a plan applied from the page is followed live through a staged rollout and rolled back", async ({ page }) => {
  await signIn(page, token);
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Plans" }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Plans" })).toBeVisible();

  // A source the hub refuses is shown with the problem at the line and column it named.
  await page.getByLabel("Name").fill("motd");
  await page.getByLabel("Source (YAML)").fill(source("one").replace("    type: file\n", "    type: file\n    colour: blue\n"));
  const refused = page.waitForResponse((r) => r.request().method() === "PUT" && r.url().endsWith("/v1/plans/motd"));
  await page.getByRole("button", { name: "Apply" }).click();
  const problem = (await (await refused).json()) as { errors: { location: string; message: string }[] };
  const line = Number(/^body\.source:(\d+):/.exec(problem.errors[0]!.location)?.[1]);
  expect(line).toBe(5);
  const bad = page.locator(`[data-testid="plan-source-view"] li[data-line="${line}"]`);
  await expect(bad).toHaveAttribute("data-bad", "true");
  await expect(bad.getByTestId("plan-problem")).toContainText(problem.errors[0]!.message);
  await expect(page.getByLabel("Source (YAML)")).toHaveAttribute("aria-invalid", "true");

  // Version 1, all at once.
  await page.getByLabel("Source (YAML)").fill(source("one"));
  await page.getByRole("button", { name: "Apply" }).click();
  await expect(page.getByTestId("plan-applied")).toContainText("Applied motd as version 1: sent to 1 agent.");
  await expect(page.locator('tr[data-plan="motd"]')).toContainText("role=web");
  await shoot(page, "plans");
  await page.getByTestId("plan-applied").getByRole("link", { name: "Open motd" }).click();
  await expect(page).toHaveURL(/#\/plans\/motd$/);
  await expect(page.getByRole("heading", { level: 1, name: "motd" })).toBeVisible();
  await expect(page.getByTestId("stream-state")).toHaveText("live");
  await converged(page, 1);
  await expect(page.getByTestId("plan-converged")).toHaveText("1 of 1 agent converged");
  await expect(page.getByTestId("rollout")).toContainText("no rollout");
  await expect.poll(readMotd, { timeout: 10_000 }).toBe("one\n");

  // Version 2, staged: one wave that bakes for an hour, so it stays rolling. The page follows the
  // plan's stream: the new version, the wave released and converged, without a reload.
  const form = page.getByRole("form", { name: "Apply a plan" });
  await form.getByLabel("Source (YAML)").fill(source("two", "rollout:\n  first: 1\n  bake: 1h\n"));
  await form.getByRole("button", { name: "Apply" }).click();
  await expect(form.getByTestId("plan-applied")).toContainText("Applied motd as version 2: rolling out in 1 wave, the first sent to 1 agent.");
  await expect(page.getByTestId("plan-version")).toHaveText("version 2");
  const state = page.getByTestId("rollout-state").locator("[data-state]");
  await expect(state).toHaveAttribute("data-state", "rolling");
  await converged(page, 2);
  await expect(page.locator('[data-testid="waves"] tr[data-wave="1"]').getByTestId("wave-converged")).toHaveText("1", { timeout: 10_000 });
  await expect.poll(readMotd, { timeout: 10_000 }).toBe("two\n");
  await shoot(page, "plan");

  const rollout = page.getByTestId("rollout");
  await rollout.getByLabel("Reason (for the record)").fill("e2e: hold on");
  await rollout.getByRole("button", { name: "Pause" }).click();
  await expect(state).toHaveAttribute("data-state", "paused");
  await expect(page.getByTestId("rollout-events").locator('[data-kind="paused"]')).toContainText("e2e: hold on");
  await expect(rollout.getByRole("button", { name: "Pause" })).toHaveCount(0);
  await rollout.getByRole("button", { name: "Resume" }).click();
  await expect(state).toHaveAttribute("data-state", "rolling");
  // Every wave is released already: the hub refuses, and says why.
  await rollout.getByRole("button", { name: "Promote next wave" }).click();
  await expect(page.getByRole("alert").filter({ hasText: "every wave is released" })).toContainText("HTTP 409");
  await rollout.getByRole("button", { name: "Abort" }).click();
  await expect(state).toHaveAttribute("data-state", "aborted");
  await expect(rollout.getByRole("button", { name: /^(Pause|Resume|Promote next wave|Abort)$/ })).toHaveCount(0);

  // Rollback: a new version with version 1's content, to every target at once.
  await rollout.getByRole("button", { name: "Roll back" }).click();
  await expect(page.getByTestId("plan-said")).toHaveText("Rolled back: version 3 has the content of version 1.");
  await expect(page.getByTestId("plan-version")).toHaveText("version 3");
  await expect(rollout).toContainText("no rollout");
  await converged(page, 3);
  await expect.poll(readMotd, { timeout: 10_000 }).toBe("one\n");
});

test("an apply on env=prod waits for a second admin, who approves it from the page", async ({ page, browser, request }) => {
  const auth = { Authorization: `Bearer ${token}` };
  const labels = async (l: Record<string, string>) => {
    const r = await request.put(new URL(`v1/agents/${encodeURIComponent(agentId)}/labels`, hub).toString(), { headers: auth, data: { labels: l } });
    expect(r.status(), await r.text()).toBe(200);
    await expect
      .poll(async () => {
        const q = new URLSearchParams({ selector: Object.entries(l).map(([k, v]) => `${k}=${v}`).join(",") });
        const a = await request.get(new URL(`v1/agents?${q}`, hub).toString(), { headers: auth });
        return ((await a.json()) as { agents: unknown[] | null }).agents?.length ?? 0;
      })
      .toBe(1);
  };
  await labels({ env: "prod", role: "web" });
  try {
    // Ada proposes (the bootstrap admin made both her token and Bob's, so it could approve neither).
    await signIn(page, ada);
    await page.goto("./#/plans/motd");
    await converged(page, 3);
    const form = page.getByRole("form", { name: "Apply a plan" });
    await form.getByLabel("Source (YAML)").fill(source("prod"));
    await form.getByRole("button", { name: "Apply" }).click();
    await expect(form.getByTestId("plan-applied")).toContainText("Not applied yet: a plan on env=prod agents: 1 admin other than the requester must approve");
    const proposals = page.getByTestId("proposals");
    await expect(proposals).toContainText("Awaiting approval");
    await expect(proposals).toContainText("prod_plan_one_approval");
    await expect(proposals).toContainText("0 of 1 approval from admin");
    await expect(page.getByTestId("plan-version")).toHaveText("version 3");
    // Its proposer cannot approve it.
    await proposals.getByRole("button", { name: "Approve apply" }).click();
    await expect(page.getByRole("alert")).toBeVisible();
    await expect(page.getByTestId("plan-version")).toHaveText("version 3");
    await shoot(page, "plan-proposal");

    // Bob, another admin, in a browser context of his own.
    const other = await browser.newContext();
    const second = await other.newPage();
    await signIn(second, bob);
    await second.goto("./#/plans/motd");
    const hers = second.getByTestId("proposals");
    await hers.getByLabel("Comment (for the record)").fill("e2e: looks right");
    await hers.getByRole("button", { name: "Approve apply" }).click();
    await expect(second.getByTestId("plan-said")).toContainText(/^Approved apply \(pp-[^)]+\): done/);
    await expect(second.getByTestId("plan-version")).toHaveText("version 4");
    await other.close();

    // The first page sees the new version arrive on its stream, and the proposal done.
    await expect(page.getByTestId("plan-version")).toHaveText("version 4", { timeout: 10_000 });
    await expect(page.getByTestId("proposals")).toHaveCount(0);
    await expect(page.getByTestId("past-proposals")).toContainText(/apply by \S*ada\S*, approved by \S*bob/);
    await converged(page, 4);
    await expect.poll(readMotd, { timeout: 10_000 }).toBe("prod\n");
  } finally {
    await labels({ env: "e2e", role: "web" });
  }
});
