package integration

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/integration-tests/s3server"
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
