package integration

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/integration-tests/simagent"
)

// tierCounter counts the writes and bytes (as stored: compressed, with the hub's MAC line) under
// each metric tier.
type tierCounter struct {
	store.Store
	mu     sync.Mutex
	writes map[string]int
	bytes  map[string]int64
	reqs   atomic.Int64
}

func (c *tierCounter) tier(key string) string {
	rest, ok := strings.CutPrefix(key, layout.Metrics)
	if !ok {
		return ""
	}
	t, _, _ := strings.Cut(rest, "/")
	return t
}

func (c *tierCounter) Put(ctx context.Context, k string, r io.Reader, n int64, o store.PutOptions) (store.ObjectInfo, error) {
	c.reqs.Add(1)
	if t := c.tier(k); t != "" {
		c.mu.Lock()
		c.writes[t]++
		c.bytes[t] += n
		c.mu.Unlock()
	}
	return c.Store.Put(ctx, k, r, n, o)
}

func (c *tierCounter) Get(ctx context.Context, k string, o store.GetOptions) (*store.Object, error) {
	c.reqs.Add(1)
	return c.Store.Get(ctx, k, o)
}

func (c *tierCounter) List(ctx context.Context, p, after string, limit int) (store.Page, error) {
	c.reqs.Add(1)
	return c.Store.List(ctx, p, after, limit)
}

func (c *tierCounter) Delete(ctx context.Context, k string) error {
	c.reqs.Add(1)
	return c.Store.Delete(ctx, k)
}

// metricsHub is an in-process hub on MinIO behind a tierCounter, with n enrolled simulated agents.
func metricsHub(b *testing.B, n int) (*hub.Hub, *tierCounter, *hubProc, string, []*simagent.Agent) {
	b.Helper()
	inner, err := minio.Store(bucket)
	if err != nil {
		b.Fatal(err)
	}
	tc := &tierCounter{Store: inner, writes: map[string]int{}, bytes: map[string]int64{}}
	_, priv, _ := ed25519.GenerateKey(crand.Reader)
	h, err := hub.New(context.Background(), hub.Config{Store: tc, Keys: &hubkey.Keys{Current: priv},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	mux := http.NewServeMux()
	hub.NewAPI(mux, h)
	srv := httptest.NewServer(hub.Handler(mux, h.Log))
	b.Cleanup(srv.Close)
	ctx := context.Background()
	admin, err := hub.CreateAPIToken(ctx, h.Store, "bench", []string{"admin"}, 0, "bench")
	if err != nil {
		b.Fatal(err)
	}
	hp := &hubProc{t: b, url: srv.URL}
	var tok struct {
		Token string `json:"token"`
	}
	op(b, hp, admin, "POST", "/v1/enroll-tokens", map[string]any{"uses": n}, &tok)
	agents := make([]*simagent.Agent, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			a, err := simagent.Enroll(ctx, srv.URL, tok.Token, fmt.Sprintf("m-%d", i), nil)
			if err != nil {
				b.Error(err)
				return
			}
			agents[i] = a
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return h, tc, hp, admin, agents
}

// hostSeries is what a host agent samples: about 100 series like node_exporter's (CPU seconds by cpu
// and mode, filesystems, network and disk counters, memory, load, temperatures), with values of the
// precision gopsutil gives (seconds to 1/100, bytes as integers, ratios and temperatures as floats).
type hostSeries struct {
	name, kind string
	labels     map[string]string
	v          float64
	step       func(r *rand.Rand, v float64) float64
}

func newHost(seed uint64) []*hostSeries {
	r := rand.New(rand.NewPCG(seed, 1))
	var out []*hostSeries
	add := func(name, kind string, labels map[string]string, v float64, step func(*rand.Rand, float64) float64) {
		out = append(out, &hostSeries{name: name, kind: kind, labels: labels, v: v, step: step})
	}
	cpuSec := func(r *rand.Rand, v float64) float64 { return math.Round((v+r.Float64()*10)*100) / 100 }
	bytesUp := func(r *rand.Rand, v float64) float64 { return v + float64(r.IntN(5_000_000)) }
	walk := func(r *rand.Rand, v float64) float64 { return math.Max(0, v+float64(r.IntN(2_000_000)-1_000_000)) }
	ratio := func(r *rand.Rand, v float64) float64 { return math.Min(1, math.Max(0, v+(r.Float64()-0.5)*0.05)) }
	temp := func(r *rand.Rand, v float64) float64 { return math.Round((v+(r.Float64()-0.5))*1000) / 1000 }
	for c := range 4 {
		for _, m := range []string{"user", "system", "idle", "iowait"} {
			add("node_cpu_seconds_total", wire.MetricCounter, map[string]string{"cpu": fmt.Sprint(c), "mode": m}, float64(r.IntN(1e6)), cpuSec)
		}
	}
	for _, mp := range []string{"/", "/var", "/home", "/boot"} {
		add("node_filesystem_avail_bytes", wire.MetricGauge, map[string]string{"mountpoint": mp}, 5e10, walk)
		add("node_filesystem_size_bytes", wire.MetricGauge, map[string]string{"mountpoint": mp}, 1e11, func(_ *rand.Rand, v float64) float64 { return v })
		add("node_filesystem_used_ratio", wire.MetricGauge, map[string]string{"mountpoint": mp}, 0.5, ratio)
	}
	for _, d := range []string{"eth0", "eth1", "lo"} {
		for _, n := range []string{"node_network_receive_bytes_total", "node_network_transmit_bytes_total", "node_network_receive_packets_total", "node_network_transmit_packets_total"} {
			add(n, wire.MetricCounter, map[string]string{"device": d}, float64(r.IntN(1e9)), bytesUp)
		}
	}
	for _, d := range []string{"sda", "sdb", "nvme0n1"} {
		for _, n := range []string{"node_disk_read_bytes_total", "node_disk_written_bytes_total", "node_disk_reads_completed_total", "node_disk_writes_completed_total", "node_disk_io_time_seconds_total", "node_disk_io_now"} {
			add(n, wire.MetricCounter, map[string]string{"device": d}, float64(r.IntN(1e9)), bytesUp)
		}
	}
	for _, n := range []string{"node_memory_total_bytes", "node_memory_available_bytes", "node_memory_used_bytes", "node_memory_cached_bytes", "node_memory_buffers_bytes",
		"node_memory_swap_total_bytes", "node_memory_swap_used_bytes", "node_memory_dirty_bytes", "node_memory_shared_bytes", "node_memory_slab_bytes"} {
		add(n, wire.MetricGauge, nil, 8e9, walk)
	}
	for _, n := range []string{"node_load1", "node_load5", "node_load15"} {
		add(n, wire.MetricGauge, nil, 1, func(r *rand.Rand, v float64) float64 {
			return math.Round(math.Max(0, v+(r.Float64()-0.5)*0.2)*100) / 100
		})
	}
	for s := len(out); s < 100; s++ {
		add("node_hwmon_temp_celsius", wire.MetricGauge, map[string]string{"sensor": fmt.Sprintf("temp%d", s)}, 45, temp)
	}
	return out[:100]
}

// hostBatch is seq of a host sampling every 10 s for 5 minutes from from: 100 series × 30 points.
func hostBatch(host []*hostSeries, r *rand.Rand, seq uint64, from time.Time) wire.MetricBatch {
	b := wire.MetricBatch{Seq: seq, From: from, To: from.Add(wire.DefaultMetricsUpload), IntervalSeconds: 10}
	for _, s := range host {
		se := wire.Series{Name: s.name, Kind: s.kind, Labels: s.labels}
		for i := range int(wire.DefaultMetricsUpload / wire.DefaultMetricSample) {
			s.v = s.step(r, s.v)
			se.Points = append(se.Points, wire.Point{T: from.Add(time.Duration(i) * wire.DefaultMetricSample).UnixMilli(), V: s.v})
		}
		b.Series = append(b.Series, se)
	}
	return b
}

// BenchmarkMetricsWritesPerAgent: store writes and bytes per agent per hour for metrics, with the
// agent's defaults (a sample every 10 s, an upload every 5 min) and 100 series per sample: 10
// simulated agents upload an hour of batches to an in-process hub on MinIO, then the tick compacts
// the hour into the 1-minute tier. Bytes are as stored (gzip, with the hub's MAC line).
func BenchmarkMetricsWritesPerAgent(b *testing.B) {
	const n = 10
	for range b.N {
		h, tc, _, _, agents := metricsHub(b, n)
		ctx := context.Background()
		start := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
		var wg sync.WaitGroup
		for i, a := range agents {
			wg.Go(func() {
				host, r := newHost(uint64(i)), rand.New(rand.NewPCG(uint64(i), 2))
				for k := range 12 {
					if err := a.UploadMetrics(ctx, hostBatch(host, r, uint64(k+1), start.Add(time.Duration(k)*wire.DefaultMetricsUpload))); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		h.Metrics.SetNow(func() time.Time { return start.Add(3*time.Hour + time.Minute) })
		c, err := h.Metrics.Compact(ctx)
		if err != nil || c.Written[layout.MetricsMinute] != n {
			b.Fatalf("compact: %+v %v", c, err)
		}
		// The day's 1h object: one per agent per day, from the 1m tier (here from one hour of it).
		h.Metrics.SetNow(func() time.Time { return start.Truncate(24 * time.Hour).Add(26*time.Hour + time.Minute) })
		if _, err := h.Metrics.Compact(ctx); err != nil {
			b.Fatal(err)
		}
		rawW, rawB := float64(tc.writes["raw"])/n, float64(tc.bytes["raw"])/n
		minW, minB := float64(tc.writes["1m"])/n, float64(tc.bytes["1m"])/n
		b.ReportMetric(rawW+minW, "writes/agent/h")
		b.ReportMetric((rawB+minB)/1024, "KiB/agent/h")
		b.ReportMetric(rawB/1024, "raw-KiB/agent/h")
		b.ReportMetric(minB/1024, "1m-KiB/agent/h")
		b.ReportMetric(24*(rawB+minB)/(1<<20)+float64(tc.bytes["1h"])/n/(1<<20), "MiB/agent/day")
		b.ReportMetric(24*(rawW+minW)+float64(tc.writes["1h"])/n, "objects/agent/day")
	}
}

// BenchmarkMetricsIngest1000: 1,000 simulated agents each upload a realistic 5-minute batch (100
// series × 30 points, gzip) at once to an in-process hub on MinIO; the time until all are stored,
// and the batches per second that makes (1,000 agents on the defaults need 3.3 a second).
func BenchmarkMetricsIngest1000(b *testing.B) {
	const n = 1000
	for range b.N {
		_, tc, _, _, agents := metricsHub(b, n)
		from := time.Now().UTC().Truncate(5 * time.Minute).Add(-5 * time.Minute)
		batches := make([]wire.MetricBatch, n)
		for i := range batches {
			batches[i] = hostBatch(newHost(uint64(i)), rand.New(rand.NewPCG(uint64(i), 3)), 1, from)
		}
		before := tc.writes["raw"]
		took := uploadAll(b, agents, batches)
		if got := tc.writes["raw"] - before; got != n {
			b.Fatalf("%d raw objects written, want %d", got, n)
		}
		b.ReportMetric(took.Seconds(), "s-1000-batches")
		b.ReportMetric(float64(n)/took.Seconds(), "batches/s")
	}
}

// BenchmarkMetricsQuery24h: p50 of a 24 h range query at 1-minute step of one metric (16 series:
// node_cpu_seconds_total by cpu and mode) of an agent with a day of batches (288), from the raw tier,
// through the API of an in-process hub on MinIO: the first query (nothing cached) and then p50 of 20,
// each timed from the request to the decoded answer (16 series × 1,440 points, about 1.5 MB of JSON).
func BenchmarkMetricsQuery24h(b *testing.B) {
	for range b.N {
		_, tc, hp, admin, agents := metricsHub(b, 1)
		a := agents[0]
		ctx := context.Background()
		now := time.Now().UTC()
		start := now.Truncate(5 * time.Minute).Add(-24*time.Hour + 5*time.Minute)
		host, r := newHost(7), rand.New(rand.NewPCG(7, 4))
		var seq uint64
		for t := start; !t.Add(wire.DefaultMetricsUpload).After(now); t = t.Add(wire.DefaultMetricsUpload) {
			seq++
			if err := a.UploadMetrics(ctx, hostBatch(host, r, seq, t)); err != nil {
				b.Fatal(err)
			}
		}
		q := url.Values{"name": {"node_cpu_seconds_total"}, "from": {"24h"}, "step": {"1m"}}
		path := "/v1/agents/" + a.ID + "/metrics?" + q.Encode()
		var out struct {
			Tier     string
			Requests int
			Series   []struct {
				Points []struct {
					T                   int64
					Avg, Min, Max, Last float64
					Count               int64
				}
			}
		}
		var times []time.Duration
		var coldReq int
		for i := range 21 {
			reqs := tc.reqs.Load()
			t0 := time.Now()
			req, _ := http.NewRequestWithContext(ctx, "GET", hp.url+path, nil)
			req.Header.Set("Authorization", "Bearer "+admin)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			err = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if resp.StatusCode != 200 || err != nil {
				b.Fatalf("query: %d %v", resp.StatusCode, err)
			}
			d := time.Since(t0)
			if i == 0 {
				coldReq = int(tc.reqs.Load() - reqs)
				b.ReportMetric(float64(d.Milliseconds()), "cold-ms")
				continue
			}
			times = append(times, d)
		}
		if out.Tier != "raw" || len(out.Series) != 16 || len(out.Series[0].Points) < 1400 {
			b.Fatalf("answer: tier %s, %d series", out.Tier, len(out.Series))
		}
		slices.Sort(times)
		b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(coldReq), "cold-store-req")
		b.ReportMetric(float64(out.Requests), "warm-store-req")
		b.ReportMetric(float64(seq), "batches")
	}
}

// uploadAll uploads batch i as agent i, 64 at a time, and says how long it took.
func uploadAll(b *testing.B, agents []*simagent.Agent, batches []wire.MetricBatch) time.Duration {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	t0 := time.Now()
	for i, a := range agents {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := a.UploadMetrics(context.Background(), batches[i]); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	return time.Since(t0)
}

// BenchmarkMetricAlerts1000: the cost metric rules add to ingestion. 1,000 simulated agents upload a
// 5-minute batch each at once to an in-process hub on MinIO with 10 metric rules in force over their
// host series (9 that never hold, 1 that holds for every agent with for: 1m). A first round without
// rules is the baseline; with the rules applied, the next round fires 1,000 alerts (each recorded and
// queued for the default channels, of which there are none), the one after takes the next batches
// with every track settled. It reports each round's time and the store requests per batch beyond the
// baseline's.
func BenchmarkMetricAlerts1000(b *testing.B) {
	const n = 1000
	for range b.N {
		_, tc, hp, admin, agents := metricsHub(b, n)
		var src strings.Builder
		src.WriteString("rules:\n")
		for i, m := range []string{"node_load1", "node_load5", "node_load15", "node_memory_available_bytes", "node_filesystem_used_ratio"} {
			fmt.Fprintf(&src, "  - {name: quiet_%d, kind: metric, metric: %s, above: 1e15, for: 1m}\n", i, m)
			fmt.Fprintf(&src, "  - {name: low_%d, kind: metric, metric: %s, below: -1e15, for: 1m}\n", i, m)
		}
		rules := strings.Replace(src.String(), "low_4, kind: metric, metric: node_filesystem_used_ratio, below: -1e15", "busy, kind: metric, metric: node_filesystem_used_ratio, labels: {mountpoint: /}, above: -1", 1)
		from := time.Now().UTC().Truncate(5 * time.Minute).Add(-15 * time.Minute)
		hosts := make([][]*hostSeries, n)
		rs := make([]*rand.Rand, n)
		for i := range hosts {
			hosts[i], rs[i] = newHost(uint64(i)), rand.New(rand.NewPCG(uint64(i), 5))
		}
		round := func(seq uint64, at time.Time) (time.Duration, float64) {
			batches := make([]wire.MetricBatch, n)
			for i := range batches {
				batches[i] = hostBatch(hosts[i], rs[i], seq, at)
			}
			reqs := tc.reqs.Load()
			took := uploadAll(b, agents, batches)
			return took, float64(tc.reqs.Load()-reqs) / n
		}
		plain, plainReqs := round(1, from) // no rules yet: what a batch costs without them
		if st := op(b, hp, admin, "PUT", "/v1/alert-rules", map[string]any{"source": rules}, nil); st != 200 {
			b.Fatalf("apply rules: %d", st)
		}
		fired, firedReqs := round(2, from.Add(5*time.Minute))
		var list struct{ Alerts []struct{ State string } }
		if st := op(b, hp, admin, "GET", "/v1/alerts", nil, &list); st != 200 || len(list.Alerts) != n {
			b.Fatalf("%d alerts after the first round (%d), want %d", len(list.Alerts), st, n)
		}
		steady, steadyReqs := round(3, from.Add(10*time.Minute))
		b.ReportMetric(plain.Seconds(), "s-1000-no-rules")
		b.ReportMetric(steady.Seconds(), "s-1000-settled")
		b.ReportMetric(steadyReqs-plainReqs, "extra-req/batch")
		b.ReportMetric(fired.Seconds(), "s-1000-firing")
		b.ReportMetric(firedReqs-plainReqs, "extra-req/firing-batch")
	}
}
