package host

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulsehq/pulse/agent/wire"
)

// TestTextfiles: the *.prom files of the textfile directory become series of the sample (gauges,
// counters, untyped values as gauges, with their labels); a file being written (.prom.tmp) is not
// read; a broken file and a histogram are named in the error and the other files' series kept.
func TestTextfiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("backup.prom", "# TYPE backup_age_seconds gauge\nbackup_age_seconds{job=\"db\"} 3600\nbackup_age_seconds{job=\"www\"} 120\n"+
		"# TYPE backup_runs_total counter\nbackup_runs_total 42\nqueue_length 7\n")
	write("half.prom.tmp", "queue_length 99\n")
	write("broken.prom", "this is { not a metric\n")
	write("latency.prom", "# TYPE req_seconds histogram\nreq_seconds_bucket{le=\"1\"} 1\nreq_seconds_bucket{le=\"+Inf\"} 1\nreq_seconds_sum 0.5\nreq_seconds_count 1\n")

	s := &series{ts: 1000}
	s.textfiles(dir)
	got := map[string]wire.Series{}
	for _, se := range s.out {
		got[se.Key()] = se
	}
	want := map[string]struct {
		kind string
		v    float64
	}{
		`backup_age_seconds{job="db"}`:  {wire.MetricGauge, 3600},
		`backup_age_seconds{job="www"}`: {wire.MetricGauge, 120},
		`backup_runs_total{}`:           {wire.MetricCounter, 42},
		`queue_length{}`:                {wire.MetricGauge, 7},
	}
	if len(got) != len(want) {
		t.Fatalf("series %v, want %v", keys(got), want)
	}
	for k, w := range want {
		se, ok := got[k]
		if !ok || se.Kind != w.kind || len(se.Points) != 1 || se.Points[0].V != w.v || se.Points[0].T != 1000 {
			t.Errorf("%s: %+v, want %+v", k, se, w)
		}
	}
	var errs []string
	for _, e := range s.errs {
		errs = append(errs, e.Error())
	}
	joined := strings.Join(errs, "\n")
	if len(errs) != 2 || !strings.Contains(joined, "broken.prom") || !strings.Contains(joined, "req_seconds is a histogram") {
		t.Fatalf("errors: %s", joined)
	}
	// No directory configured, or one that is gone: nothing, and no error for the former.
	s = &series{}
	s.textfiles("")
	if len(s.out)+len(s.errs) != 0 {
		t.Fatalf("no textfile dir: %+v", s)
	}
}

func keys(m map[string]wire.Series) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
