// Executions against the real hub and agent of TestDashboard: a workflow with a required input and a
// prompt step, applied through the API, is run from the Workflows page with the form its inputs make;
// its execution page follows the steps live to the prompt, the prompt is answered there, and the
// execution finishes with the step after it run; the executions list shows it. Both pages pass axe and
// are screenshotted light and dark.
import { expect, test } from "@playwright/test";
import { env, shoot, signIn } from "./helpers";

const token = env("PULSE_E2E_TOKEN");
const hub = env("PULSE_E2E_HUB");

const source = `description: Check the fleet, ask, then ship
inputs:
  note:
    type: string
    required: true
    description: What is shipped.
steps:
  - name: check
    type: execute
    targets: [all]
    command: host_uptime
  - name: ask
    type: prompt
    message: "Ship \${inputs.note}?"
    options: ["Yes", "No"]
  - name: ship
    type: execute
    targets: [all]
    command: host_uptime
    condition: promptResponse == "Yes"
`;

test("a workflow run with an input reaches its prompt, is answered, and finishes", async ({ page, request }) => {
  const put = await request.put(new URL("v1/workflows/ship-note", hub).toString(), {
    headers: { Authorization: `Bearer ${token}` },
    data: { source },
  });
  expect(put.status(), await put.text()).toBe(200);

  await signIn(page, token);
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Workflows" }).click();
  await page.getByRole("button", { name: "Run ship-note" }).click();
  await expect(page.getByRole("heading", { name: "Run ship-note" })).toBeFocused();
  const note = page.getByLabel(/^note \(required\)/);
  await expect(note).toHaveAttribute("aria-describedby", /run-in-note-help/);
  // A required input left empty is named before anything is sent.
  await page.getByRole("button", { name: "Start execution" }).click();
  await expect(page.locator('[data-input="note"]')).toContainText("Required.");
  await expect(note).toHaveAttribute("aria-invalid", "true");

  await note.fill("release-42");
  const started = page.waitForRequest((r) => r.method() === "POST" && r.url().endsWith("/v1/executions"));
  await page.getByRole("button", { name: "Start execution" }).click();
  expect((await started).postDataJSON()).toEqual({ workflow: "ship-note", inputs: { note: "release-42" } });
  await expect(page).toHaveURL(/#\/executions\/[^/]+$/);
  const id = decodeURIComponent(page.url().split("#/executions/")[1]!);
  expect(page.url()).not.toContain(token);
  await expect(page.getByRole("heading", { level: 1, name: "ship-note" })).toBeVisible();
  await expect(page.getByTestId("execution-inputs")).toContainText('"release-42"');

  // The timeline follows the execution live: the first step's command ran and links to its page, and
  // the prompt waits with the input in its question.
  const check = page.locator('[data-step="check"]');
  await expect(check).toHaveAttribute("data-status", "succeeded", { timeout: 20_000 });
  const ask = page.locator('[data-step="ask"]');
  await expect(ask).toHaveAttribute("data-status", "awaiting_response", { timeout: 10_000 });
  await expect(page.getByTestId("stream-state")).toHaveText("live");
  const prompt = ask.getByTestId("prompt");
  await expect(prompt.getByRole("heading", { name: "Ship release-42?" })).toBeVisible();
  await expect(prompt.getByRole("group", { name: "Ship release-42?" }).getByRole("button")).toHaveText(["Yes", "No"]);
  const commandLink = check.getByTestId("step-command").first();
  const commandId = (await commandLink.textContent())!.trim();
  await expect(commandLink).toHaveAttribute("href", `#/commands/${encodeURIComponent(commandId)}`);
  await expect(page.getByRole("button", { name: "Cancel execution" })).toBeVisible();
  await shoot(page, "execution");

  const answered = page.waitForRequest((r) => r.method() === "POST" && r.url().endsWith(`/v1/executions/${encodeURIComponent(id)}/respond`));
  await prompt.getByRole("button", { name: "Yes" }).click();
  expect((await answered).postDataJSON()).toEqual({ step: "ask", answer: "Yes" });
  await expect(page.getByTestId("responded")).toHaveText("You answered “Yes” to ask.");
  await expect(ask).toHaveAttribute("data-status", "succeeded");
  await expect(ask).toContainText("Answered Yes");
  // The step the answer let through runs, and the execution ends: the cancel button goes.
  await expect(page.locator('[data-step="ship"]')).toHaveAttribute("data-status", "succeeded", { timeout: 20_000 });
  await expect(page.getByTestId("execution-status").locator("[data-state]")).toHaveAttribute("data-state", "succeeded", { timeout: 10_000 });
  await expect(page.getByRole("button", { name: "Cancel execution" })).toHaveCount(0);
  await expect(page.getByTestId("events")).toContainText("ask");

  // The step's command opens its own page.
  await commandLink.click();
  await expect(page).toHaveURL(new RegExp(`#/commands/${commandId}$`));
  await expect(page.getByRole("heading", { level: 1, name: "host_uptime" })).toBeVisible();

  // The executions list, from the navigation, has it finished and links back.
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Executions" }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Executions" })).toBeVisible();
  await expect(page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Executions" })).toHaveAttribute("aria-current", "page");
  const row = page.locator(`tr[data-execution="${id}"]`);
  await expect(row.locator("[data-state]")).toHaveAttribute("data-state", "succeeded");
  await page.getByLabel("Status").selectOption("running");
  await page.getByRole("button", { name: "Filter" }).click();
  await expect(row).toHaveCount(0);
  await page.getByLabel("Status").selectOption("succeeded");
  await page.getByLabel("Workflow").fill("ship-note");
  await page.getByRole("button", { name: "Filter" }).click();
  await expect(row).toBeVisible();
  await shoot(page, "executions");
  await row.getByRole("link", { name: "ship-note" }).click();
  await expect(page).toHaveURL(new RegExp(`#/executions/${id}$`));
  await expect(page.getByTestId("stream-state")).toHaveText("finished");
});

test("an execution can be cancelled while its prompt waits", async ({ page, request }) => {
  const put = await request.put(new URL("v1/workflows/ask-only", hub).toString(), {
    headers: { Authorization: `Bearer ${token}` },
    data: { source: 'steps:\n  - {name: ask, type: prompt, message: "Go on?"}\n' },
  });
  expect(put.status(), await put.text()).toBe(200);
  await signIn(page, token);
  await page.goto("./#/workflows");
  await page.getByRole("button", { name: "Run ask-only" }).click();
  await expect(page.getByText("This workflow takes no inputs.")).toBeVisible();
  await page.getByRole("button", { name: "Start execution" }).click();
  await expect(page).toHaveURL(/#\/executions\/[^/]+$/);
  // A prompt without options takes a typed answer.
  const ask = page.locator('[data-step="ask"]');
  await expect(ask).toHaveAttribute("data-status", "awaiting_response", { timeout: 10_000 });
  await expect(ask.getByLabel("Answer")).toBeVisible();
  await page.getByRole("button", { name: "Cancel execution" }).click();
  await expect(page.getByTestId("execution-status").locator("[data-state]")).toHaveAttribute("data-state", "cancelled", { timeout: 10_000 });
  await expect(ask.getByTestId("prompt")).toHaveCount(0);
});
