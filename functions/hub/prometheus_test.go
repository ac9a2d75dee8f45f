package hub_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
)

// TestPrometheusExposition: the fleet as http_sd target groups (the hub's host, the agent's path, its
// labels as label_<name>), an agent's newest samples in Prometheus' text format with their sample
// times, the whole fleet with agent labels; a reader's token is needed.
func TestPrometheusExposition(t *testing.T) {
	th := newTestHub(t)
	ctx := context.Background()
	web := th.agent("web-1", map[string]string{"role": "web", "env-name": "prod"}, nil)
	th.agent("db-1", map[string]string{"role": "db"}, nil)
	from := time.Now().Add(-2 * time.Minute).Truncate(time.Second).UTC()
	ms := from.UnixMilli()
	if err := web.UploadMetrics(ctx, wire.MetricBatch{Seq: 1, From: from, To: from.Add(time.Minute), IntervalSeconds: 10, Series: []wire.Series{
		{Name: "node_load1", Kind: wire.MetricGauge, Points: []wire.Point{{T: ms, V: 0.5}, {T: ms + 10_000, V: 0.75}}},
		{Name: "node_network_receive_bytes_total", Kind: wire.MetricCounter, Labels: map[string]string{"device": `e"th0`}, Points: []wire.Point{{T: ms, V: 1234}}},
	}}); err != nil {
		t.Fatal(err)
	}
	viewer := th.token("eve", "viewer")
	get := func(token, path string) (int, string) {
		req, _ := http.NewRequest("GET", th.url+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, _ := get("", "/v1/prometheus/targets"); st != 401 {
		t.Fatalf("targets without a token: %d", st)
	}
	st, body := get(viewer, "/v1/prometheus/targets")
	var groups []struct {
		Targets []string
		Labels  map[string]string
	}
	if st != 200 || json.Unmarshal([]byte(body), &groups) != nil || len(groups) != 2 {
		t.Fatalf("targets: %d %s", st, body)
	}
	host := strings.TrimPrefix(th.url, "http://")
	found := false
	for _, g := range groups {
		if g.Labels["agent"] == web.ID {
			found = true
			if g.Targets[0] != host || g.Labels["__metrics_path__"] != "/v1/agents/"+web.ID+"/prometheus" || g.Labels["__scheme__"] != "http" ||
				g.Labels["agent_name"] != "web-1" || g.Labels["label_role"] != "web" || g.Labels["label_env_name"] != "prod" {
				t.Errorf("web-1's target group: %+v", g)
			}
		}
	}
	if !found {
		t.Fatalf("no target group for web-1: %s", body)
	}
	st, body = get(viewer, "/v1/agents/web-1/prometheus")
	for _, want := range []string{
		"# TYPE node_load1 gauge",
		"node_load1 0.75 " + strconv.FormatInt(ms+10_000, 10),
		"# TYPE node_network_receive_bytes_total counter",
		`node_network_receive_bytes_total{device="e\"th0"} 1234 ` + strconv.FormatInt(ms, 10),
	} {
		if st != 200 || !strings.Contains(body, want) {
			t.Errorf("web-1's exposition lacks %q:\n%s", want, body)
		}
	}
	st, body = get(viewer, "/v1/prometheus/fleet")
	if st != 200 || !strings.Contains(body, `node_load1{agent="`+web.ID+`",agent_name="web-1"} 0.75`) {
		t.Errorf("fleet exposition: %d\n%s", st, body)
	}
	if st, _ := get(viewer, "/v1/agents/nobody/prometheus"); st != 404 {
		t.Errorf("an unknown agent: %d", st)
	}
}
