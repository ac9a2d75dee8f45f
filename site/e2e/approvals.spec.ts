// A command the policy holds for approval (shell_run: two admins other than the requester), requested
// by ada, seen in bob's inbox and approved by him and then by another admin in a second browser
// context, its output arriving live in both; and a command denied from its page.
import { expect, test, type Browser, type Page } from "@playwright/test";
import { env, shoot, signIn } from "./helpers";

const token = env("PULSE_E2E_TOKEN");
const ada = env("PULSE_E2E_ADA");
const bob = env("PULSE_E2E_BOB");
const agentName = env("PULSE_E2E_AGENT");
const hub = env("PULSE_E2E_HUB");

/** shellRun is ada's request: the approvals must come from credentials she did not make. */
async function shellRun(page: Page, script: string): Promise<string> {
  const resp = await page.request.post(`${hub}v1/commands`, {
    headers: { Authorization: `Bearer ${ada}` },
    data: { command: "shell_run", targets: [agentName], params: { script } },
  });
  expect(resp.status(), await resp.text()).toBe(202);
  const st = (await resp.json()) as { id: string; awaitingApproval: boolean };
  expect(st.awaitingApproval).toBe(true);
  return st.id;
}

async function person(browser: Browser, t: string): Promise<Page> {
  const ctx = await browser.newContext({ baseURL: hub, viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
  await signIn(page, t);
  return page;
}

test("a command needing approval is approved by a second admin in a second browser context", async ({ browser }) => {
  // Bob's and the first admin's credentials were not made by ada (bob's was made by the first admin).
  const a = await person(browser, bob);
  const id = await shellRun(a, "echo approved-by-two");

  await a.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Approvals" }).click();
  const row = a.locator(`tr[data-command="${id}"]`);
  await expect(row).toBeVisible();
  await shoot(a, "approvals");
  await row.getByRole("link", { name: "shell_run" }).click();
  const panel = a.getByTestId("approval");
  await expect(panel).toContainText("2 admins other than the requester must approve");
  await shoot(a, "approval");
  await a.getByLabel("Comment (optional)").fill("looks fine");
  await a.getByRole("button", { name: "Approve" }).click();
  await expect(a.getByTestId("decided")).toHaveText("You approved it.");
  await expect(panel).toContainText("1 of 2 approvals");

  const b = await person(browser, token);
  await b.goto(`./#/commands/${id}`);
  await expect(b.getByTestId("approval")).toContainText("1 of 2 approvals");
  await b.getByRole("button", { name: "Approve" }).click();
  // Released: it runs on the agent (the hatch is open) and both pages see its output arrive.
  for (const p of [b, a]) {
    const card = p.locator("li[data-agent]");
    await expect(card.getByTestId("output")).toHaveText("approved-by-two\n", { timeout: 20_000 });
    await expect(card.locator("[data-state]")).toHaveAttribute("data-state", "succeeded");
    await expect(p.getByTestId("approval")).toHaveCount(0);
  }
  await a.context().close();
  await b.context().close();
});

test("a command is denied from its page", async ({ browser }) => {
  const a = await person(browser, bob);
  const id = await shellRun(a, "echo never");
  await a.goto(`./#/commands/${id}`);
  await a.getByRole("button", { name: "Deny" }).click();
  await expect(a.getByTestId("decided")).toHaveText("You denied it.");
  await expect(a.locator("h1 + [data-state]")).toHaveAttribute("data-state", "denied");
  await expect(a.getByTestId("output")).toHaveCount(0);
  await a.context().close();
});
