// Playwright drives Debian's Chromium (apt-get install chromium; integration-tests/tools/install.sh
// chromium), never a browser of Playwright's own. The hub under test and its token come from the
// environment: integration-tests/site_test.go starts a real pulse serve on MinIO with a real agent
// and runs this suite against it. Two projects: e2e (the tests, TestDashboard) and bench (the figures
// `make bench` prints, BenchmarkDashboard: site/bench, and the 10,000-agent fleet of e2e).
import { defineConfig } from "@playwright/test";

export default defineConfig({
  outputDir: "test-results/playwright",
  timeout: 30_000,
  retries: 0,
  workers: 1,
  reporter: [["list"]],
  projects: [
    { name: "e2e", testDir: "e2e" },
    { name: "bench", testDir: "bench", timeout: 120_000 },
  ],
  use: {
    baseURL: process.env["PULSE_E2E_HUB"] ?? "http://127.0.0.1:8080",
    viewport: { width: 1280, height: 800 },
    launchOptions: {
      executablePath: process.env["PULSE_CHROMIUM_BIN"] || "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    },
  },
});
