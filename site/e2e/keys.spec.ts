// Keyboard navigation: "g" then a letter goes to a page, "?" lists the shortcuts in a dialog (axe and
// screenshots light and dark), keys typed into a field stay the field's, and the palette reaches the
// new pages and a plan by name.
import { expect, test } from "@playwright/test";
import { env, shoot, signIn } from "./helpers";

const token = env("PULSE_E2E_TOKEN");

test("g and a letter go to a page, ? lists the shortcuts, fields keep their keys", async ({ page }) => {
  await signIn(page, token);
  const h1 = page.getByRole("heading", { level: 1 });
  for (const [k, title, hash] of [
    ["p", "Plans", "#/plans"],
    ["u", "Audit", "#/audit"],
    ["a", "Alerts", "#/alerts"],
    ["c", "Commands", "#/commands"],
    ["w", "Workflows", "#/workflows"],
    ["e", "Executions", "#/executions"],
    ["i", "Approvals", "#/approvals"],
    ["f", "Fleet", "#/fleet"],
  ] as const) {
    await page.keyboard.press("g");
    await page.keyboard.press(k);
    await expect(h1, `g ${k}`).toHaveText(title);
    expect(page.url()).toContain(hash);
  }
  // In a field, the keys are text.
  const selector = page.getByLabel("Label selector");
  await selector.focus();
  await page.keyboard.type("gc");
  await expect(selector).toHaveValue("gc");
  await expect(h1).toHaveText("Fleet");
  await selector.fill("");
  await selector.blur();

  await page.keyboard.press("?");
  const help = page.getByRole("dialog", { name: "Keyboard shortcuts" });
  await expect(help).toBeVisible();
  await expect(help.getByTestId("shortcuts")).toContainText("Plans");
  await expect(help.getByTestId("shortcuts")).toContainText("Audit");
  await shoot(page, "shortcuts");
  await page.keyboard.press("Escape");
  await expect(help).toBeHidden();
  // The header's button opens it too.
  await page.getByRole("button", { name: "Keyboard shortcuts" }).click();
  await expect(help).toBeVisible();
  await help.getByRole("button", { name: "Close" }).click();
  await expect(help).toBeHidden();

  // The palette has the new pages.
  const box = page.getByRole("combobox", { name: "Go to a page or an agent" });
  for (const [q, title] of [
    ["audi", "Audit"],
    ["plan", "Plans"],
  ] as const) {
    await page.keyboard.press("Control+k");
    await box.fill(q);
    await page.keyboard.press("Enter");
    await expect(h1).toHaveText(title);
  }
});
