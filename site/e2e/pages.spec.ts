// The dashboard's pages against the real hub and agent of TestDashboard: the navigation and the
// command palette, the agent page with its resources, a command run from the form with its output
// arriving live, cancel, the history, alerts, a viewer's denial naming the policy rule, and phone
// width; every page screenshotted light and dark and checked with axe.
import { expect, test } from "@playwright/test";
import { axe, env, shoot, signIn } from "./helpers";

const token = env("PULSE_E2E_TOKEN");
const viewer = env("PULSE_E2E_VIEWER");
const agentName = env("PULSE_E2E_AGENT");
const hub = env("PULSE_E2E_HUB");

test("the fleet passes axe; a fleet row leads to the agent with its resources", async ({ page }) => {
  await signIn(page, token);
  await axe(page, "fleet");
  await expect(page.getByRole("link", { name: "Run a command on all" })).toHaveAttribute("href", "#/run?targets=all");
  await page.getByRole("link", { name: agentName }).click();
  await expect(page).toHaveURL(/#\/agents\//);
  await expect(page.getByRole("heading", { level: 1, name: agentName })).toBeVisible();
  // Facts, integrations with the reason exec is disabled, and the inventory's root mount.
  await expect(page.getByText("Version", { exact: true })).toBeVisible();
  await expect(page.getByTestId("integrations")).toContainText("exec");
  await expect(page.getByTestId("integrations")).toContainText("relative/tool");
  const resources = page.getByTestId("resources");
  await expect(resources.locator("tr", { hasText: "mount" }).first()).toBeVisible();
  await expect(page.getByRole("heading", { name: /^Metrics, last/ })).toBeVisible();
  await expect(page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Fleet" })).toHaveAttribute("aria-current", "page");
  await shoot(page, "agent");
});

test("the command palette jumps to pages and agents by name", async ({ page }) => {
  await signIn(page, token);
  await page.keyboard.press("Control+k");
  const box = page.getByRole("combobox", { name: "Go to a page or an agent" });
  await expect(box).toBeFocused();
  await shoot(page, "palette");
  await box.fill(agentName.slice(0, 4));
  await expect(page.getByRole("option", { name: new RegExp(agentName) })).toBeVisible();
  await box.fill(agentName);
  await page.keyboard.press("Enter");
  await expect(page.getByRole("heading", { level: 1, name: agentName })).toBeVisible();
  await page.keyboard.press("Control+k");
  await box.fill("aler");
  await page.keyboard.press("Enter");
  await expect(page.getByRole("heading", { level: 1, name: "Alerts" })).toBeVisible();
  // Escape closes it and leaves the page as it was.
  await page.keyboard.press("Control+k");
  await page.keyboard.press("Escape");
  await expect(box).toBeHidden();
});

test("run a command from the form and watch its output arrive live", async ({ page }) => {
  const posts: string[] = [];
  const streams: Record<string, string>[] = [];
  page.on("request", (r) => {
    if (r.method() === "POST" && r.url().endsWith("/v1/commands")) posts.push(r.postData() ?? "");
    if (r.url().includes("/events")) streams.push(r.headers());
  });
  await signIn(page, token);
  await page.goto(`./#/run?targets=${encodeURIComponent(agentName)}`);
  await expect(page.getByTestId("run-preview")).toContainText(`Matches 1 agent: ${agentName}`);
  // The agent's exec integration is disabled (a broken command): its commands are not offered.
  await expect(page.getByLabel("Command").locator("option", { hasText: "count_to" })).toHaveCount(0);
  // A required parameter left empty is refused before anything is sent (patterns: units.spec.ts).
  await page.getByLabel("Command").selectOption("shell_run");
  await page.getByRole("button", { name: "Run" }).click();
  await expect(page.getByText("Required.")).toBeVisible();
  await expect(page.getByRole("alert").filter({ hasText: "Fix the parameters" })).toBeVisible();
  expect(posts).toEqual([]);

  await page.getByLabel("Command").selectOption("host_uptime");
  await page.getByLabel("Timeout (seconds)").fill("60");
  await shoot(page, "run");
  await page.getByRole("button", { name: "Run" }).click();

  await expect(page).toHaveURL(/#\/commands\/[^/]+$/);
  expect(JSON.parse(posts[0]!)).toMatchObject({ command: "host_uptime", targets: [agentName], timeoutSeconds: 60 });
  const card = page.locator("li[data-agent]");
  await expect(card.getByTestId("output")).toContainText(/up \d+/, { timeout: 20_000 });
  await expect(card.locator("[data-state]")).toHaveAttribute("data-state", "succeeded");
  await expect(card).toContainText("exit 0");
  await expect(page.getByTestId("stream-state")).toHaveText("finished");
  // The stream was read with fetch and the token in the Authorization header, never in the URL.
  expect(streams.length).toBeGreaterThan(0);
  expect(streams[0]!["authorization"]).toBe(`Bearer ${token}`);
  expect(streams[0]!["accept"]).toBe("text/event-stream");
  expect(page.url()).not.toContain(token);
  await shoot(page, "command");

  // The history lists it, and filters by state and name through the hub.
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Commands" }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Commands" })).toBeVisible();
  await page.getByLabel("State").selectOption("done");
  await page.getByLabel("Command name").fill("host_uptime");
  await page.getByRole("button", { name: "Filter" }).click();
  await expect(page.locator("tr[data-command]", { hasText: "host_uptime" }).first()).toBeVisible();
  // Issued by whom, and since when (the person's local time, sent as RFC 3339).
  const asked: URLSearchParams[] = [];
  page.on("request", (r) => {
    if (r.url().includes("/v1/commands?")) asked.push(new URL(r.url()).searchParams);
  });
  await page.getByLabel("Issued by").fill("nobody-at-all");
  await page.getByRole("button", { name: "Filter" }).click();
  await expect(page.getByText("No commands match.")).toBeVisible();
  expect(asked.at(-1)?.get("issuer")).toBe("nobody-at-all");
  await page.getByLabel("Issued by").fill("");
  await page.getByLabel("Since").fill("2000-01-01T00:00");
  await page.getByRole("button", { name: "Filter" }).click();
  await expect(page.locator("tr[data-command]", { hasText: "host_uptime" }).first()).toBeVisible();
  expect(asked.at(-1)?.get("since")).toBe(new Date("2000-01-01T00:00").toISOString());
  await page.getByLabel("Since").fill("");
  await page.getByLabel("Command name").fill("no_such_command");
  await page.getByRole("button", { name: "Filter" }).click();
  await expect(page.getByText("No commands match.")).toBeVisible();
  await page.getByLabel("State").selectOption("");
  await page.getByLabel("Command name").fill("");
  await page.getByRole("button", { name: "Filter" }).click();
  await expect(page.locator("tr[data-command]").first()).toBeVisible();
  await shoot(page, "commands");
});

test("a command is cancelled from its page", async ({ page }) => {
  await signIn(page, token);
  // A shell script (the hatch is open; the policy may hold it for approval): either way it is not
  // finished when the page opens, and Cancel ends it.
  const resp = await page.request.post(`${hub}v1/commands`, {
    headers: { Authorization: `Bearer ${token}` },
    data: { command: "shell_run", targets: [agentName], params: { script: "sleep 120" } },
  });
  expect(resp.status(), await resp.text()).toBe(202);
  const { id } = (await resp.json()) as { id: string };
  await page.goto(`./#/commands/${id}`);
  const card = page.locator("li[data-agent]");
  await expect(card.locator("[data-state]")).toHaveAttribute("data-state", /awaiting_approval|pending|queued|delivered|running/);
  await expect(page.getByTestId("stream-state")).toHaveText("live");
  await page.getByRole("button", { name: "Cancel" }).click();
  await expect(card.locator("[data-state]")).toHaveAttribute("data-state", "cancelled", { timeout: 15_000 });
  await expect(page.getByRole("button", { name: "Cancel" })).toHaveCount(0);
});

test("a viewer is refused with the policy rule shown", async ({ page }) => {
  await signIn(page, viewer);
  await page.goto(`./#/run?targets=${encodeURIComponent(agentName)}`);
  await expect(page.getByTestId("run-preview")).toContainText("Matches 1 agent");
  await page.getByLabel("Command").selectOption("host_uptime");
  await page.getByRole("button", { name: "Run" }).click();
  const denial = page.getByRole("alert").filter({ hasText: "Denied by policy" });
  await expect(denial).toContainText("HTTP 403");
  await expect(denial.getByTestId("denial-rules")).toContainText("viewer_read_only");
  await expect(page).toHaveURL(/#\/run/);
  await shoot(page, "denied");
});

test("the alerts page lists by state", async ({ page }) => {
  await signIn(page, token);
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Alerts" }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Alerts" })).toBeVisible();
  const asked: string[] = [];
  page.on("request", (r) => {
    if (r.url().includes("/v1/alerts")) asked.push(new URL(r.url()).searchParams.get("state") ?? "");
  });
  await page.getByLabel("Resolved").check();
  await page.getByLabel("All").check();
  await expect.poll(() => asked).toEqual(["resolved", ""]);
  await shoot(page, "alerts");
});

test("at phone width the navigation collapses behind Menu", async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 800 });
  await signIn(page, token);
  const nav = page.getByRole("navigation", { name: "Main" });
  await expect(nav).toBeHidden();
  const menu = page.getByRole("button", { name: "Menu" });
  await expect(menu).toHaveAttribute("aria-expanded", "false");
  await menu.click();
  await expect(menu).toHaveAttribute("aria-expanded", "true");
  await expect(nav).toBeVisible();
  await shoot(page, "phone-menu");
  await nav.getByRole("link", { name: "Commands" }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Commands" })).toBeVisible();
  await expect(nav).toBeHidden();
});

test("the agent's metrics are charted with uPlot, loaded only there, from its live samples", async ({ page }) => {
  const scripts: string[] = [];
  page.on("request", (r) => {
    if (r.resourceType() === "script") scripts.push(new URL(r.url()).pathname);
  });
  await signIn(page, token);
  expect(scripts.some((s) => s.includes("uplot")), "uPlot on the first load").toBe(false);
  const asked: URLSearchParams[] = [];
  page.on("request", (r) => {
    if (r.url().includes("/metrics?")) asked.push(new URL(r.url()).searchParams);
  });
  // A click anywhere on the row leads there too, not only on the name.
  await page.locator("tbody tr", { hasText: agentName }).getByText("online").click();
  const metrics = page.getByTestId("agent-metrics");
  // The load is asked with live=true: the agent uploads every few seconds; the page asks every 10 s.
  const load = metrics.locator('[data-chart="load"]');
  await expect(load).toHaveAttribute("data-points", /^[1-9]/, { timeout: 25_000 });
  await expect(load.locator("canvas").first()).toBeVisible();
  await expect(metrics.locator("[data-chart]")).toHaveCount(4);
  expect(scripts.filter((s) => s.includes("uplot")), "uPlot loaded lazily, once").toHaveLength(1);
  expect(asked.some((q) => q.get("name") === "node_load1" && q.get("live") === "true" && q.get("from") === "1h")).toBe(true);
  // The canvases are hidden from assistive technology; the table says the values.
  await expect(load.getByTestId("uplot-box")).toHaveAttribute("aria-hidden", "true");
  const summary = metrics.getByTestId("metrics-summary");
  await expect(summary.locator("tbody tr")).toHaveCount(4);
  await expect(summary.locator('tr[data-series="load"]').getByTestId("latest")).toHaveText(/^\d+\.\d\d$/);
  await expect(summary.locator('tr[data-series="memory"]').getByTestId("latest")).toHaveText(/^\d+(\.\d)?%$/);
  await shoot(page, "agent-load");
  // Another range asks the hub for it.
  await metrics.getByLabel("6 hours").check();
  await expect(metrics.getByRole("heading", { name: "Metrics, last 6 hours" })).toBeVisible();
  await expect.poll(() => asked.some((q) => q.get("name") === "node_cpu_seconds_total" && q.get("from") === "6h")).toBe(true);
  await expect(load).toHaveAttribute("data-points", /^[1-9]/);
});

test("a broken workflow shows the hub's error at its line", async ({ page }) => {
  await signIn(page, token);
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Workflows" }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Workflows" })).toBeVisible();
  await page.getByLabel("Name").fill("uptime-all");
  await page.getByLabel("Source (YAML)").fill("name: uptime-all\nsteps:\n  - name: up\n    type: execute\n    targets: [all]\n    command: host_uptime\n");
  await page.getByRole("button", { name: "Apply" }).click();
  await expect(page.getByTestId("wf-applied")).toHaveText("Applied uptime-all as version 1.");
  await expect(page.locator('tr[data-workflow="uptime-all"]')).toBeVisible();

  const answer = page.waitForResponse((r) => r.request().method() === "PUT" && r.url().includes("/v1/workflows/"));
  await page.getByLabel("Source (YAML)").fill("name: uptime-all\nsteps:\n  - name: up\n    type: execute\n    targets: [all]\n    command: no_such_command\n");
  await page.getByRole("button", { name: "Apply" }).click();
  const problem = (await (await answer).json()) as { errors: { location: string; message: string }[] };
  const line = Number(/^body\.source:(\d+):/.exec(problem.errors[0]!.location)?.[1]);
  expect(line).toBeGreaterThan(0);
  const bad = page.locator(`[data-testid="wf-source-view"] li[data-line="${line}"]`);
  await expect(bad).toHaveAttribute("data-bad", "true");
  await expect(bad.getByTestId("wf-problem")).toContainText(`line ${line}, column`);
  await expect(bad.getByTestId("wf-problem")).toContainText(problem.errors[0]!.message);
  await expect(page.getByLabel("Source (YAML)")).toHaveAttribute("aria-invalid", "true");
  await shoot(page, "workflows");
});
