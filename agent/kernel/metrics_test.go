package kernel

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

// testMetrics is a MetricSource that exists only in this package's tests: [test_metrics] every = "20ms",
// run = "<name>" makes it sample a counter test_samples_total{run} (1, 2, 3, … per instance) and a gauge,
// and count in sampled[run] every point it handed out, so a test can check that the hub got them all.
type testMetrics struct {
	every time.Duration
	run   string
	n     int
}

var sampled sync.Map // run -> *atomic.Int64

func init() {
	integration.Register(integration.Module{ID: "test_metrics", New: func() integration.Integration { return &testMetrics{} }})
}

func (m *testMetrics) Configure(raw map[string]any) error {
	var c struct {
		Every string `toml:"every"`
		Run   string `toml:"run"`
	}
	if err := integration.DecodeConfig(raw, &c); err != nil {
		return err
	}
	if c.Every != "" {
		d, err := time.ParseDuration(c.Every)
		if err != nil {
			return err
		}
		m.every = d
	}
	m.run = c.Run
	return nil
}
func (m *testMetrics) Enabled() bool              { return true }
func (m *testMetrics) SampleEvery() time.Duration { return m.every }
func (m *testMetrics) Sample(_ context.Context, now time.Time) ([]wire.Series, error) {
	m.n++
	c, _ := sampled.LoadOrStore(m.run, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
	ts := now.UnixMilli()
	return []wire.Series{
		{Name: "test_samples_total", Kind: wire.MetricCounter, Labels: map[string]string{"run": m.run}, Points: []wire.Point{{T: ts, V: float64(m.n)}}},
		{Name: "test_value_bytes", Kind: wire.MetricGauge, Labels: map[string]string{"run": m.run}, Points: []wire.Point{{T: ts, V: 42}}},
		{Name: "bad name", Kind: wire.MetricGauge, Points: []wire.Point{{T: ts, V: 1}}}, // left out by the kernel, logged once
	}, nil
}

// runName tells apart the runs of one test under -count.
func runName(t *testing.T) string {
	v, _ := runNames.LoadOrStore(t, fmt.Sprintf("%s-%d", t.Name(), runSeq.Add(1)))
	return v.(string)
}

var (
	runNames sync.Map // *testing.T -> name
	runSeq   atomic.Int64
)

func sampledPoints(run string) int {
	c, ok := sampled.Load(run)
	if !ok {
		return 0
	}
	return int(c.(*atomic.Int64).Load())
}

// syncBuffer collects an agent's logs for a test to read while the agent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// metricsConfig samples test_metrics every 20ms and uploads every 200ms; logs go to the test and to
// the returned buffer.
func metricsConfig(t *testing.T, h *fakeHub, dir string) (Config, *syncBuffer) {
	cfg := testConfig(t, h, dir)
	cfg.Integrations = map[string]any{"test_metrics": map[string]any{"every": "20ms", "run": runName(t)}}
	cfg.MetricsUpload = 200 * time.Millisecond
	logs := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(&teeWriter{logs, t.Output()}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return cfg, logs
}

type teeWriter struct {
	a, b interface{ Write([]byte) (int, error) }
}

func (w *teeWriter) Write(p []byte) (int, error) {
	w.a.Write(p)
	return w.b.Write(p)
}

func pending(t *testing.T, dir string) []string {
	t.Helper()
	names, err := batchFiles(filepath.Join(dir, metricsDir))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// checkAllArrived stops nothing; it asserts that the hub stored every point the source sampled, once,
// and that seqs are unique and were stored in increasing order.
func checkAllArrived(t *testing.T, h *fakeHub) []uint64 {
	t.Helper()
	var got int
	var seqs []uint64
	eventually(t, 20*time.Second, func() bool {
		got, seqs = h.metricPoints("test_samples_total")
		return got == sampledPoints(runName(t))
	}, "every sampled point at the hub")
	if got == 0 {
		t.Fatal("nothing sampled")
	}
	if !slices.IsSorted(seqs) || len(slices.Compact(slices.Clone(seqs))) != len(seqs) || seqs[0] < 1 {
		t.Fatalf("seqs stored %v: want unique, increasing, from 1", seqs)
	}
	return seqs
}

// TestMetricsUploadedCompressedAndValid runs an agent that samples a source for a while: the hub gets
// gzip-compressed, valid batches (the fake hub's handler checks encoding and wire.MetricBatch.Validate)
// covering their points, the series the hub would refuse is left out and logged once, the kernel's own
// series ride along, and after a graceful shutdown every sampled point has arrived.
func TestMetricsUploadedCompressedAndValid(t *testing.T) {
	h := newFakeHub(t)
	cfg, logs := metricsConfig(t, h, t.TempDir())
	ra := startAgent(t, cfg)
	eventually(t, 20*time.Second, func() bool {
		_, seqs := h.metricPoints("test_samples_total")
		return len(seqs) >= 3
	}, "three batches")
	ra.stop() // the last samples are flushed on the way out
	seqs := checkAllArrived(t, h)
	if seqs[0] != 1 {
		t.Fatalf("first seq %d, want 1", seqs[0])
	}
	h.with(func() {
		for _, b := range h.metricBatches {
			if b.IntervalSeconds != 1 { // 20ms rounds up to the 1s the contract allows at least
				t.Errorf("batch %d intervalSeconds %d", b.Seq, b.IntervalSeconds)
			}
			names := map[string]bool{}
			for _, s := range b.Series {
				names[s.Name] = true
				for _, p := range s.Points {
					if p.T < b.From.UnixMilli() || p.T >= b.To.UnixMilli() {
						t.Errorf("batch %d: point %d outside [%s, %s)", b.Seq, p.T, b.From, b.To)
					}
				}
			}
			for _, want := range []string{"pulse_agent_metrics_batches_dropped_total", "pulse_agent_metrics_batches_refused_total", "pulse_agent_metrics_outbox_bytes"} {
				if !names[want] {
					t.Errorf("batch %d lacks %s", b.Seq, want)
				}
			}
			if names["bad name"] {
				t.Errorf("batch %d carries a series the hub refuses", b.Seq)
			}
		}
	})
	if n := strings.Count(logs.String(), "a metric series the hub would refuse"); n != 1 {
		t.Errorf("the refused series was logged %d times, want once", n)
	}
	if p := pending(t, cfg.StateDir); len(p) != 0 {
		t.Errorf("outbox after a clean run: %v", p)
	}
}

// TestMetricsWaitOutHubOutageInOrder makes the hub answer 503 to metrics: batches stay in the outbox
// (several of them, not one ever-growing one), and once the hub is back they are uploaded oldest first
// and every point arrives.
func TestMetricsWaitOutHubOutageInOrder(t *testing.T) {
	h := newFakeHub(t)
	h.with(func() { h.failMetrics = true })
	cfg, _ := metricsConfig(t, h, t.TempDir())
	ra := startAgent(t, cfg)
	eventually(t, 20*time.Second, func() bool { return len(pending(t, cfg.StateDir)) >= 3 }, "three batches waiting in the outbox")
	h.with(func() {
		if len(h.metricBatches) != 0 {
			t.Errorf("batches stored while the hub failed: %d", len(h.metricBatches))
		}
		h.failMetrics = false
		h.metricPosts = nil
	})
	eventually(t, 20*time.Second, func() bool { return len(pending(t, cfg.StateDir)) == 0 }, "the outbox to drain")
	ra.stop()
	checkAllArrived(t, h)
	h.with(func() {
		if !slices.IsSorted(h.metricPosts) {
			t.Errorf("after the outage batches were posted out of order: %v", h.metricPosts)
		}
	})
}

// TestMetricsRestartUploadsOutboxAndContinuesSeq stops an agent while the hub refuses metrics with
// 503, so batches wait on disk; a new agent on the same state directory uploads them first and numbers
// its own batches after them: no seq is used twice, nothing is lost across the restart.
func TestMetricsRestartUploadsOutboxAndContinuesSeq(t *testing.T) {
	h := newFakeHub(t)
	h.with(func() { h.failMetrics = true })
	dir := t.TempDir()
	cfg, _ := metricsConfig(t, h, dir)
	ra := startAgent(t, cfg)
	eventually(t, 20*time.Second, func() bool { return len(pending(t, dir)) >= 2 }, "batches waiting in the outbox")
	ra.stop()
	left := pending(t, dir)
	last := seqOf(left[len(left)-1])

	h.with(func() { h.failMetrics = false })
	cfg.EnrollToken = ""
	ra2 := startAgent(t, cfg)
	eventually(t, 20*time.Second, func() bool {
		_, seqs := h.metricPoints("test_samples_total")
		return slices.ContainsFunc(seqs, func(s uint64) bool { return s > last })
	}, "a batch of the second run")
	ra2.stop()
	seqs := checkAllArrived(t, h)
	for _, name := range left {
		if !slices.Contains(seqs, seqOf(name)) {
			t.Errorf("batch %s left by the first run never arrived (stored %v)", name, seqs)
		}
	}
	h.with(func() {
		if h.metricPosts[0] != seqOf(left[0]) {
			t.Errorf("the second run first posted seq %d, want the oldest leftover %d", h.metricPosts[0], seqOf(left[0]))
		}
	})
}

// TestMetricsRefusedBatchIsKeptNotRetried makes the hub refuse metrics with 422: each batch is posted
// once, logged with the hub's reason, and kept in metrics/refused/ beside its reason; it blocks nothing,
// and the batches after the hub relents are stored.
func TestMetricsRefusedBatchIsKeptNotRetried(t *testing.T) {
	h := newFakeHub(t)
	h.with(func() { h.refuseMetrics = 422 })
	dir := t.TempDir()
	cfg, logs := metricsConfig(t, h, dir)
	ra := startAgent(t, cfg)
	refusedDir := filepath.Join(dir, metricsDir, metricsRefusedDir)
	eventually(t, 20*time.Second, func() bool {
		names, _ := batchFiles(refusedDir)
		return len(names) >= 3
	}, "three refused batches")
	h.with(func() { h.refuseMetrics = 0 })
	eventually(t, 20*time.Second, func() bool {
		_, seqs := h.metricPoints("test_samples_total")
		return len(seqs) >= 1
	}, "a batch stored after the refusals")
	ra.stop()

	names, _ := batchFiles(refusedDir)
	h.with(func() {
		for _, n := range names {
			if c := countOf(h.metricPosts, seqOf(n)); c != 1 {
				t.Errorf("refused batch %s posted %d times, want once", n, c)
			}
		}
	})
	reason, err := os.ReadFile(filepath.Join(refusedDir, strings.TrimSuffix(names[0], batchExt)+".reason"))
	want := fmt.Sprintf("batch %d refused by the test hub", seqOf(names[0]))
	if err != nil || !strings.Contains(string(reason), want) || !strings.Contains(string(reason), "422") {
		t.Fatalf("reason file %q (%v), want it to say %q", reason, err, want)
	}
	if !strings.Contains(logs.String(), "the hub refused a metric batch") || !strings.Contains(logs.String(), want) {
		t.Fatalf("the refusal was not logged with the hub's reason")
	}
}

func countOf(s []uint64, v uint64) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

// TestMetricsOutboxBoundDropsOldestWithWarning bounds the outbox to less than two batches while the
// hub fails: the oldest batches are dropped (logged, counted), the newest always kept, and the count
// reaches the hub in pulse_agent_metrics_batches_dropped_total when it is back.
func TestMetricsOutboxBoundDropsOldestWithWarning(t *testing.T) {
	h := newFakeHub(t)
	h.with(func() { h.failMetrics = true })
	dir := t.TempDir()
	cfg, logs := metricsConfig(t, h, dir)
	cfg.MetricsOutboxBytes = 1 // every batch is larger: only the newest is kept
	ra := startAgent(t, cfg)
	eventually(t, 20*time.Second, func() bool {
		return strings.Count(logs.String(), "metrics outbox full: dropped the oldest batch") >= 3
	}, "three drops")
	if p := pending(t, dir); len(p) > 2 { // the newest, and at most one written between two looks
		t.Fatalf("outbox holds %v beyond its bound", p)
	}
	h.with(func() { h.failMetrics = false })
	eventually(t, 20*time.Second, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, b := range h.metricBatches {
			for _, s := range b.Series {
				if s.Name == "pulse_agent_metrics_batches_dropped_total" && s.Points[0].V >= 3 {
					return true
				}
			}
		}
		return false
	}, "the drop count at the hub")
	ra.stop()
}

// TestMetricsLiveWatchUploadsSooner sets an upload interval of an hour: while the hub's poll answers
// carry MetricsEverySeconds, batches arrive anyway; when it stops asking, the agent says so.
func TestMetricsLiveWatchUploadsSooner(t *testing.T) {
	h := newFakeHub(t)
	cfg, logs := metricsConfig(t, h, t.TempDir())
	cfg.MetricsUpload = time.Hour
	h.with(func() { h.watchEvery = 1 })
	ra := startAgent(t, cfg)
	eventually(t, 30*time.Second, func() bool {
		_, seqs := h.metricPoints("test_samples_total")
		return len(seqs) >= 2
	}, "two batches within the hour, at the hub's request")
	if ra.a.metrics.directs.Load() == 0 {
		t.Error("no live batch went to the hub straight from memory")
	}
	h.with(func() { h.watchEvery = 0 })
	eventually(t, 30*time.Second, func() bool { return strings.Contains(logs.String(), "live metrics ended") }, "the watch to end")
	ra.stop()
	checkAllArrived(t, h)
}

func TestParseMetricsUpload(t *testing.T) {
	for _, tc := range []struct {
		value   string
		want    time.Duration
		problem string
	}{
		{`"5m"`, 5 * time.Minute, ""},
		{`"30s"`, 30 * time.Second, ""},
		{`"100ms"`, 0, "from 1s to 1h"},
		{`"2h"`, 0, "from 1s to 1h"},
		{`"later"`, 0, "from 1s to 1h"},
		{`300`, 0, "want a string"},
	} {
		c := ParseConfig([]byte("[agent]\nmetrics_upload = " + tc.value + "\n"))
		if c.MetricsUpload != tc.want || (tc.problem == "") != (len(c.Problems) == 0) || (tc.problem != "" && !strings.Contains(c.Problems[0], tc.problem)) {
			t.Errorf("metrics_upload = %s: %v, problems %v", tc.value, c.MetricsUpload, c.Problems)
		}
	}
	var c Config
	c.setDefaults()
	if c.MetricsUpload != 5*time.Minute || c.MetricsOutboxBytes != DefaultMetricsOutboxBytes {
		t.Fatalf("defaults: upload %s, outbox %d", c.MetricsUpload, c.MetricsOutboxBytes)
	}
}

// TestMetricsSeqNeverReused checks where a restarted agent continues numbering: after the seq file,
// after a batch file numbered higher (written, then the seq file lost), and above the current Unix time
// when the seq file is corrupt, so no number is handed out twice.
func TestMetricsSeqNeverReused(t *testing.T) {
	now := time.Unix(1_764_000_000, 0)
	for _, tc := range []struct {
		name    string
		seqFile string // "" none
		files   []string
		want    uint64
	}{
		{"fresh", "", nil, 0},
		{"seq file", "41\n", nil, 41},
		{"waiting batch above it", "41\n", []string{batchName(40), batchName(43)}, 43},
		{"refused batch above it", "7\n", []string{metricsRefusedDir + "/" + batchName(9)}, 9},
		{"corrupt", "4x\n", []string{batchName(3)}, uint64(now.Unix())},
		{"record", string(seqRecord(1234)), nil, 1234},
		{"torn record", strings.Replace(string(seqRecord(1234)), "1234", "1200", 1), nil, uint64(now.Unix())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.MkdirAll(filepath.Join(dir, metricsRefusedDir), 0o700)
			if tc.seqFile != "" {
				os.WriteFile(filepath.Join(dir, metricsSeqFile), []byte(tc.seqFile), 0o600)
			}
			for _, f := range tc.files {
				os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600)
			}
			m := &metrics{dir: dir, log: slog.New(slog.DiscardHandler), now: func() time.Time { return now }}
			got, err := m.lastSeq()
			if err != nil || got != tc.want {
				t.Fatalf("lastSeq = %d, %v; want %d", got, err, tc.want)
			}
			// Numbers stored afterwards, first by creating the file and then in place, read back.
			m.seqf.path = filepath.Join(dir, metricsSeqFile)
			defer m.seqf.close()
			for _, n := range []uint64{got + 1, got + 2, got + 1000} {
				if err := m.seqf.store(n); err != nil {
					t.Fatal(err)
				}
				if back, err := m.lastSeq(); err != nil || back < n {
					t.Fatalf("after storing %d: lastSeq %d, %v", n, back, err)
				}
			}
		})
	}
}

// TestMetricsWaitForAHubWithoutTheRoute: a hub older than POST metrics answers 404. The batches wait
// (they are not refused), the agent says so once, and they all arrive once the hub takes them.
func TestMetricsWaitForAHubWithoutTheRoute(t *testing.T) {
	h := newFakeHub(t)
	h.with(func() { h.refuseMetrics = 404 })
	dir := t.TempDir()
	cfg, logs := metricsConfig(t, h, dir)
	ra := startAgent(t, cfg)
	eventually(t, 20*time.Second, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(pending(t, dir)) >= 2 && len(h.metricPosts) >= 3
	}, "batches waiting after several 404s")
	if names, _ := batchFiles(filepath.Join(dir, metricsDir, metricsRefusedDir)); len(names) != 0 {
		t.Fatalf("404 refused batches for good: %v", names)
	}
	if n := strings.Count(logs.String(), "the hub does not take metrics"); n != 1 {
		t.Fatalf("the missing route was logged %d times, want once", n)
	}
	h.with(func() { h.refuseMetrics = 0 })
	eventually(t, 20*time.Second, func() bool { return len(pending(t, dir)) == 0 }, "the outbox to drain")
	ra.stop()
	checkAllArrived(t, h)
}

// TestMetricsOversizeBatchIsSplit: a batch whose JSON would exceed wire.MaxBatchBytes (many series with
// long labels) is written as several batches, each valid and within the bound, with consecutive seqs.
func TestMetricsOversizeBatchIsSplit(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, metricsRefusedDir), 0o700)
	m := &metrics{dir: dir, log: slog.New(slog.DiscardHandler), now: time.Now, outboxBytes: DefaultMetricsOutboxBytes}
	m.seqf.path = filepath.Join(dir, metricsSeqFile)
	defer m.seqf.close()
	from := time.Now().Truncate(time.Second)
	b := &wire.MetricBatch{From: from, To: from.Add(time.Hour), IntervalSeconds: 10}
	long := strings.Repeat("x", 190)
	points := 0
	for i := range wire.MaxBatchSeries {
		labels := map[string]string{}
		for j := range wire.MaxMetricLabels {
			labels[fmt.Sprintf("l%d", j)] = fmt.Sprintf("%s%04d", long, i)
		}
		s := wire.Series{Name: "test_big_bytes", Kind: wire.MetricGauge, Labels: labels}
		for k := range 100 { // 2000 × 100 = wire.MaxBatchPoints
			s.Points = append(s.Points, wire.Point{T: from.Add(time.Duration(k) * 10 * time.Second).UnixMilli(), V: float64(k) + 0.123456789})
			points++
		}
		b.Series = append(b.Series, s)
	}
	if err := m.write(b, false); err != nil {
		t.Fatal(err)
	}
	names, _ := batchFiles(dir)
	if len(names) < 2 {
		t.Fatalf("%d batch files, want the batch split", len(names))
	}
	got := 0
	for i, n := range names {
		if seqOf(n) != uint64(i+1) {
			t.Errorf("file %s, want seq %d", n, i+1)
		}
		data, _ := os.ReadFile(filepath.Join(dir, n))
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(zr)
		var part wire.MetricBatch
		if err := json.Unmarshal(raw, &part); err != nil {
			t.Fatal(err)
		}
		if len(raw) > wire.MaxBatchBytes || part.Validate() != nil {
			t.Errorf("%s: %d bytes, %v", n, len(raw), part.Validate())
		}
		for _, s := range part.Series {
			got += len(s.Points)
		}
	}
	if got != points {
		t.Fatalf("%d points in the parts, want %d", got, points)
	}
}

// TestMetricsLiveBatchesFallBackToTheOutbox: while watched, a batch the hub does not take goes to the
// outbox like any other, and arrives, in order, when the hub is back.
func TestMetricsLiveBatchesFallBackToTheOutbox(t *testing.T) {
	h := newFakeHub(t)
	dir := t.TempDir()
	cfg, _ := metricsConfig(t, h, dir)
	cfg.MetricsUpload = time.Hour
	h.with(func() { h.watchEvery, h.failMetrics = 1, true })
	ra := startAgent(t, cfg)
	eventually(t, 30*time.Second, func() bool { return len(pending(t, dir)) >= 2 }, "live batches waiting in the outbox")
	h.with(func() { h.failMetrics, h.metricPosts = false, nil })
	eventually(t, 30*time.Second, func() bool { return len(pending(t, dir)) == 0 }, "the outbox to drain")
	ra.stop()
	checkAllArrived(t, h)
	h.with(func() {
		if !slices.IsSorted(h.metricPosts) {
			t.Errorf("posted out of order: %v", h.metricPosts)
		}
	})
}
