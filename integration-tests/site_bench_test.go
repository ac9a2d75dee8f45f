package integration

import (
	"regexp"
	"strconv"
	"testing"
)

// benchFigure is a line a benchmark spec prints (site/bench/report.ts): "BENCH <unit> <value>".
var benchFigure = regexp.MustCompile(`(?m)^\s*BENCH (\S+) ([0-9.eE+-]+)\s*$`)

// BenchmarkDashboard measures the dashboard as issue 13 asks, in Debian's Chromium against the same
// real hub, agent and MinIO as TestDashboard (startDashboard): the JavaScript shipped on first load
// (gzip, the scripts the page loads before any lazy chunk), the first load from navigation to the
// first agent row (fresh browser context, median of five), and the 10,000-agent fleet's render and
// scroll (median of three). The Playwright project "bench" (site/bench) prints the figures; they are
// reported here, never bounded.
func BenchmarkDashboard(b *testing.B) {
	d := startDashboard(b)
	b.ResetTimer()
	for range b.N {
		out, err := d.playwright([]string{"--project", "bench"})
		if err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
		b.Logf("playwright:\n%s", out)
		found := benchFigure.FindAllStringSubmatch(out, -1)
		if len(found) == 0 {
			b.Fatalf("the bench specs printed no figure:\n%s", out)
		}
		for _, m := range found {
			v, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				b.Fatalf("figure %s: %v", m[0], err)
			}
			b.ReportMetric(v, m[1])
		}
	}
}
