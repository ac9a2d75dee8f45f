package cli_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/cli"
	"github.com/pulsehq/pulse/integration-tests/simagent"
)

// TestMetricsCommand drives pulse metrics against a real hub: an agent's uploads are charted per
// series by agent name (a sparkline, then min, avg, max and last), filtered by label, printed as the
// hub's JSON with --json, listed without a NAME, and --help explains the tiers.
func TestMetricsCommand(t *testing.T) {
	url, admin := startHub(t)
	useHub(t, url, admin)
	ctx := context.Background()
	tok := strings.TrimSpace(pulse("enroll-token", "create").stdout)
	a, err := simagent.Enroll(ctx, url, tok, "web-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	from := time.Now().UTC().Truncate(5 * time.Minute).Add(-30 * time.Minute)
	for k := range 6 {
		b := wire.MetricBatch{Seq: uint64(k + 1), From: from.Add(time.Duration(k) * 5 * time.Minute), IntervalSeconds: 10}
		b.To = b.From.Add(5 * time.Minute)
		for _, mp := range []string{"/", "/var"} {
			s := wire.Series{Name: "node_filesystem_avail_bytes", Kind: wire.MetricGauge, Labels: map[string]string{"mountpoint": mp}}
			for i := range 30 {
				s.Points = append(s.Points, wire.Point{T: b.From.Add(time.Duration(i) * 10 * time.Second).UnixMilli(), V: float64(k*30+i) * 1e6})
			}
			b.Series = append(b.Series, s)
		}
		if err := a.UploadMetrics(ctx, b); err != nil {
			t.Fatal(err)
		}
	}

	r := pulse("metrics", "web-1", "node_filesystem_avail_bytes", "--since", "2h", "--label", "mountpoint=/")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 5 || !strings.Contains(lines[0], "node_filesystem_avail_bytes on "+a.ID) || !strings.Contains(lines[0], "(tier raw)") ||
		lines[2] != `node_filesystem_avail_bytes{mountpoint="/"}` || !strings.ContainsAny(lines[3], "▁█") ||
		!strings.Contains(r.stdout, "min 0  avg 89.5M  max 179M  last 179M  (180 samples)") {
		t.Errorf("chart:\n%s", r.stdout)
	}
	if r := pulse("metrics", "web-1", "node_filesystem_avail_bytes", "--since", "2h"); strings.Count(r.stdout, "node_filesystem_avail_bytes{") != 2 {
		t.Errorf("without a label, want both mountpoints:\n%s", r.stdout)
	}
	r = pulse("metrics", a.ID, "node_filesystem_avail_bytes", "--since", "2h", "--step", "5m", "--json")
	var out struct {
		Tier        string
		StepSeconds int
		Series      []struct{ Points []map[string]float64 }
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Tier != "raw" || out.StepSeconds != 300 || len(out.Series) != 2 || len(out.Series[0].Points) != 6 {
		t.Errorf("--json: %v %+v\n%s", err, out, r.stdout)
	}
	if r := pulse("metrics", "web-1"); r.code != 0 || strings.Count(r.stdout, "\n") != 2 || !strings.Contains(r.stdout, `node_filesystem_avail_bytes{mountpoint="/var"}  gauge  179M`) {
		t.Errorf("series list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := pulse("metrics", "--help"); r.code != 0 || !strings.Contains(r.stdout, "1-minute buckets for 7 days") || !strings.Contains(r.stdout, "-label") {
		t.Errorf("help: %d\n%s", r.code, r.stdout)
	}
	if r := pulse("metrics"); r.code != cli.ExitUsage {
		t.Errorf("no agent: exit %d", r.code)
	}
	if r := pulse("metrics", "nobody", "x"); r.code != cli.ExitError || !strings.Contains(r.stderr, "no agent") {
		t.Errorf("unknown agent: exit %d %s", r.code, r.stderr)
	}
}
