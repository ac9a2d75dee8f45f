// Package metrics is the room of agents' metrics (DESIGN.md §11): it stores the batches agents upload
// write-once, compacts them from the tick into tiers (1 min, 1 h, 1 d, each with avg, min, max and
// count), deletes each tier after its retention, and answers range queries from the finest tier that
// covers the range. There is no database: every object is written once under a key that
// functions/layout builds, and two hubs compacting the same window write the same bytes to the same
// key, create-only, so it is written once (docs/metrics.md has the keys, the schedule and the costs).
//
// Every object goes through the hub's integrity check like everything the hub keeps, so a batch
// planted in the bucket reads as missing and never shows in a query.
package metrics

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
)

// MaxCompressedBatch bounds the body of an upload as it travels (gzip). It stays below
// store.MaxCreateOnlySize, because a batch is stored create-only and create-only writes must stay
// single-part; wire.MaxBatchBytes bounds it decompressed.
const MaxCompressedBatch = 4 << 20

// Retention is how long each tier is kept, and when a window is compacted.
type Retention struct {
	Raw    time.Duration
	Minute time.Duration
	Hour   time.Duration
	Day    time.Duration
	// Grace is how long after a window ends the tick waits for late batches before compacting it.
	// Ranges of the last Raw are answered from raw batches, so a long grace costs only the queries
	// of older ranges that reach into windows not yet compacted (they are read from the finer tier).
	Grace time.Duration
}

// DefaultRetention is the issue's: raw 24 h, 1 min 7 d, 1 h 90 d, 1 d 2 years; windows compacted 2 h
// after they end.
var DefaultRetention = Retention{Raw: 24 * time.Hour, Minute: 7 * 24 * time.Hour, Hour: 90 * 24 * time.Hour,
	Day: 2 * 365 * 24 * time.Hour, Grace: 2 * time.Hour}

// Service keeps agents' metrics.
type Service struct {
	Store store.Store
	Log   *slog.Logger
	// Retention is how long each tier is kept (zero fields: DefaultRetention's).
	Retention Retention

	// clock replaces time.Now when set (SetNow).
	clock atomic.Pointer[func() time.Time]

	cache   objCache
	lists   listCache
	tickMu  sync.Mutex
	nextRun time.Time
	// done are the windows this process knows compacted, by done-marker key.
	doneMu     sync.Mutex
	done       map[string]bool
	lastExpire time.Time
}

// SetNow sets the clock the room compacts, expires, ingests and queries by (nil: time.Now), so tests
// can move through days; safe while the hub's tick runs.
func (s *Service) SetNow(now func() time.Time) {
	if now == nil {
		s.clock.Store(nil)
		return
	}
	s.clock.Store(&now)
}

func (s *Service) now() time.Time {
	if f := s.clock.Load(); f != nil {
		return (*f)().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Service) retention() Retention {
	r, d := s.Retention, DefaultRetention
	if r.Raw <= 0 {
		r.Raw = d.Raw
	}
	if r.Minute <= 0 {
		r.Minute = d.Minute
	}
	if r.Hour <= 0 {
		r.Hour = d.Hour
	}
	if r.Day <= 0 {
		r.Day = d.Day
	}
	if r.Grace <= 0 {
		r.Grace = d.Grace
	}
	return r
}

// maxFuture is how far ahead of the hub's clock a batch may end (the agents' clocks are within two
// minutes of the hub's, or their signatures are refused).
const maxFuture = 5 * time.Minute

// Ingest stores an agent's batch as uploaded: body is the JSON of a wire.MetricBatch, gzip-compressed
// when encoding is "gzip". The batch is stored write-once, once per hour it touches (usually one),
// gzip-compressed, under its agent, hour and seq: the same batch uploaded again is stored once and
// answered as stored; another batch under a seq already used is a conflict. A batch that cannot be
// read or that Validate refuses is invalid input, with the reason; one older than the raw retention
// too, since it would be deleted before it could be compacted. One PUT per hour touched (a GET more
// when the key is taken). It returns the batch stored, for the alerts room to evaluate.
func (s *Service) Ingest(ctx context.Context, agent, encoding string, body []byte) (*wire.MetricBatch, error) {
	if len(body) > MaxCompressedBatch {
		return nil, domain.TooLarge("the batch is %d bytes as sent, at most %d: upload smaller batches (more often)", len(body), MaxCompressedBatch)
	}
	var raw []byte
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, &domain.Error{Kind: domain.KindInvalid, Field: "header.Content-Encoding", Msg: "Content-Encoding says gzip but the body is not gzip data: " + err.Error()}
		}
		raw, err = io.ReadAll(io.LimitReader(zr, wire.MaxBatchBytes+1))
		if err != nil {
			return nil, &domain.Error{Kind: domain.KindInvalid, Field: "body", Msg: "the gzip body is damaged: " + err.Error()}
		}
	case "", "identity":
		raw = body
	default:
		return nil, &domain.Error{Kind: domain.KindInvalid, Field: "header.Content-Encoding",
			Msg: fmt.Sprintf("Content-Encoding %q: send gzip (or no Content-Encoding for plain JSON)", encoding)}
	}
	if len(raw) > wire.MaxBatchBytes {
		return nil, domain.TooLarge("the batch is more than %d bytes decompressed: upload smaller batches (more often)", wire.MaxBatchBytes)
	}
	var b wire.MetricBatch
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, &domain.Error{Kind: domain.KindInvalid, Field: "body", Msg: "the body is not a metric batch (JSON of wire.MetricBatch): " + err.Error()}
	}
	if err := b.Validate(); err != nil {
		return nil, &domain.Error{Kind: domain.KindInvalid, Field: "body", Msg: err.Error(), Err: err}
	}
	now, ret := s.now(), s.retention()
	switch {
	case b.To.After(now.Add(maxFuture)):
		return nil, &domain.Error{Kind: domain.KindInvalid, Field: "body.to", Msg: fmt.Sprintf("the batch ends at %s, after the hub's clock (%s): check the agent's clock", b.To.UTC().Format(time.RFC3339), now.Format(time.RFC3339))}
	case b.To.Before(now.Add(-ret.Raw)):
		return nil, &domain.Error{Kind: domain.KindInvalid, Field: "body.to", Msg: fmt.Sprintf("the batch ended at %s, more than the raw retention (%s) ago: the hub keeps no batch that old; drop it", b.To.UTC().Format(time.RFC3339), ret.Raw)}
	}
	for _, part := range splitByHour(b) {
		if err := s.storePart(ctx, agent, part); err != nil {
			return nil, err
		}
	}
	return &b, nil
}

// rawPart is the points of a batch in one hour.
type rawPart struct {
	hour  time.Time
	batch wire.MetricBatch
}

// splitByHour cuts a batch at hour boundaries: the part of each hour it touches holds that hour's
// points (a part with no points is still stored, so a re-upload finds every part, and the batch's
// seq is taken in every hour it spans). Deterministic, so
// a batch uploaded again makes the same parts.
func splitByHour(b wire.MetricBatch) []rawPart {
	var parts []rawPart
	for h := b.From.UTC().Truncate(time.Hour); h.Before(b.To); h = h.Add(time.Hour) {
		from, to := maxTime(b.From.UTC(), h), minTime(b.To.UTC(), h.Add(time.Hour))
		p := wire.MetricBatch{Seq: b.Seq, From: from, To: to, IntervalSeconds: b.IntervalSeconds, Series: []wire.Series{}}
		lo, hi := from.UnixMilli(), to.UnixMilli()
		for _, se := range b.Series {
			out := wire.Series{Name: se.Name, Kind: se.Kind, Labels: se.Labels, Points: []wire.Point{}}
			for _, pt := range se.Points {
				if pt.T >= lo && pt.T < hi {
					out.Points = append(out.Points, pt)
				}
			}
			if len(out.Points) > 0 {
				p.Series = append(p.Series, out)
			}
		}
		parts = append(parts, rawPart{hour: h, batch: p})
	}
	return parts
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// storePart writes one part create-only; a key already holding the same part is the same batch
// uploaded again.
func (s *Service) storePart(ctx context.Context, agent string, p rawPart) error {
	js, err := json.Marshal(columns(p.batch))
	if err != nil {
		return fmt.Errorf("encode batch %d of %s: %w", p.batch.Seq, agent, err)
	}
	gz, err := gzipBytes(js)
	if err != nil {
		return fmt.Errorf("compress batch %d of %s: %w", p.batch.Seq, agent, err)
	}
	key := layout.MetricsRawBatch(p.hour, agent, p.batch.Seq)
	_, err = store.PutBytes(ctx, s.Store, key, gz, store.PutOptions{CreateOnly: true, ContentType: "application/gzip"})
	if err == nil {
		return nil
	}
	if !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("store batch %d of %s: %w", p.batch.Seq, agent, err)
	}
	held, _, err := store.ReadAll(ctx, s.Store, key)
	if err != nil {
		return fmt.Errorf("read batch %d of %s, stored before: %w", p.batch.Seq, agent, err)
	}
	heldJS, err := gunzip(held)
	if err == nil && bytes.Equal(heldJS, js) {
		return nil // uploaded again: stored once
	}
	return domain.Conflict("batch %d of agent %s from %s was stored before with other samples: number the agent's batches anew (seq counts up and is never reused)",
		p.batch.Seq, agent, p.batch.From.Format(time.RFC3339))
}

func gzipBytes(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func gunzip(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(zr, 64<<20))
}

// seriesKey identifies a series within an agent (wire.Series.Key).
func seriesKey(name string, labels map[string]string) string {
	return wire.Series{Name: name, Labels: labels}.Key()
}

// objCache keeps decoded write-once objects (raw parts, rollups), so a repeated query reads each
// once per process. Bounded: when full it starts again empty.
type objCache struct {
	mu sync.Mutex
	m  map[string]any
}

const cacheMax = 20000

func (c *objCache) get(key string) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[key]
	return v, ok
}

func (c *objCache) put(key string, v any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= cacheMax {
		c.m = map[string]any{}
	}
	c.m[key] = v
}

// readGz reads a gzip JSON object into v; found is false for a missing object (or one that fails
// the integrity check, which reads as missing).
func (s *Service) readGz(ctx context.Context, key string, v any) (found bool, err error) {
	b, _, err := store.ReadAll(ctx, s.Store, key)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s: %w", key, err)
	}
	js, err := gunzip(b)
	if err != nil {
		s.log().Warn("metric object is not gzip; ignored", "key", key, "err", err)
		return false, nil
	}
	if err := json.Unmarshal(js, v); err != nil {
		s.log().Warn("metric object does not decode; ignored", "key", key, "err", err)
		return false, nil
	}
	return true, nil
}

// rawBatch is a cached raw part.
func (s *Service) rawBatch(ctx context.Context, key string) (*wire.MetricBatch, error) {
	if v, ok := s.cache.get(key); ok {
		return v.(*wire.MetricBatch), nil
	}
	var o rawObject
	found, err := s.readGz(ctx, key, &o)
	if err != nil || !found {
		return nil, err
	}
	b := o.batch()
	s.cache.put(key, b)
	return b, nil
}

// rawObject is how the hub stores the part of a batch in one hour: by columns, and with the times of
// a series given by its first time and interval when its points are evenly spaced (the agent samples
// every IntervalSeconds), so that only the values weigh: a third smaller, gzip-compressed, than the
// batch as it travels (measured with 100 host series).
type rawObject struct {
	Seq             uint64      `json:"seq"`
	From            time.Time   `json:"from"`
	To              time.Time   `json:"to"`
	IntervalSeconds int         `json:"intervalSeconds"`
	Series          []rawSeries `json:"series"`
}

// rawSeries is one series of a rawObject: point i is at T0 + i·DT when T is empty, else at T[i].
type rawSeries struct {
	Name   string            `json:"name"`
	Kind   string            `json:"kind"`
	Labels map[string]string `json:"labels,omitempty"`
	T0     int64             `json:"t0"`
	DT     int64             `json:"dt,omitempty"`
	T      []int64           `json:"t,omitempty"`
	V      []float64         `json:"v"`
}

// columns is a batch part as stored.
func columns(b wire.MetricBatch) rawObject {
	o := rawObject{Seq: b.Seq, From: b.From, To: b.To, IntervalSeconds: b.IntervalSeconds, Series: make([]rawSeries, 0, len(b.Series))}
	for _, se := range b.Series {
		rs := rawSeries{Name: se.Name, Kind: se.Kind, Labels: se.Labels, V: make([]float64, len(se.Points))}
		even := len(se.Points) > 1
		for i, p := range se.Points {
			rs.V[i] = p.V
			if i > 1 && p.T-se.Points[i-1].T != se.Points[1].T-se.Points[0].T {
				even = false
			}
		}
		switch {
		case len(se.Points) == 1:
			rs.T0 = se.Points[0].T
		case even:
			rs.T0, rs.DT = se.Points[0].T, se.Points[1].T-se.Points[0].T
		default:
			rs.T = make([]int64, len(se.Points))
			for i, p := range se.Points {
				rs.T[i] = p.T
			}
		}
		o.Series = append(o.Series, rs)
	}
	return o
}

// batch is a stored part read back as the agent sent it.
func (o rawObject) batch() *wire.MetricBatch {
	b := &wire.MetricBatch{Seq: o.Seq, From: o.From, To: o.To, IntervalSeconds: o.IntervalSeconds, Series: make([]wire.Series, 0, len(o.Series))}
	for _, rs := range o.Series {
		se := wire.Series{Name: rs.Name, Kind: rs.Kind, Labels: rs.Labels, Points: make([]wire.Point, len(rs.V))}
		for i, v := range rs.V {
			t := rs.T0 + int64(i)*rs.DT
			if len(rs.T) == len(rs.V) {
				t = rs.T[i]
			}
			se.Points[i] = wire.Point{T: t, V: v}
		}
		b.Series = append(b.Series, se)
	}
	return b
}

// rollup is a cached rollup; nil when there is none.
func (s *Service) rollup(ctx context.Context, key string) (*Rollup, error) {
	if v, ok := s.cache.get(key); ok {
		return v.(*Rollup), nil
	}
	r := new(Rollup)
	found, err := s.readGz(ctx, key, r)
	if err != nil || !found {
		return nil, err
	}
	s.cache.put(key, r)
	return r, nil
}

// Now is the room's clock: the time queries given as "6h before now" are measured from.
func (s *Service) Now() time.Time { return s.now() }
