// The page's pure helpers, table-driven: no browser needed.
import { expect, test } from "@playwright/test";
import { parseConfig } from "../src/config";
import { ago, labelText } from "../src/format";

test("config.json names the hub, else the page's origin", () => {
  const origin = "http://127.0.0.1:8080";
  const cases: [unknown, string][] = [
    [{ hub: "https://pulse.example.com" }, "https://pulse.example.com"],
    [{ hub: "https://pulse.example.com/" }, "https://pulse.example.com"],
    [{ hub: "  https://pulse.example.com//  " }, "https://pulse.example.com"],
    [{ hub: "" }, origin],
    [{ hub: 42 }, origin],
    [{}, origin],
    [null, origin],
    ["https://pulse.example.com", origin],
  ];
  for (const [body, want] of cases) {
    expect(parseConfig(body, origin).hub, JSON.stringify(body)).toBe(want);
  }
  // Forward-auth is asked for only when config.json says so.
  expect(parseConfig({ hub: "https://h", auth: "forward" }, origin)).toEqual({ hub: "https://h", auth: "forward" });
  expect(parseConfig({ auth: "forward" }, origin)).toEqual({ hub: origin, auth: "forward" });
  expect(parseConfig({ hub: "https://h", auth: "oidc" }, origin).auth).toBe("token");
  expect(parseConfig(null, origin).auth).toBe("token");
});

test("last seen is worded for a person", () => {
  const now = Date.parse("2026-12-01T12:00:00Z");
  const cases: [string | undefined, string][] = [
    [undefined, "never"],
    ["2026-12-01T12:00:00Z", "0s ago"],
    ["2026-12-01T11:59:15Z", "45s ago"],
    ["2026-12-01T11:58:00Z", "2m ago"],
    ["2026-12-01T09:00:00Z", "3h ago"],
    ["2026-11-28T12:00:00Z", "3d ago"],
    ["2026-12-01T12:00:05Z", "0s ago"], // a clock a little ahead is not "in the future"
    ["not a time", "not a time"],
  ];
  for (const [t, want] of cases) expect(ago(t, now), String(t)).toBe(want);
});

test("labels are k=v sorted by key", () => {
  expect(labelText({ role: "web", env: "prod" })).toEqual(["env=prod", "role=web"]);
  expect(labelText(undefined)).toEqual([]);
});
