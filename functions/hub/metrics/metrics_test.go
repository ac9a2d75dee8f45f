package metrics_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/hub/metrics"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/signed"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/store/local"
)

// clock is a test clock rooms share.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// rig is a bucket seen through one hub key, and rooms on it.
type rig struct {
	t     *testing.T
	inner store.Store
	st    store.Store
	clk   *clock
}

func newRig(t *testing.T, at time.Time) *rig {
	inner, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	st, err := signed.Wrap(inner, &hubkey.Keys{Current: priv}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, inner: inner, st: st, clk: &clock{t: at}}
}

// room is one hub's metrics room on the rig's bucket (each has its own cache, as each hub does).
func (r *rig) room() *metrics.Service {
	s := &metrics.Service{Store: r.st}
	s.SetNow(r.clk.now)
	return s
}

// count is how many objects the bucket holds under prefix.
func (r *rig) count(prefix string) int {
	n := 0
	if err := store.Walk(context.Background(), r.inner, prefix, "", 0, func(store.ObjectInfo) error { n++; return nil }); err != nil {
		r.t.Fatal(err)
	}
	return n
}

// batch is seq of an agent sampling every 10 s over [from, from+span): gauge cpu = f(i) and counter
// bytes_total counting up by 100 a sample, for each label set.
func batch(seq uint64, from time.Time, span time.Duration, value func(i int) float64, mounts ...string) wire.MetricBatch {
	b := wire.MetricBatch{Seq: seq, From: from, To: from.Add(span), IntervalSeconds: 10}
	if len(mounts) == 0 {
		mounts = []string{"/"}
	}
	n := int(span / (10 * time.Second))
	for _, m := range mounts {
		g := wire.Series{Name: "node_cpu_ratio", Kind: wire.MetricGauge, Labels: map[string]string{"mountpoint": m}}
		c := wire.Series{Name: "node_network_receive_bytes_total", Kind: wire.MetricCounter, Labels: map[string]string{"mountpoint": m}}
		for i := range n {
			at := from.Add(time.Duration(i) * 10 * time.Second).UnixMilli()
			g.Points = append(g.Points, wire.Point{T: at, V: value(i)})
			c.Points = append(c.Points, wire.Point{T: at, V: float64(100 * (int(seq)*n + i))})
		}
		b.Series = append(b.Series, g, c)
	}
	return b
}

func gz(t *testing.T, v any) []byte {
	js, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(js)
	zw.Close()
	return buf.Bytes()
}

func (r *rig) ingest(s *metrics.Service, agent string, b wire.MetricBatch) {
	r.t.Helper()
	if _, err := s.Ingest(context.Background(), agent, "gzip", gz(r.t, b)); err != nil {
		r.t.Fatalf("ingest %d: %v", b.Seq, err)
	}
}

var h0 = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

// TestIngestStoresOnce: a batch is stored once, under its agent, hour and seq; uploaded again it is
// answered as stored and nothing more is written; another batch under the seq is a conflict; a batch
// across an hour is stored once per hour it touches.
func TestIngestStoresOnce(t *testing.T) {
	r := newRig(t, h0.Add(2*time.Hour))
	s := r.room()
	ctx := context.Background()
	b := batch(1, h0, 5*time.Minute, func(i int) float64 { return 0.5 })
	r.ingest(s, "a1", b)
	r.ingest(s, "a1", b)
	if n := r.count(layout.MetricsTier(layout.MetricsRaw)); n != 1 {
		t.Fatalf("raw objects after the same batch twice = %d, want 1", n)
	}
	other := batch(1, h0, 5*time.Minute, func(i int) float64 { return 0.7 })
	var de *domain.Error
	if _, err := s.Ingest(ctx, "a1", "gzip", gz(t, other)); !errors.As(err, &de) || de.Kind != domain.KindConflict || !strings.Contains(de.Msg, "seq") {
		t.Fatalf("another batch under seq 1: %v, want a conflict naming the seq", err)
	}
	r.ingest(s, "a1", batch(2, h0.Add(58*time.Minute), 5*time.Minute, func(i int) float64 { return 0.1 }))
	if n := r.count(layout.MetricsTier(layout.MetricsRaw)); n != 3 {
		t.Fatalf("raw objects after a batch across 11:00 = %d, want 3 (one per hour it touches)", n)
	}
	if _, err := s.Ingest(ctx, "a1", "", mustJSON(t, batch(3, h0.Add(10*time.Minute), time.Minute, func(int) float64 { return 1 }))); err != nil {
		t.Fatalf("plain JSON: %v", err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIngestRefusals: every batch the hub cannot keep is refused with a reason a person can act on,
// and nothing is stored.
func TestIngestRefusals(t *testing.T) {
	r := newRig(t, h0.Add(2*time.Hour))
	s := r.room()
	good := func() wire.MetricBatch { return batch(1, h0, time.Minute, func(int) float64 { return 1 }) }
	with := func(f func(*wire.MetricBatch)) []byte { b := good(); f(&b); return gz(t, b) }
	bomb := gz(t, map[string]any{"seq": 1, "pad": strings.Repeat("0", wire.MaxBatchBytes)})
	for _, tc := range []struct {
		name, encoding string
		body           []byte
		kind           domain.Kind
		want           string
	}{
		{"seq 0", "gzip", with(func(b *wire.MetricBatch) { b.Seq = 0 }), domain.KindInvalid, "seq counts from 1"},
		{"from after to", "gzip", with(func(b *wire.MetricBatch) { b.To = b.From }), domain.KindInvalid, "must be before"},
		{"a bad name", "gzip", with(func(b *wire.MetricBatch) { b.Series[0].Name = "cpu-usage" }), domain.KindInvalid, "not a Prometheus metric name"},
		{"a bad kind", "gzip", with(func(b *wire.MetricBatch) { b.Series[0].Kind = "histogram" }), domain.KindInvalid, "kind \"histogram\""},
		{"points out of order", "gzip", with(func(b *wire.MetricBatch) { p := b.Series[0].Points; p[0], p[1] = p[1], p[0] }), domain.KindInvalid, "out of time order"},
		{"a point outside", "gzip", with(func(b *wire.MetricBatch) { b.Series[0].Points[0].T = b.To.UnixMilli() }), domain.KindInvalid, "outside the batch"},
		{"interval 0", "gzip", with(func(b *wire.MetricBatch) { b.IntervalSeconds = 0 }), domain.KindInvalid, "intervalSeconds"},
		{"too old", "gzip", gz(t, batch(1, h0.Add(-30*time.Hour), time.Minute, func(int) float64 { return 1 })), domain.KindInvalid, "raw retention"},
		{"in the future", "gzip", gz(t, batch(1, h0.Add(3*time.Hour), time.Minute, func(int) float64 { return 1 })), domain.KindInvalid, "clock"},
		{"gzip that is not", "gzip", mustJSON(t, good()), domain.KindInvalid, "not gzip"},
		{"an unknown encoding", "br", gz(t, good()), domain.KindInvalid, "Content-Encoding \"br\""},
		{"not a batch", "", []byte(`{"seq": "one"}`), domain.KindInvalid, "not a metric batch"},
		{"unknown fields", "", []byte(`{"seq": 1, "sereis": []}`), domain.KindInvalid, "not a metric batch"},
		{"too large decompressed", "gzip", bomb, domain.KindTooLarge, "decompressed"},
		{"too large as sent", "", make([]byte, metrics.MaxCompressedBatch+1), domain.KindTooLarge, "as sent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Ingest(context.Background(), "a1", tc.encoding, tc.body)
			var de *domain.Error
			if !errors.As(err, &de) || de.Kind != tc.kind || !strings.Contains(de.Msg, tc.want) {
				t.Fatalf("got %v, want kind %d saying %q", err, tc.kind, tc.want)
			}
		})
	}
	if n := r.count(layout.Metrics); n != 0 {
		t.Errorf("%d objects stored by refused batches", n)
	}
}

// TestCompactMinuteTier: once an hour is complete (and the grace passed), its raw batches become one
// 1-minute object per agent with each minute's avg, min, max and count (and a counter's last), the
// raw batches go after their retention, and queries read the same figures from the tier.
func TestCompactMinuteTier(t *testing.T) {
	r := newRig(t, h0.Add(65*time.Minute))
	s := r.room()
	ctx := context.Background()
	// Minute m of the hour: samples 6m..6m+5 have values m*10 + 0..5: avg m*10+2.5, min m*10, max m*10+5.
	val := func(base int) func(int) float64 {
		return func(i int) float64 { return float64((base+i)/6*10 + (base+i)%6) }
	}
	for k := range 12 {
		r.ingest(s, "a1", batch(uint64(k+1), h0.Add(time.Duration(k)*5*time.Minute), 5*time.Minute, val(k*30)))
	}
	r.ingest(s, "a2", batch(1, h0, 5*time.Minute, val(0)))

	r.clk.set(h0.Add(90 * time.Minute)) // the hour ended, the grace has not passed
	if _, err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if n := r.count(layout.MetricsTier(layout.MetricsMinute)); n != 0 {
		t.Fatalf("compacted before the grace: %d objects", n)
	}
	r.clk.set(h0.Add(3*time.Hour + time.Minute))
	c, err := s.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.Written[layout.MetricsMinute] != 2 || r.count(layout.MetricsTier(layout.MetricsMinute)) != 2 {
		t.Fatalf("compaction %+v, %d objects; want one 1m object per agent", c, r.count(layout.MetricsTier(layout.MetricsMinute)))
	}
	if !exists(t, r.st, layout.MetricsDone(layout.MetricsMinute, h0)) {
		t.Error("no done marker for the hour")
	}

	// Two days on: raw deleted, 1m kept; a 3-hour range from then is answered from the 1m tier.
	r.clk.set(h0.Add(48 * time.Hour))
	if _, err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if n := r.count(layout.MetricsTier(layout.MetricsRaw)); n != 0 {
		t.Errorf("raw batches past the retention: %d left", n)
	}
	res, err := r.room().Range(ctx, metrics.Query{Agent: "a1", Name: "node_cpu_ratio", From: h0, To: h0.Add(time.Hour), Step: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if res.Tier != layout.MetricsMinute || len(res.Series) != 1 || len(res.Series[0].Points) != 60 {
		t.Fatalf("answer tier %s, %d series; want 1m with 60 points: %+v", res.Tier, len(res.Series), res)
	}
	for m, p := range res.Series[0].Points {
		want := metrics.ResultPoint{T: h0.Add(time.Duration(m) * time.Minute).UnixMilli(), Avg: float64(m*10) + 2.5, Min: float64(m * 10), Max: float64(m*10 + 5), Count: 6, Last: float64(m*10) + 2.5} // a compacted gauge's last is its last minute's average
		if p != want {
			t.Fatalf("minute %d = %+v, want %+v", m, p, want)
		}
	}
	hourly, err := r.room().Range(ctx, metrics.Query{Agent: "a1", Name: "node_network_receive_bytes_total", From: h0, To: h0.Add(time.Hour), Step: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if p := hourly.Series[0].Points; len(p) != 1 || p[0].Count != 360 || p[0].Last != float64(100*(12*30+29)) {
		t.Errorf("the hour of the counter = %+v; want 360 samples, last %d", p, 100*(12*30+29))
	}
}

func exists(t *testing.T, s store.Store, key string) bool {
	ok, err := store.Exists(context.Background(), s, key)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestObjectsPerAgentPerDay: a day of 5-minute uploads is 288 raw batches (while they last), 24
// 1-minute objects and one 1-hour object; after the raw retention only the compacted 25 stay.
func TestObjectsPerAgentPerDay(t *testing.T) {
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	r := newRig(t, day)
	s := r.room()
	for k := range 288 {
		at := day.Add(time.Duration(k) * 5 * time.Minute)
		r.clk.set(at.Add(5 * time.Minute))
		r.ingest(s, "a1", batch(uint64(k+1), at, 5*time.Minute, func(i int) float64 { return float64(i) }))
	}
	if n := r.count(layout.MetricsTier(layout.MetricsRaw)); n != 288 {
		t.Errorf("raw objects of a day = %d, want 288", n)
	}
	// The tick compacts as the hours pass; the day is compacted once its last hour is.
	for h := 3; h <= 50; h++ {
		r.clk.set(day.Add(time.Duration(h)*time.Hour + time.Minute))
		if _, err := s.Compact(context.Background()); err != nil {
			t.Fatal(err)
		}
		if h == 26 {
			if n := r.count(layout.MetricsTier(layout.MetricsHour)); n != 1 {
				t.Errorf("1h objects once the day's grace passed = %d, want 1", n)
			}
		}
	}
	for tier, want := range map[string]int{layout.MetricsRaw: 0, layout.MetricsMinute: 24, layout.MetricsHour: 1, layout.MetricsDay: 0} {
		if n := r.count(layout.MetricsTier(tier)); n != want {
			t.Errorf("%s objects = %d, want %d", tier, n, want)
		}
	}
	// The month ends: one 1d object per agent per month, built from the 1h tier.
	r.clk.set(time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC))
	if _, err := s.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := r.count(layout.MetricsTier(layout.MetricsDay)); n != 1 {
		t.Errorf("1d objects after the month = %d, want 1", n)
	}
	// 8 days on the 1m objects are gone; 91 the 1h.
	r.clk.set(day.Add(8 * 24 * time.Hour))
	s.Compact(context.Background())
	if n := r.count(layout.MetricsTier(layout.MetricsMinute)); n != 0 {
		t.Errorf("1m objects after 8 days = %d", n)
	}
	res, err := r.room().Range(context.Background(), metrics.Query{Agent: "a1", Name: "node_cpu_ratio", From: day, To: day.Add(24 * time.Hour), Step: time.Hour})
	if err != nil || res.Tier != layout.MetricsHour || len(res.Series) != 1 || len(res.Series[0].Points) != 24 {
		t.Fatalf("a day from the 1h tier: %+v %v", res, err)
	}
}

// TestTwoRoomsCompactOnce: two hubs compacting the same window at once write each agent's object
// once, with the same bytes either would have written.
func TestTwoRoomsCompactOnce(t *testing.T) {
	r := newRig(t, h0.Add(10*time.Minute))
	for _, a := range []string{"a1", "a2", "a3"} {
		r.ingest(r.room(), a, batch(1, h0, 5*time.Minute, func(i int) float64 { return float64(i) }))
	}
	r.clk.set(h0.Add(4 * time.Hour))
	var wg sync.WaitGroup
	results := make([]metrics.Compacted, 2)
	for i := range results {
		wg.Go(func() {
			c, err := r.room().Compact(context.Background())
			if err != nil {
				t.Error(err)
			}
			results[i] = c
		})
	}
	wg.Wait()
	written := results[0].Written[layout.MetricsMinute] + results[1].Written[layout.MetricsMinute]
	if written != 3 || r.count(layout.MetricsTier(layout.MetricsMinute)) != 3 {
		t.Errorf("two rooms wrote %d 1m objects (%+v), %d stored; want 3 written once", written, results, r.count(layout.MetricsTier(layout.MetricsMinute)))
	}
}

// TestQueryPicksTier: the finest tier that covers from and whose resolution is at most the step.
func TestQueryPicksTier(t *testing.T) {
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	r := newRig(t, now)
	s := r.room()
	for _, tc := range []struct {
		name     string
		span     time.Duration
		step     time.Duration
		tier     string
		stepUsed int64
	}{
		{"1 h, automatic step", time.Hour, 0, layout.MetricsRaw, 30},
		{"1 h at 1 m", time.Hour, time.Minute, layout.MetricsRaw, 60},
		{"24 h at 1 m", 24 * time.Hour, time.Minute, layout.MetricsRaw, 60},
		{"3 d, automatic step", 3 * 24 * time.Hour, 0, layout.MetricsMinute, 1800},
		{"3 d at 10 s: raised to 1 m", 3 * 24 * time.Hour, 10 * time.Second, layout.MetricsMinute, 60},
		{"60 d, automatic step", 60 * 24 * time.Hour, 0, layout.MetricsHour, 6 * 3600},
		{"60 d at 1 m: raised to 1 h", 60 * 24 * time.Hour, time.Minute, layout.MetricsHour, 3600},
		{"1 y", 365 * 24 * time.Hour, 24 * time.Hour, layout.MetricsDay, 86400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := s.Range(context.Background(), metrics.Query{Agent: "a1", Name: "node_cpu_ratio", From: now.Add(-tc.span), To: now, Step: tc.step})
			if err != nil {
				t.Fatal(err)
			}
			if res.Tier != tc.tier || res.StepSeconds != tc.stepUsed {
				t.Errorf("tier %s step %ds, want %s %ds", res.Tier, res.StepSeconds, tc.tier, tc.stepUsed)
			}
		})
	}
	if _, err := s.Range(context.Background(), metrics.Query{Agent: "a1", Name: "x", From: now.Add(-time.Hour), To: now.Add(30 * 24 * time.Hour), Step: time.Minute}); err == nil || !strings.Contains(err.Error(), "ask for a step of at least") {
		t.Errorf("a month at 1 m: %v, want a refusal naming the step that fits", err)
	}
}

// TestPlantedBatchNeverShows: a batch written into the bucket by someone without the hub's key fails
// the integrity check: no query, no compaction and no Latest sees it.
func TestPlantedBatchNeverShows(t *testing.T) {
	r := newRig(t, h0.Add(10*time.Minute))
	s := r.room()
	r.ingest(s, "a1", batch(1, h0, 5*time.Minute, func(int) float64 { return 1 }))
	planted := batch(2, h0.Add(5*time.Minute), time.Minute, func(int) float64 { return 1e9 })
	if _, err := store.PutBytes(context.Background(), r.inner, layout.MetricsRawBatch(h0, "a1", 2), gz(t, planted), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	check := func(res *metrics.Result) {
		t.Helper()
		for _, se := range res.Series {
			for _, p := range se.Points {
				if p.Max >= 1e9 {
					t.Fatalf("a planted sample shows in tier %s: %+v", res.Tier, p)
				}
			}
		}
	}
	res, err := s.Range(context.Background(), metrics.Query{Agent: "a1", Name: "node_cpu_ratio", From: h0, To: h0.Add(time.Hour), Step: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	check(res)
	latest, err := s.Latest(context.Background(), "a1")
	if err != nil || len(latest) != 2 || latest[0].T >= planted.From.UnixMilli() {
		t.Errorf("Latest = %+v, %v; want the genuine batch's last samples", latest, err)
	}
	r.clk.set(h0.Add(30 * time.Hour))
	if _, err := s.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	res, err = r.room().Range(context.Background(), metrics.Query{Agent: "a1", Name: "node_cpu_ratio", From: h0, To: h0.Add(time.Hour), Step: time.Minute})
	if err != nil || res.Tier != layout.MetricsMinute {
		t.Fatalf("%+v %v", res, err)
	}
	check(res)
}

// counted counts store requests.
type counted struct {
	store.Store
	n  int
	mu sync.Mutex
}

func (c *counted) add() { c.mu.Lock(); c.n++; c.mu.Unlock() }
func (c *counted) Get(ctx context.Context, k string, o store.GetOptions) (*store.Object, error) {
	c.add()
	return c.Store.Get(ctx, k, o)
}
func (c *counted) List(ctx context.Context, p, a string, l int) (store.Page, error) {
	c.add()
	return c.Store.List(ctx, p, a, l)
}

// TestIdleTickCostsNothing: once every due window is compacted, the minute's tick makes no store
// request until the next hour is due (retention is applied every 10 minutes).
func TestIdleTickCostsNothing(t *testing.T) {
	r := newRig(t, h0.Add(10*time.Minute))
	r.ingest(r.room(), "a1", batch(1, h0, 5*time.Minute, func(i int) float64 { return 1 }))
	c := &counted{Store: r.st}
	s := &metrics.Service{Store: c}
	s.SetNow(r.clk.now)
	r.clk.set(h0.Add(3*time.Hour + time.Minute))
	if _, err := s.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	for m := 1; m <= 5; m++ {
		before := c.n
		r.clk.set(h0.Add(3*time.Hour + time.Duration(m+1)*time.Minute))
		if _, err := s.Compact(context.Background()); err != nil {
			t.Fatal(err)
		}
		if c.n != before {
			t.Errorf("an idle tick %d min later made %d store requests", m, c.n-before)
		}
	}
}

// TestLateBatch: a batch that arrives after its hour was compacted is stored and answered from the
// raw tier, but the 1-minute object, written once, does not change (docs/metrics.md).
func TestLateBatch(t *testing.T) {
	r := newRig(t, h0.Add(10*time.Minute))
	s := r.room()
	r.ingest(s, "a1", batch(1, h0, 5*time.Minute, func(int) float64 { return 1 }))
	r.clk.set(h0.Add(3*time.Hour + time.Minute))
	if _, err := s.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.ingest(s, "a1", batch(2, h0.Add(5*time.Minute), 5*time.Minute, func(int) float64 { return 9 }))
	count := func(tier string) int64 {
		t.Helper()
		q := metrics.Query{Agent: "a1", Name: "node_cpu_ratio", From: h0, To: h0.Add(time.Hour), Step: time.Hour}
		if tier == layout.MetricsMinute {
			q.From = h0.Add(-48 * time.Hour) // older than raw keeps: the 1m tier
		}
		res, err := r.room().Range(context.Background(), q)
		if err != nil || res.Tier != tier {
			t.Fatalf("%+v %v, want tier %s", res, err, tier)
		}
		n := int64(0)
		for _, p := range res.Series[0].Points {
			n += p.Count
		}
		return n
	}
	if n := count(layout.MetricsRaw); n != 60 {
		t.Errorf("raw tier holds %d samples, want both batches' 60", n)
	}
	if n := count(layout.MetricsMinute); n != 30 {
		t.Errorf("1m tier holds %d samples, want the 30 compacted before the late batch", n)
	}
}
