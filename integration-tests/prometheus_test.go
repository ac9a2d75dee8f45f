package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/integration-tests/s3server"
	"github.com/pulsehq/pulse/integration-tests/simagent"
)

// promServer is a real Prometheus started by a test, on a loopback port, with a config of its own.
type promServer struct {
	url  string
	logs *syncBuffer
}

// startPrometheus starts Debian's prometheus (PULSE_PROMETHEUS_BIN, which make test sets; without it,
// the one on PATH, and the test is skipped when there is none) with config, and waits until it is
// ready.
func startPrometheus(t *testing.T, config string) *promServer {
	t.Helper()
	bin := os.Getenv("PULSE_PROMETHEUS_BIN")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("prometheus"); err != nil {
			t.Skip("no prometheus (integration-tests/tools/install.sh prometheus installs it; make test does)")
		}
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	p := &promServer{url: "http://" + addr, logs: &syncBuffer{}}
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", p.logs)
		}
	})
	waitFor(t, "prometheus ready", 30*time.Second, func() bool {
		resp, err := http.Get(p.url + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

// promSample is one series of an instant query's answer.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// query runs an instant PromQL query through Prometheus' HTTP API.
func (p *promServer) query(t *testing.T, q string) []promSample {
	t.Helper()
	resp, err := http.Get(p.url + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []promSample `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Status != "success" {
		t.Fatalf("query %s: %v %s", q, err, out.Error)
	}
	return out.Data.Result
}

// viewerToken creates a read-only operator token and writes it to a file, as a scrape config takes it.
func viewerToken(t *testing.T, hubURL, admin, dir string) (token, file string) {
	t.Helper()
	out, errOut, code := pulseCLI(t, hubURL, admin, "token", "create", "--name", "prometheus", "--groups", "viewer", "--json")
	var tok struct{ Token string }
	if code != 0 || json.Unmarshal([]byte(out), &tok) != nil || tok.Token == "" {
		t.Fatalf("token create: %d %s %s", code, out, errOut)
	}
	file = filepath.Join(dir, "prometheus-token")
	if err := os.WriteFile(file, []byte(tok.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	return tok.Token, file
}

// TestPrometheusScrapesTheHub: a real Prometheus scrapes a real `pulse serve` on MinIO with a viewer's
// token, and the hub's own series (requests by route, store operations by outcome) read back through
// Prometheus' query API; a scrape without the token is refused, so the target shows down.
func TestPrometheusScrapesTheHub(t *testing.T) {
	dir := t.TempDir()
	storeURL, admin := initStore(t, dir)
	h := startHub(t, dir, s3server.Env(), "--store", storeURL)
	_, tokenFile := viewerToken(t, h.url, admin, dir)
	hub := strings.TrimPrefix(h.url, "http://")
	prom := startPrometheus(t, fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: pulse-hub
    authorization: {type: Bearer, credentials_file: %q}
    static_configs: [{targets: [%q]}]
  - job_name: pulse-hub-no-token
    static_configs: [{targets: [%q]}]
`, tokenFile, hub, hub))
	var got []promSample
	waitFor(t, "the hub's store operations in Prometheus", 60*time.Second, func() bool {
		got = prom.query(t, `sum(pulse_store_operations_total{job="pulse-hub",op="put",outcome="ok"})`)
		return len(got) == 1 && got[0].Value[1] != "0"
	})
	if up := prom.query(t, `up{job="pulse-hub"}`); len(up) != 1 || up[0].Value[1] != "1" {
		t.Errorf("up of the scrape with the token: %+v", up)
	}
	var up []promSample
	waitFor(t, "the scrape without a token reported", 30*time.Second, func() bool {
		up = prom.query(t, `up{job="pulse-hub-no-token"}`)
		return len(up) == 1
	})
	if up[0].Value[1] != "0" {
		t.Errorf("up of the scrape without a token: %+v, want 0 (refused)", up)
	}
	// The hub counts a scrape once it answered it: the next scrape carries it.
	waitFor(t, "the hub's count of its own scrapes", 30*time.Second, func() bool {
		return len(prom.query(t, `pulse_http_requests_total{job="pulse-hub",route="GET /metrics",status="200"} > 0`)) == 1
	})
}

// TestPrometheusScrapesTheFleet: a real Prometheus finds the fleet through the hub's http_sd endpoint
// (with a viewer's token) and scrapes each agent's newest samples through the hub, and the test reads
// an agent's metric back through Prometheus' query API, with the agent's labels as target labels.
func TestPrometheusScrapesTheFleet(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	storeURL, admin := initStore(t, dir)
	h := startHub(t, dir, s3server.Env(), "--store", storeURL)
	_, tokenFile := viewerToken(t, h.url, admin, dir)
	tok, errOut, code := pulseCLI(t, h.url, admin, "enroll-token", "create", "--uses", "2", "--labels", "role=web")
	if code != 0 {
		t.Fatalf("enroll-token create: %s", errOut)
	}
	var agents []*simagent.Agent
	for _, name := range []string{"web-1", "web-2"} {
		a, err := simagent.Enroll(ctx, h.url, strings.TrimSpace(tok), name, nil)
		if err != nil {
			t.Fatal(err)
		}
		agents = append(agents, a)
	}
	// Samples a minute old, as an agent uploads them every few minutes.
	from := time.Now().Add(-90 * time.Second).Truncate(time.Second).UTC()
	for i, a := range agents {
		ms := from.UnixMilli()
		if err := a.UploadMetrics(ctx, wire.MetricBatch{Seq: 1, From: from, To: from.Add(time.Minute), IntervalSeconds: 10, Series: []wire.Series{
			{Name: "node_filesystem_avail_bytes", Kind: wire.MetricGauge, Labels: map[string]string{"mountpoint": "/"},
				Points: []wire.Point{{T: ms, V: float64(1000 * (i + 1))}, {T: ms + 30_000, V: float64(2000 * (i + 1))}}},
		}}); err != nil {
			t.Fatalf("%s uploads: %v", a.Name, err)
		}
	}
	prom := startPrometheus(t, fmt.Sprintf(`global: {scrape_interval: 1s}
scrape_configs:
  - job_name: pulse-fleet
    authorization: {type: Bearer, credentials_file: %[1]q}
    http_sd_configs:
      - url: %[2]q
        refresh_interval: 1s
        authorization: {type: Bearer, credentials_file: %[1]q}
`, tokenFile, h.url+"/v1/prometheus/targets"))
	var got []promSample
	waitFor(t, "the fleet's filesystem metric in Prometheus", 60*time.Second, func() bool {
		got = prom.query(t, `node_filesystem_avail_bytes{job="pulse-fleet",mountpoint="/"}`)
		return len(got) == 2
	})
	values := map[string]any{}
	for _, s := range got {
		if s.Metric["label_role"] != "web" || s.Metric["agent"] == "" {
			t.Errorf("a series without the agent's target labels: %+v", s.Metric)
		}
		values[s.Metric["agent_name"]] = s.Value[1]
	}
	if values["web-1"] != "2000" || values["web-2"] != "4000" {
		t.Errorf("values through Prometheus: %v, want each agent's newest sample (2000, 4000)", values)
	}
	if up := prom.query(t, `sum(up{job="pulse-fleet"})`); len(up) != 1 || up[0].Value[1] != "2" {
		t.Errorf("agents up as targets: %+v, want 2", up)
	}
}
