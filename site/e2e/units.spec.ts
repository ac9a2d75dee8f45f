// The new pages' pure helpers, table-driven: no browser, no hub.
import { expect, test } from "@playwright/test";
import { firstBreak, matchesText } from "../src/audit";
import { busyLine, gaugeLine, stats, usedPercent } from "../src/chart";
import { rolloutOps } from "../src/plan";
import { createSequence, sequenceMs, typing } from "../src/shortcuts";
import { duration, rulesOf } from "../src/format";
import { matches, pageEntries, type Entry } from "../src/palette";
import { checkParam, common, paramsOf, type CommandSpec } from "../src/params";
import { href, parseRoute, section, type Route } from "../src/router";
import { inputsOf, inputValues, sourceProblems, stepOrder } from "../src/workflow";

test("hash routes parse and print back", () => {
  const cases: [string, Route][] = [
    ["", { page: "fleet" }],
    ["#", { page: "fleet" }],
    ["#/", { page: "fleet" }],
    ["#/fleet", { page: "fleet" }],
    ["#/agents/ag-1", { page: "agent", id: "ag-1" }],
    ["#/agents/web%201", { page: "agent", id: "web 1" }],
    ["#/agents/%E0%A4%A", { page: "agent", id: "%E0%A4%A" }],
    ["#/commands", { page: "commands" }],
    ["#/commands/cmd-9", { page: "command", id: "cmd-9" }],
    ["#/run", { page: "run", targets: "" }],
    ["#/run?targets=env%3Dprod%2Crole%3Dweb", { page: "run", targets: "env=prod,role=web" }],
    ["#/alerts", { page: "alerts" }],
    ["#/approvals", { page: "approvals" }],
    ["#/workflows", { page: "workflows" }],
    ["#/executions", { page: "executions" }],
    ["#/executions/ex-1", { page: "execution", id: "ex-1" }],
    ["#/plans", { page: "plans" }],
    ["#/plans/web_conf", { page: "plan", name: "web_conf" }],
    ["#/audit", { page: "audit" }],
    ["#/audit/x", { page: "missing", path: "/audit/x" }],
    ["#/executions/a/b", { page: "missing", path: "/executions/a/b" }],
    ["#/alerts/x", { page: "missing", path: "/alerts/x" }],
    ["#/agents/a/b", { page: "missing", path: "/agents/a/b" }],
    ["#/nope", { page: "missing", path: "/nope" }],
  ];
  for (const [hash, want] of cases) expect(parseRoute(hash), hash).toEqual(want);
  for (const r of [
    { page: "agent", id: "web 1/x" },
    { page: "command", id: "c1" },
    { page: "run", targets: "env=prod,role=web" },
    { page: "run", targets: "" },
    { page: "alerts" },
    { page: "executions" },
    { page: "execution", id: "ex 1/2" },
    { page: "plans" },
    { page: "plan", name: "a b" },
    { page: "audit" },
  ] as Route[]) {
    expect(parseRoute(href(r)), href(r)).toEqual(r);
  }
  expect(section({ page: "agent", id: "x" })).toBe("fleet");
  expect(section({ page: "run", targets: "" })).toBe("commands");
  expect(section({ page: "approvals" })).toBe("approvals");
  expect(section({ page: "execution", id: "x" })).toBe("executions");
  expect(section({ page: "plan", name: "x" })).toBe("plans");
  expect(section({ page: "audit" })).toBe("audit");
  expect(section({ page: "missing", path: "/x" })).toBeNull();
});

test("a denial's rules are read from its detail", () => {
  const cases: [string | undefined, string[]][] = [
    ["denied by policy: viewers may only read (rule: viewer_read_only)", ["viewer_read_only"]],
    ["denied by policy: a (rule: freeze); b (rule: default_deny); c (rule: freeze)", ["freeze", "default_deny"]],
    ["denied by policy: no reason given", []],
    [undefined, []],
  ];
  for (const [d, want] of cases) expect(rulesOf(d), String(d)).toEqual(want);
});

test("durations are worded for a person", () => {
  expect([undefined, 850, 4200, 185000].map(duration)).toEqual(["—", "850ms", "4.2s", "3m 5s"]);
});

test("the palette puts labels that start with the query first", () => {
  const agents: Entry[] = [
    { label: "web-1", kind: "agent", also: "ag-aaa", route: { page: "agent", id: "ag-aaa" } },
    { label: "db-web", kind: "agent", also: "ag-bbb", route: { page: "agent", id: "ag-bbb" } },
  ];
  const all = [...pageEntries, ...agents];
  expect(matches(all, "").map((e) => e.label)).toEqual(all.map((e) => e.label));
  expect(matches(all, "WEB").map((e) => e.label)).toEqual(["web-1", "db-web"]);
  expect(matches(all, "ag-bb").map((e) => e.label)).toEqual(["db-web"]);
  expect(matches(all, "co").map((e) => e.label)).toEqual(["Commands", "Run a command"]);
  expect(matches(all, "ap").map((e) => e.label)).toEqual(["Approvals"]);
  expect(matches(all, "zzz")).toEqual([]);
  expect(matches(all, "", 2)).toHaveLength(2);
});

test("the run form offers the commands every target has, and checks parameters like the hub", () => {
  const a: CommandSpec[] = [
    { name: "count_to", group: "exec", params: [{ name: "n", pattern: "[0-9]{1,8}", required: true }] },
    { name: "host_uptime", group: "host" },
  ];
  const b: CommandSpec[] = [
    { name: "count_to", group: "exec", params: [{ name: "n", maxBytes: 3 }] },
    { name: "only_here", group: "exec" },
  ];
  expect([...common([a, b]).keys()]).toEqual(["count_to"]);
  expect([...common([a]).keys()]).toEqual(["count_to", "host_uptime"]);
  expect(common([]).size).toBe(0);
  const n = paramsOf(common([a, b]).get("count_to")!).get("n")!;
  expect(n).toHaveLength(2);
  const cases: [string, string | null][] = [
    ["", "Required."],
    ["12", null],
    ["12x", "Must match [0-9]{1,8}."],
    ["x12", "Must match [0-9]{1,8}."], // the whole value, not a part of it
    ["1234", "At most 3 bytes (this is 4)."],
  ];
  for (const [v, want] of cases) expect(checkParam(n, v), v).toBe(want);
  expect(checkParam([{ name: "opt" }], "")).toBeNull();
  expect(checkParam([{ name: "é", maxBytes: 1 }], "é")).toBe("At most 1 bytes (this is 2).");
  // A pattern JavaScript cannot read is left to the hub.
  expect(checkParam([{ name: "p", pattern: "(?P<x>a)" }], "b")).toBeNull();
});

test("the agent's charts are shaped from the hub's buckets", () => {
  const p = (t: number, avg: number, last = avg) => ({ t, avg, last });
  expect(gaugeLine([p(2000, 0.5), p(1000, 0.25)])).toEqual({ t: [1000, 2000], v: [0.25, 0.5] });
  expect(gaugeLine(null)).toEqual({ t: [], v: [] });
  // CPU: two modes summed over the CPUs; 10 s of CPU time per bucket, 2.5 of it idle: 75% busy.
  const cpu = [
    { labels: { mode: "idle" }, points: [p(0, 0, 100), p(10, 0, 102.5), p(20, 0, 110), p(30, 0, 5)] },
    { labels: { mode: "user" }, points: [p(0, 0, 50), p(10, 0, 57.5), p(20, 0, 60), p(30, 0, 1)] },
  ];
  expect(busyLine(cpu)).toEqual({ t: [10, 20, 30], v: [75, 25, null] }); // the counters went back at 30: a reboot
  expect(busyLine([{ labels: { mode: "idle" }, points: [p(0, 0, 1), p(10, 0, 2)] }, { labels: { mode: "user" }, points: [p(10, 0, 5)] }])).toEqual({ t: [10], v: [null] });
  expect(usedPercent([p(0, 25), p(10, 50), p(20, 1)], [p(0, 100), p(10, 100)])).toEqual({ t: [0, 10], v: [75, 50] });
  expect(usedPercent([p(0, 1)], [p(0, 0)])).toEqual({ t: [0], v: [null] });
  expect(stats({ t: [1, 2, 3], v: [3, null, 1] })).toEqual({ latest: 1, min: 1, max: 3, n: 2 });
  expect(stats({ t: [1], v: [null] })).toBeNull();
});

test("a rollout offers the operations its state allows", () => {
  expect(rolloutOps("rolling")).toEqual(["pause", "promote", "abort"]);
  expect(rolloutOps("paused")).toEqual(["resume", "promote", "abort"]);
  expect(rolloutOps("halted")).toEqual(["pause", "resume", "abort"]);
  for (const s of ["aborted", "completed", "rolled_back", undefined]) expect(rolloutOps(s), String(s)).toEqual([]);
});

test("the audit page filters by text and names the first changed record", () => {
  const r = { action: "apply-plan", targets: ["ag-1", "web-2"] };
  expect(matchesText(r, "")).toBe(true);
  expect(matchesText(r, "  PLAN  web ")).toBe(true);
  expect(matchesText(r, "plan db")).toBe(false);
  expect(matchesText({ action: "x", targets: null }, "x")).toBe(true);
  expect(
    firstBreak("record v1/audit/2026-12-01/0193a2b4-7c1d-7e3f-9a00-0123456789ab.json was changed after it was sealed in seal 3 (object failed the hub's integrity check)"),
  ).toEqual({ record: "v1/audit/2026-12-01/0193a2b4-7c1d-7e3f-9a00-0123456789ab.json", id: "0193a2b4-7c1d-7e3f-9a00-0123456789ab" });
  expect(firstBreak("record v1/audit/2026-12-01/x.json was removed (sealed in seal 2)")).toEqual({ record: "v1/audit/2026-12-01/x.json", id: "x" });
  expect(firstBreak("seal 4 does not follow seal 3: the chain was altered")).toEqual({ seal: 4 });
  expect(firstBreak("something else")).toBeNull();
  expect(firstBreak(undefined)).toBeNull();
});

test("keyboard shortcuts: g then a letter goes to a page, ? lists them, fields keep their keys", () => {
  const next = createSequence();
  expect(next("g", 0)).toEqual({ pending: true });
  expect(next("p", 100)).toEqual({ go: { page: "plans" } });
  expect(next("p", 200)).toBeNull(); // p alone is nothing
  expect(next("g", 1000)).toEqual({ pending: true });
  expect(next("u", 1000 + sequenceMs + 1)).toBeNull(); // too late
  expect(next("g", 5000)).toEqual({ pending: true });
  expect(next("x", 5001)).toBeNull();
  expect(next("f", 5002)).toBeNull(); // the sequence was broken by x
  expect(next("?", 6000)).toEqual({ help: true });
  for (const [k, page] of [["f", "fleet"], ["c", "commands"], ["a", "alerts"], ["u", "audit"], ["w", "workflows"], ["e", "executions"], ["i", "approvals"]] as const) {
    next("g", 7000);
    expect(next(k, 7001), `g ${k}`).toEqual({ go: { page } });
  }
  const none = { ctrlKey: false, altKey: false, metaKey: false };
  expect(typing({ tagName: "input" }, none)).toBe(true);
  expect(typing({ tagName: "TEXTAREA" }, none)).toBe(true);
  expect(typing({ tagName: "SELECT" }, none)).toBe(true);
  expect(typing({ tagName: "DIV", isContentEditable: true }, none)).toBe(true);
  expect(typing({ tagName: "BODY" }, none)).toBe(false);
  expect(typing(null, none)).toBe(false);
  expect(typing({ tagName: "BODY" }, { ...none, ctrlKey: true })).toBe(true);
});

test("a workflow's refusal is read at its lines", () => {
  const p = {
    status: 422,
    errors: [
      { location: "body.source:7:11 steps[1].command", message: "no agent offers it" },
      { location: "body.source:3:3", message: "unknown key" },
      { location: "body.source", message: "not YAML" },
      { location: "body.name", message: "elsewhere" },
    ],
  };
  expect(sourceProblems(p)).toEqual([
    { line: 0, column: 0, path: "", message: "not YAML" },
    { line: 3, column: 3, path: "", message: "unknown key" },
    { line: 7, column: 11, path: "steps[1].command", message: "no agent offers it" },
  ]);
  expect(sourceProblems(null)).toEqual([]);
});

test("a workflow's declared inputs make the run form, and its values are typed as declared", () => {
  const specs = inputsOf({
    inputs: {
      note: { type: "string", required: true, description: "What is shipped." },
      count: { type: "int", default: 3 },
      dry: { type: "bool", default: false },
      odd: "not an object",
    },
    steps: [],
  });
  expect(specs).toEqual([
    { name: "count", type: "int", description: "", required: false, default: "3" },
    { name: "dry", type: "bool", description: "", required: false, default: "false" },
    { name: "note", type: "string", description: "What is shipped.", required: true, default: "" },
    { name: "odd", type: "string", description: "", required: false, default: "" },
  ]);
  expect(inputsOf(null)).toEqual([]);
  expect(inputsOf({ steps: [] })).toEqual([]);
  expect(inputValues(specs, { count: "12", dry: "true", note: " two words ", odd: "" })).toEqual({
    inputs: { count: 12, dry: true, note: " two words " },
    problems: {},
  });
  // An empty optional input is left to the workflow's default; a required one and a non-number are named.
  expect(inputValues(specs, { count: "1.5", dry: "", note: "  " })).toEqual({
    inputs: {},
    problems: { count: "A whole number.", note: "Required." },
  });
  expect(inputValues(specs, { count: "99999999999999999999", note: "x" }).problems).toEqual({ count: "A whole number." });
});

test("an execution's steps are ordered as its timeline reached them", () => {
  const steps = { ship: {}, ask: {}, check: {}, later: {}, after: {} };
  expect(stepOrder(steps, [{}, { step: "check" }, { step: "ask" }, { step: "check" }, { step: "gone" }])).toEqual(["check", "ask", "after", "later", "ship"]);
  expect(stepOrder({}, [{ step: "x" }])).toEqual([]);
});
