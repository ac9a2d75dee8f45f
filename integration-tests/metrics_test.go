package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/integration-tests/s3server"
	"github.com/pulsehq/pulse/integration-tests/simagent"
)

// metricsAnswer is what `pulse metrics AGENT NAME --json` prints.
type metricsAnswer struct {
	Tier        string `json:"tier"`
	StepSeconds int64  `json:"stepSeconds"`
	Series      []struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
		Points []struct {
			Avg, Min, Max float64
			Count         int
		} `json:"points"`
	} `json:"series"`
}

// TestMetricsEndToEnd: real `pulse serve` on MinIO and a real pulse-agent sampling its host every
// second and uploading every 2 s. The history over the last minutes shows the host's values, read
// from the raw tier at a 10 s step and from the 1-minute tier's resolution when the step asks for
// it; the batches are stored write-once under the hour and the agent, gzip-compressed.
func TestMetricsEndToEnd(t *testing.T) {
	dir := t.TempDir()
	storeURL, token := initStore(t, dir)
	h := startHub(t, dir, s3server.Env(), "--store", storeURL, "--poll-hold", "5s")
	tok, errOut, code := pulseCLI(t, h.url, token, "enroll-token", "create", "--labels", "role=web")
	if code != 0 {
		t.Fatalf("enroll-token create: %s", errOut)
	}
	cfg := strings.Replace(agentConfig, "[agent]\n", "[agent]\nmetrics_upload = \"2s\"\n", 1) + "\n[host]\nsample_every = \"1s\"\n"
	a := startAgent(t, h.url, dir+"/agent", cfg, "--enroll-token", strings.TrimSpace(tok))
	id := a.id()
	query := func(args ...string) metricsAnswer {
		t.Helper()
		out, errOut, code := pulseCLI(t, h.url, token, append([]string{"metrics", id}, append(args, "--json")...)...)
		if code != 0 {
			t.Fatalf("pulse metrics %v: exit %d: %s", args, code, errOut)
		}
		var m metricsAnswer
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("pulse metrics --json: %v: %s", err, out)
		}
		return m
	}
	var m metricsAnswer
	waitFor(t, "the host's filesystem history at the hub", 60*time.Second, func() bool {
		m = query("node_filesystem_size_bytes", "--since", "10m", "--step", "10s")
		points := 0
		for _, s := range m.Series {
			for _, p := range s.Points {
				points += p.Count
			}
		}
		return points >= 5
	})
	if m.Tier != "raw" || m.StepSeconds != 10 || len(m.Series) == 0 || m.Series[0].Labels["mountpoint"] == "" {
		t.Fatalf("answer: tier %s, step %d, series %+v", m.Tier, m.StepSeconds, m.Series)
	}
	for _, s := range m.Series {
		for _, p := range s.Points {
			if p.Count > 0 && (p.Max <= 0 || p.Min > p.Avg || p.Avg > p.Max) {
				t.Fatalf("a filesystem's size point %+v of %v", p, s.Labels)
			}
		}
	}
	if load := query("node_load1", "--since", "10m", "--step", "1m"); load.StepSeconds != 60 || len(load.Series) != 1 {
		t.Errorf("load at a minute step: %+v", load)
	}
	// Stored write-once under the hour and the agent, compressed.
	bucket := bucketStore(t, storeURL)
	var keys []string
	store.Walk(t.Context(), bucket, layout.MetricsTier(layout.MetricsRaw), "", 0, func(o store.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	})
	if len(keys) == 0 || !strings.Contains(keys[0], "/"+id+"/") || !strings.HasSuffix(keys[0], ".json.gz") {
		t.Fatalf("raw batches stored: %v", keys)
	}
}

// TestLiveWatchUploadsSooner: a real pulse-agent that uploads every 5 minutes (the default) is
// watched with `pulse metrics --watch` (a query with live=true): the hub's poll answer asks it to
// upload every 10 s, and its samples reach the history long before its first 5-minute batch.
func TestLiveWatchUploadsSooner(t *testing.T) {
	dir := t.TempDir()
	storeURL, token := initStore(t, dir)
	h := startHub(t, dir, s3server.Env(), "--store", storeURL, "--poll-hold", "5s")
	tok, errOut, code := pulseCLI(t, h.url, token, "enroll-token", "create")
	if code != 0 {
		t.Fatalf("enroll-token create: %s", errOut)
	}
	a := startAgent(t, h.url, dir+"/agent", agentConfig+"\n[host]\nsample_every = \"1s\"\n", "--enroll-token", strings.TrimSpace(tok))
	id := a.id()
	samples := func(live bool) int {
		args := []string{"metrics", id, "node_load1", "--since", "10m", "--json"}
		if live {
			args = append(args, "--watch")
		}
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		out, _, _ := pulseCLIContext(ctx, t, h.url, token, args...)
		var m metricsAnswer
		json.NewDecoder(strings.NewReader(out)).Decode(&m) // --watch prints one answer, then waits
		n := 0
		for _, s := range m.Series {
			for _, p := range s.Points {
				n += p.Count
			}
		}
		return n
	}
	time.Sleep(3 * time.Second)
	if n := samples(false); n != 0 {
		t.Fatalf("%d samples before the first 5-minute batch: the agent was not on its default interval", n)
	}
	waitFor(t, "samples while watched", 60*time.Second, func() bool { return samples(true) > 0 })
}

// TestCompactionObjectCounts: a real `pulse serve` on MinIO (compacting 1 s after a window ends)
// takes two agents' batches of an hour two hours ago (12 five-minute batches each) and one batch of
// the current hour; a second instance started on the same bucket compacts at its first tick. The
// bucket then holds, per agent, 12 raw objects of that hour and one 1-minute rollup of it, one done
// marker for the window, no rollup of the hour still going on and no 1-hour rollup unless its day has
// ended (from 00:00 to 02:00 UTC it has, and there is one per agent); a range query over that hour at a 1-minute step answers its 60 minutes.
func TestCompactionObjectCounts(t *testing.T) {
	dir := t.TempDir()
	storeURL, token := initStore(t, dir)
	cfg := filepath.Join(dir, "hub.toml")
	os.WriteFile(cfg, []byte("[metrics]\ngrace = \"1s\"\n"), 0o600)
	h := startHub(t, dir, s3server.Env(), "--store", storeURL, "--config", cfg)
	tok, errOut, code := pulseCLI(t, h.url, token, "enroll-token", "create", "--uses", "2")
	if code != 0 {
		t.Fatalf("enroll-token create: %s", errOut)
	}
	now := time.Now().UTC()
	hour := now.Truncate(time.Hour).Add(-2 * time.Hour)
	var agents []*simagent.Agent
	for i := range 2 {
		a, err := simagent.Enroll(t.Context(), h.url, strings.TrimSpace(tok), fmt.Sprintf("sim-%d", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		agents = append(agents, a)
		for j := range 12 {
			from := hour.Add(time.Duration(j) * 5 * time.Minute)
			b := wire.MetricBatch{Seq: uint64(j + 1), From: from, To: from.Add(5 * time.Minute), IntervalSeconds: 10}
			s := wire.Series{Name: "node_load1", Kind: wire.MetricGauge}
			for k := range 30 {
				s.Points = append(s.Points, wire.Point{T: from.Add(time.Duration(k) * 10 * time.Second).UnixMilli(), V: float64(i + 1)})
			}
			b.Series = []wire.Series{s}
			if err := a.UploadMetrics(t.Context(), b); err != nil {
				t.Fatalf("batch %d of %s: %v", j+1, a.Name, err)
			}
		}
		cur := now.Add(-30 * time.Second)
		b := wire.MetricBatch{Seq: 13, From: cur, To: cur.Add(10 * time.Second), IntervalSeconds: 10,
			Series: []wire.Series{{Name: "node_load1", Kind: wire.MetricGauge, Points: []wire.Point{{T: cur.UnixMilli(), V: 1}}}}}
		if err := a.UploadMetrics(t.Context(), b); err != nil {
			t.Fatalf("the current hour's batch: %v", err)
		}
	}
	startHub(t, dir, s3server.Env(), "--store", storeURL, "--config", cfg) // compacts at its first tick
	bucket := bucketStore(t, storeURL)
	count := func(prefix string) int {
		n := 0
		store.Walk(t.Context(), bucket, prefix, "", 0, func(store.ObjectInfo) error { n++; return nil })
		return n
	}
	waitFor(t, "the hour compacted into the 1-minute tier", 60*time.Second, func() bool {
		return count(layout.MetricsDone(layout.MetricsMinute, hour)) == 1
	})
	for _, a := range agents {
		if n := count(layout.MetricsRawOf(hour, a.ID)); n != 12 {
			t.Errorf("%s: %d raw objects of the hour, want 12", a.Name, n)
		}
		if n := count(layout.MetricsRollup(layout.MetricsMinute, hour, a.ID)); n != 1 {
			t.Errorf("%s: %d 1-minute rollups of the hour, want 1", a.Name, n)
		}
	}
	if n := count(layout.MetricsWindowOf(layout.MetricsMinute, hour)); n != 2 {
		t.Errorf("%d 1-minute rollups of the hour, want one per agent", n)
	}
	if n := count(layout.MetricsWindowOf(layout.MetricsMinute, now.Truncate(time.Hour))); n != 0 {
		t.Errorf("%d rollups of the hour still going on", n)
	}
	if hour.Truncate(24 * time.Hour).Before(now.Truncate(24 * time.Hour)) {
		// From 00:00 to 02:00 UTC the hour two hours ago is yesterday's, and yesterday has ended: its
		// 1-hour rollups are due as well, one per agent.
		waitFor(t, "the ended day compacted into the 1-hour tier", 60*time.Second, func() bool { return count(layout.MetricsTier("1h")) == 2 })
	} else if n := count(layout.MetricsTier("1h")); n != 0 {
		t.Errorf("%d 1-hour rollups before their day ended", n)
	}
	out, errOut, code := pulseCLI(t, h.url, token, "metrics", agents[1].ID, "node_load1", "--since", hour.Format(time.RFC3339),
		"--until", hour.Add(time.Hour).Format(time.RFC3339), "--step", "1m", "--json")
	var m metricsAnswer
	if code != 0 || json.Unmarshal([]byte(out), &m) != nil || len(m.Series) != 1 || len(m.Series[0].Points) != 60 {
		t.Fatalf("the hour at a 1-minute step: exit %d %s %s", code, out, errOut)
	}
	for _, p := range m.Series[0].Points {
		if p.Count != 6 || p.Avg != 2 {
			t.Fatalf("a minute of the hour: %+v, want 6 samples of 2", p)
		}
	}
}
