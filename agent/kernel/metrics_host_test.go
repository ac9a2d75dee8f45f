package kernel

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/pulsehq/pulse/agent/integrations/host" // the real sampler, end to end
)

// TestHostMetricsEndToEnd runs an agent with the real host integration sampling this machine every
// second: the hub receives node_exporter-named series of it through the kernel's batches.
func TestHostMetricsEndToEnd(t *testing.T) {
	h := newFakeHub(t)
	cfg := testConfig(t, h, t.TempDir())
	cfg.Integrations = map[string]any{"host": map[string]any{"sample_every": "1s"}}
	cfg.MetricsUpload = 2 * time.Second
	ra := startAgent(t, cfg)
	eventually(t, 30*time.Second, func() bool {
		n, _ := h.metricPoints("node_cpu_seconds_total")
		return n >= 16 // eight modes, two samples
	}, "two samples of the host's CPU")
	ra.stop()
	for _, name := range []string{"node_load1", "node_memory_MemAvailable_bytes", "node_boot_time_seconds", "node_procs"} {
		if n, _ := h.metricPoints(name); n == 0 {
			t.Errorf("no %s at the hub", name)
		}
	}
	h.with(func() {
		if b := h.metricBatches[0]; b.IntervalSeconds != 1 {
			t.Errorf("intervalSeconds %d, want 1", b.IntervalSeconds)
		}
	})
}

// TestMeasureMetricsDiskWrites measures what the agent writes to its disk for metrics with the
// default settings (host sampled every 10 s, a batch every 5 minutes), over PULSE_MEASURE_METRICS
// (e.g. "10m30s"); it is skipped without it. PULSE_MEASURE_WATCH=10 measures while the hub asks for
// live metrics every 10 s. It reports the bytes of every batch file, the seq file,
// the write_bytes the kernel accounted to this process (page-granular, what reaches the block layer
// before the filesystem's journal), the series per sample and the batch sizes.
//
//	PULSE_MEASURE_METRICS=10m30s go test ./agent/kernel -run TestMeasureMetricsDiskWrites -v
func TestMeasureMetricsDiskWrites(t *testing.T) {
	span := os.Getenv("PULSE_MEASURE_METRICS")
	if span == "" {
		t.Skip("set PULSE_MEASURE_METRICS to a duration such as 10m30s to measure")
	}
	d, err := time.ParseDuration(span)
	if err != nil {
		t.Fatal(err)
	}
	h := newFakeHub(t)
	if w := os.Getenv("PULSE_MEASURE_WATCH"); w != "" { // seconds: measure while someone watches live
		n, err := strconv.Atoi(w)
		if err != nil {
			t.Fatal(err)
		}
		h.watchEvery = n
	}
	cfg := testConfig(t, h, t.TempDir())
	cfg.Logger = nil // info to stderr is not what is measured; keep the defaults otherwise
	cfg.Heartbeat = 0
	ra := startAgent(t, cfg)
	eventually(t, 10*time.Second, func() bool { return ra.a.ID() != "" }, "enrollment")
	time.Sleep(time.Second) // enrollment's writes are done
	start, io0 := time.Now(), procWriteBytes(t)
	time.Sleep(d)
	io1, elapsed := procWriteBytes(t), time.Since(start)
	ra.stop()

	var files []int // the batch files' sizes: what the hub received is what was written
	total := 0
	h.with(func() {
		for _, b := range h.metricBatches {
			if b.To.Before(start.Add(elapsed)) {
				files = append(files, h.metricBodies[b.Seq])
				total += h.metricBodies[b.Seq]
			}
		}
	})
	seqBytes := 0
	if data, err := os.ReadFile(cfg.StateDir + "/" + metricsDir + "/" + metricsSeqFile); err == nil {
		seqBytes = len(data)
	}
	h.with(func() {
		for _, b := range h.metricBatches {
			raw, _ := json.Marshal(b)
			var gz bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
			zw.Write(raw)
			zw.Close()
			points := 0 // gz: the same batch recompressed here, to check the agent's figure
			for _, s := range b.Series {
				points += len(s.Points)
			}
			t.Logf("batch %d: %s–%s, %d series, %d points, %d bytes JSON, %d bytes gzip as uploaded (%d recompressed)",
				b.Seq, b.From.Format(time.TimeOnly), b.To.Format(time.TimeOnly), len(b.Series), points, len(raw), h.metricBodies[b.Seq], gz.Len())
		}
	})
	perHour := func(n int) float64 { return float64(n) * float64(time.Hour) / float64(elapsed) }
	t.Logf("over %s: %d batches cut in the window, %d bytes compressed (+ %d-byte seq file rewritten with each): %.0f bytes/hour of file content; write_bytes %d (%.0f/hour, page-granular)",
		elapsed.Round(time.Second), len(files), total, seqBytes, perHour(total+len(files)*seqBytes), io1-io0, perHour(int(io1-io0)))
}

// procWriteBytes is this process's write_bytes from /proc/self/io: bytes it caused to be sent to the
// storage layer.
func procWriteBytes(t *testing.T) int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io: %v", err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Skip("no write_bytes in /proc/self/io")
	return 0
}
