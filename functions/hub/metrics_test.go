package hub_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/integration-tests/simagent"
)

// metricBatch is seq of an agent over the 5 minutes from from: a cpu gauge per cpu that is i/100
// at sample i.
func metricBatch(seq uint64, from time.Time, cpus ...string) wire.MetricBatch {
	b := wire.MetricBatch{Seq: seq, From: from, To: from.Add(5 * time.Minute), IntervalSeconds: 10}
	for _, c := range cpus {
		s := wire.Series{Name: "node_cpu_usage_ratio", Kind: wire.MetricGauge, Labels: map[string]string{"cpu": c}}
		for i := range 30 {
			s.Points = append(s.Points, wire.Point{T: from.Add(time.Duration(i) * 10 * time.Second).UnixMilli(), V: float64(i) / 100})
		}
		b.Series = append(b.Series, s)
	}
	return b
}

func gzipJSON(v any) []byte {
	js, _ := json.Marshal(v)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(js)
	zw.Close()
	return buf.Bytes()
}

// status is the HTTP status of an agent request's error (204 for none).
func status(err error) (int, string) {
	var he *simagent.HTTPError
	if errors.As(err, &he) {
		return he.Status, he.Body
	}
	if err != nil {
		return -1, err.Error()
	}
	return 204, ""
}

// metricsQuery is the answer of GET /v1/agents/{id}/metrics.
type metricsQuery struct {
	Tier        string
	StepSeconds int64
	Series      []struct {
		Name   string
		Labels map[string]string
		Points []struct {
			T             int64
			Avg, Min, Max float64
			Count         int64
		}
	}
	Detail string
}

// TestMetricsUpload: an agent's signed gzip batch is answered 204 and stored as one object; the same
// batch again is stored once; another under the same seq is a 409; every batch the hub cannot keep is
// refused (422 or 413) with the reason, and stores nothing.
func TestMetricsUpload(t *testing.T) {
	th := newTestHub(t)
	a := th.agent("box", nil, nil)
	ctx := context.Background()
	from := time.Now().UTC().Truncate(5 * time.Minute).Add(-10 * time.Minute)
	good := metricBatch(1, from, "0", "1")
	for range 2 {
		if st, body := status(a.UploadMetrics(ctx, good)); st != 204 {
			t.Fatalf("upload: %d %s", st, body)
		}
	}
	if keys := th.stored(layout.MetricsTier(layout.MetricsRaw)); len(keys) != 1 || !strings.Contains(keys[0], a.ID) {
		t.Fatalf("stored after the same batch twice: %v, want one object of the agent", keys)
	}
	other := metricBatch(1, from, "0")
	if st, body := status(a.UploadMetrics(ctx, other)); st != 409 || !strings.Contains(body, "seq") {
		t.Errorf("another batch under seq 1: %d %s, want 409 naming the seq", st, body)
	}

	bad := func(f func(*wire.MetricBatch)) []byte { b := metricBatch(2, from, "0"); f(&b); return gzipJSON(b) }
	for _, tc := range []struct {
		name, encoding string
		body           []byte
		status         int
		want           string
	}{
		{"seq 0", "gzip", bad(func(b *wire.MetricBatch) { b.Seq = 0 }), 422, "seq counts from 1"},
		{"no time range", "gzip", bad(func(b *wire.MetricBatch) { b.To = b.From }), 422, "must be before"},
		{"longer than a day", "gzip", bad(func(b *wire.MetricBatch) { b.From = b.To.Add(-25 * time.Hour) }), 422, "at most 24h"},
		{"interval 0", "gzip", bad(func(b *wire.MetricBatch) { b.IntervalSeconds = 0 }), 422, "intervalSeconds"},
		{"a bad name", "gzip", bad(func(b *wire.MetricBatch) { b.Series[0].Name = "cpu usage" }), 422, "not a Prometheus metric name"},
		{"a bad kind", "gzip", bad(func(b *wire.MetricBatch) { b.Series[0].Kind = "summary" }), 422, "gauge or counter"},
		{"a bad label", "gzip", bad(func(b *wire.MetricBatch) { b.Series[0].Labels = map[string]string{"a-b": "x"} }), 422, "label"},
		{"out of order", "gzip", bad(func(b *wire.MetricBatch) { p := b.Series[0].Points; p[3], p[4] = p[4], p[3] }), 422, "out of time order"},
		{"a point outside", "gzip", bad(func(b *wire.MetricBatch) { b.Series[0].Points[29].T = b.To.UnixMilli() + 1 }), 422, "outside the batch"},
		{"too many series", "gzip", bad(func(b *wire.MetricBatch) {
			for i := range wire.MaxBatchSeries {
				b.Series = append(b.Series, wire.Series{Name: fmt.Sprintf("m%d", i), Kind: wire.MetricGauge})
			}
		}), 422, "series, at most"},
		{"said gzip, is not", "gzip", []byte(`{"seq":2}`), 422, "not gzip"},
		{"an encoding the hub does not speak", "br", gzipJSON(metricBatch(2, from, "0")), 422, "send gzip"},
		{"not JSON", "", []byte("cpu 0.5"), 422, "not a metric batch"},
		{"too large decompressed", "gzip", gzipJSON(map[string]string{"pad": strings.Repeat(" ", wire.MaxBatchBytes)}), 413, "decompressed"},
		{"too large as sent", "", bytes.Repeat([]byte(" "), 4<<20+10), 413, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, body := status(a.UploadMetricsBody(ctx, tc.encoding, tc.body))
			if st != tc.status || !strings.Contains(body, tc.want) || !strings.Contains(body, `"status"`) {
				t.Errorf("got %d %s, want %d (a problem) saying %q", st, body, tc.status, tc.want)
			}
		})
	}
	if keys := th.stored(layout.Metrics); len(keys) != 1 {
		t.Errorf("refused batches stored objects: %v", keys)
	}
}

// TestMetricsQuery: a viewer reads an agent's series by agent name, filtered by label, in 1-minute
// buckets from the raw tier; a batch planted in the bucket never shows; someone without a role may
// not read; the series list names what the agent sends.
func TestMetricsQuery(t *testing.T) {
	th := newTestHub(t)
	a := th.agent("web1", nil, nil)
	ctx := context.Background()
	from := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	for k := range 3 {
		if st, body := status(a.UploadMetrics(ctx, metricBatch(uint64(k+1), from.Add(time.Duration(k)*5*time.Minute), "0", "1"))); st != 204 {
			t.Fatalf("upload: %d %s", st, body)
		}
	}
	planted := metricBatch(9, from.Add(20*time.Minute), "0")
	planted.Series[0].Points[0].V = 1e6
	if _, err := store.PutBytes(ctx, th.bucket(), layout.MetricsRawBatch(from, a.ID, 9), gzipJSON(planted), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	viewer := th.token("vera", "viewer")
	q := url.Values{"name": {"node_cpu_usage_ratio"}, "from": {from.Format(time.RFC3339)}, "to": {from.Add(time.Hour).Format(time.RFC3339)}, "step": {"1m"}, "label": {"cpu=1"}}
	var out metricsQuery
	if st := th.call(viewer, "GET", "/v1/agents/web1/metrics?"+q.Encode(), nil, &out); st != 200 {
		t.Fatalf("query: %d %s", st, out.Detail)
	}
	if out.Tier != "raw" || out.StepSeconds != 60 || len(out.Series) != 1 || out.Series[0].Labels["cpu"] != "1" || len(out.Series[0].Points) != 15 {
		t.Fatalf("answer: %+v; want raw at 60 s, cpu 1 only, 15 minutes", out)
	}
	p := out.Series[0].Points[0]
	if p.Count != 6 || p.Min != 0 || p.Max != 0.05 || fmt.Sprintf("%.3f", p.Avg) != "0.025" {
		t.Errorf("first minute %+v; want 6 samples 0 … 0.05", p)
	}
	q.Del("label")
	if th.call(viewer, "GET", "/v1/agents/"+a.ID+"/metrics?"+q.Encode(), nil, &out); len(out.Series) != 2 {
		t.Fatalf("without a label: %d series, want 2", len(out.Series))
	}
	for _, s := range out.Series {
		for _, p := range s.Points {
			if p.Max >= 1e6 {
				t.Fatalf("a planted sample shows: %+v", p)
			}
		}
	}
	var names struct {
		Series []struct {
			Name   string
			Labels map[string]string
			T      int64
		}
	}
	if st := th.call(viewer, "GET", "/v1/agents/web1/metrics/names", nil, &names); st != 200 || len(names.Series) != 2 || names.Series[0].Name != "node_cpu_usage_ratio" {
		t.Errorf("names: %d %+v", st, names)
	}
	for _, tc := range []struct {
		name, token, query string
		status             int
		want               string
	}{
		{"no role", th.token("gus", "guests"), q.Encode(), 403, ""},
		{"unknown agent", viewer, q.Encode(), 404, "no agent"},
		{"no name", viewer, "from=6h", 422, "name"},
		{"a bad step", viewer, "name=x&step=fast", 422, "step"},
		{"a bad from", viewer, "name=x&from=yesterday", 422, "RFC 3339"},
		{"a bad label", viewer, "name=x&label=cpu", 422, "name=value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/v1/agents/web1/metrics?" + tc.query
			if tc.name == "unknown agent" {
				path = "/v1/agents/nobody/metrics?" + tc.query
			}
			var prob struct {
				Detail string
				Errors []struct{ Message, Location string }
			}
			st := th.call(tc.token, "GET", path, nil, &prob)
			said := fmt.Sprint(prob.Detail, prob.Errors)
			if st != tc.status || !strings.Contains(said, tc.want) {
				t.Errorf("%d %q, want %d saying %q", st, said, tc.status, tc.want)
			}
		})
	}
}

// TestLiveWatch: a query with live=true at one hub instance answers, within about a second, the poll
// the agent holds at another instance with a request to upload every 10 s, and every poll answer
// carries it; an agent nobody watches is not asked. A watch renewed soon after costs no bell write.
func TestLiveWatch(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	url := "file:" + t.TempDir()
	one, other := startTestHub(t, url, priv, nil), startTestHub(t, url, priv, nil)
	ctx := context.Background()
	a := one.agent("web-1", nil, nil)
	b := one.agent("web-2", nil, nil)
	a.Hub, b.Hub = other.url, other.url
	type answer struct {
		resp wire.PollResponse
		took time.Duration
		err  error
	}
	poll := func(ag *simagent.Agent) <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			start := time.Now()
			_, resp, err := ag.Poll(ctx, nil)
			ch <- answer{resp, time.Since(start), err}
		}()
		return ch
	}
	// Both hold their polls (2 s) at the other instance; the watch is asked of the first.
	first, second := poll(a), poll(b)
	time.Sleep(300 * time.Millisecond)
	var m metricsQuery
	if st := one.call(one.admin, "GET", "/v1/agents/"+a.ID+"/metrics?name=node_load1&live=true", nil, &m); st != 200 {
		t.Fatalf("live query: %d %+v", st, m)
	}
	got := <-first
	if got.err != nil || got.resp.MetricsEverySeconds != 10 {
		t.Fatalf("the watched agent's poll: %+v", got)
	}
	if got := <-second; got.err != nil || got.resp.MetricsEverySeconds != 0 {
		t.Fatalf("an agent nobody watches: %+v", got)
	}
	if _, resp, err := a.Poll(ctx, nil); err != nil || resp.MetricsEverySeconds != 10 {
		t.Fatalf("the next poll: %+v %v", resp, err)
	}
	bells := len(one.stored(layout.Bells))
	if st := one.call(one.admin, "GET", "/v1/agents/"+a.ID+"/metrics?name=node_load1&live=true", nil, &m); st != 200 {
		t.Fatalf("live query again: %d", st)
	}
	if n := len(one.stored(layout.Bells)); n != bells {
		t.Fatalf("a watch renewed at once wrote %d bells more", n-bells)
	}
}
