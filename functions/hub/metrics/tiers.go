package metrics

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
)

// tier is one level of the store: raw batches, or a compacted resolution. Each is kept in windows
// (one object per agent per window), finer is what it is compacted from.
type tier struct {
	name string
	// res is the resolution: the width of a bucket (raw: the agent's sampling, taken as 10 s).
	res time.Duration
	// window is the width of a window: hour, day, or month (month: 0, see windowEnd).
	window time.Duration
	keep   func(Retention) time.Duration
	finer  *tier
}

var (
	tierRaw    = &tier{name: layout.MetricsRaw, res: wire.DefaultMetricSample, window: time.Hour, keep: func(r Retention) time.Duration { return r.Raw }}
	tierMinute = &tier{name: layout.MetricsMinute, res: time.Minute, window: time.Hour, keep: func(r Retention) time.Duration { return r.Minute }, finer: tierRaw}
	tierHour   = &tier{name: layout.MetricsHour, res: time.Hour, window: 24 * time.Hour, keep: func(r Retention) time.Duration { return r.Hour }, finer: tierMinute}
	tierDay    = &tier{name: layout.MetricsDay, res: 24 * time.Hour, keep: func(r Retention) time.Duration { return r.Day }, finer: tierHour}
	// tiers are finest first.
	tiers = []*tier{tierRaw, tierMinute, tierHour, tierDay}
)

// windowStart is the start of the window holding t.
func (t *tier) windowStart(at time.Time) time.Time {
	at = at.UTC()
	if t.window == 0 {
		return time.Date(at.Year(), at.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return at.Truncate(t.window)
}

// windowEnd is the end of the window starting at start.
func (t *tier) windowEnd(start time.Time) time.Time {
	if t.window == 0 {
		return start.AddDate(0, 1, 0)
	}
	return start.Add(t.window)
}

// windows are the starts of the windows overlapping [from, to).
func (t *tier) windows(from, to time.Time) []time.Time {
	var out []time.Time
	for w := t.windowStart(from); w.Before(to); w = t.windowEnd(w) {
		out = append(out, w)
	}
	return out
}

// agg is one bucket: sum, min, max and count of the values in it, and the last value (by time).
type agg struct {
	sum, min, max float64
	n             int64
	last          float64
	lastT         int64
}

func (a *agg) add(o agg) {
	if a.n == 0 {
		*a = o
		return
	}
	a.sum += o.sum
	a.min = math.Min(a.min, o.min)
	a.max = math.Max(a.max, o.max)
	a.n += o.n
	if o.lastT >= a.lastT {
		a.last, a.lastT = o.last, o.lastT
	}
}

// seriesAcc gathers one series' buckets.
type seriesAcc struct {
	name, kind string
	labels     map[string]string
	buckets    map[int64]*agg
}

// acc gathers series by seriesKey, into buckets of step milliseconds aligned to the Unix epoch.
type acc struct {
	step   int64
	series map[string]*seriesAcc
}

func newAcc(step time.Duration) *acc {
	return &acc{step: max(step.Milliseconds(), 1), series: map[string]*seriesAcc{}}
}

func (a *acc) add(name, kind string, labels map[string]string, t int64, v agg) {
	a.of(name, kind, labels).add(a.step, t, v)
}

// of is the accumulator of one series, made on first use.
func (a *acc) of(name, kind string, labels map[string]string) *seriesAcc {
	k := seriesKey(name, labels)
	s := a.series[k]
	if s == nil {
		s = &seriesAcc{name: name, kind: kind, labels: labels, buckets: map[int64]*agg{}}
		a.series[k] = s
	}
	return s
}

// add adds v at t to the bucket of step holding t.
func (s *seriesAcc) add(step, t int64, v agg) {
	b := t - mod(t, step)
	if cur := s.buckets[b]; cur != nil {
		cur.add(v)
	} else {
		c := v
		s.buckets[b] = &c
	}
}

func mod(a, b int64) int64 { return ((a % b) + b) % b }

// keys are the accumulated series' keys, sorted: everything built from an acc is in this order, so
// two hubs build the same bytes.
func (a *acc) keys() []string {
	out := make([]string, 0, len(a.series))
	for k := range a.series {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Rollup is one compacted object: an agent's series of one window at one resolution, column by
// column (gzip-compressed JSON columns are a third of the size of objects per point).
type Rollup struct {
	Agent string `json:"agent"`
	Tier  string `json:"tier"`
	// Start is the window's start and Step the resolution, in Unix milliseconds.
	Start  int64          `json:"start"`
	Step   int64          `json:"step"`
	Series []RollupSeries `json:"series"`
}

// RollupSeries is one series of a Rollup: its k-th bucket, number I[k] (Start + I[k]·Step), or First+k
// when the buckets follow each other (I is then left out), has Avg, Min, Max over N samples and, for
// counters, the Last value. Avg is kept to 7 significant digits (float32's precision, ample for an
// average and a third of the bytes); Min, Max and Last are samples as the agent sent them.
type RollupSeries struct {
	Name   string            `json:"name"`
	Kind   string            `json:"kind"`
	Labels map[string]string `json:"labels,omitempty"`
	First  int64             `json:"first,omitempty"`
	I      []int64           `json:"i,omitempty"`
	Avg    []float64         `json:"avg"`
	Min    []float64         `json:"min"`
	Max    []float64         `json:"max"`
	N      []int64           `json:"n"`
	Last   []float64         `json:"last,omitempty"`
}

// rollupOf builds a window's Rollup from what acc gathered at the tier's resolution.
func rollupOf(agent string, t *tier, start time.Time, a *acc) *Rollup {
	r := &Rollup{Agent: agent, Tier: t.name, Start: start.UnixMilli(), Step: t.res.Milliseconds(), Series: []RollupSeries{}}
	for _, k := range a.keys() {
		s := a.series[k]
		ts := make([]int64, 0, len(s.buckets))
		for b := range s.buckets {
			ts = append(ts, b)
		}
		sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
		rs := RollupSeries{Name: s.name, Kind: s.kind, Labels: s.labels}
		contiguous := true
		for k, b := range ts {
			g := s.buckets[b]
			rs.I = append(rs.I, (b-r.Start)/r.Step)
			contiguous = contiguous && rs.I[k] == rs.I[0]+int64(k)
			rs.Avg = append(rs.Avg, round7(g.sum/float64(g.n)))
			rs.Min = append(rs.Min, g.min)
			rs.Max = append(rs.Max, g.max)
			rs.N = append(rs.N, g.n)
			if s.kind == wire.MetricCounter {
				rs.Last = append(rs.Last, g.last)
			}
		}
		if contiguous && len(rs.I) > 0 {
			rs.First, rs.I = rs.I[0], nil
		}
		r.Series = append(r.Series, rs)
	}
	return r
}

// index is the bucket number of the k-th bucket.
func (rs *RollupSeries) index(k int) int64 {
	if rs.I != nil {
		return rs.I[k]
	}
	return rs.First + int64(k)
}

// round7 keeps 7 significant digits.
func round7(v float64) float64 {
	r, err := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 7, 64), 64)
	if err != nil {
		return v
	}
	return r
}

// matcher selects series by name (empty: all) and labels that must be equal.
type matcher struct {
	name   string
	labels map[string]string
}

func (m matcher) match(name string, labels map[string]string) bool {
	if m.name != "" && m.name != name {
		return false
	}
	for k, v := range m.labels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// collect adds to a what an agent has in tier t over [from, to): a window's object where the tier
// has it, else (a window not yet compacted, or a tier that lost it) what the finer tier has of that
// window, while the finer tier still keeps it. reads counts the store requests made.
func (s *Service) collect(ctx context.Context, agent string, t *tier, from, to time.Time, m matcher, a *acc, reads *int) (err error) {
	now, ret := s.now(), s.retention()
	lo, hi := from.UnixMilli(), to.UnixMilli()
	var raws []time.Time
	defer func() {
		if err == nil && len(raws) > 0 {
			err = s.collectRaw(ctx, agent, raws, lo, hi, m, a, reads)
		}
	}()
	if t != tierRaw {
		if err := s.prefetch(ctx, agent, t, t.windows(from, to), reads); err != nil {
			return err
		}
	}
	for _, w := range t.windows(from, to) {
		end := t.windowEnd(w)
		if !end.After(now.Add(-t.keep(ret))) {
			continue // past the tier's retention: deleted
		}
		if t == tierRaw {
			raws = append(raws, w)
			continue
		}
		key := layout.MetricsRollup(t.name, w, agent)
		r, err := s.rollup(ctx, key)
		if err != nil {
			return err
		}
		if r == nil {
			if end.After(now.Add(-t.finer.keep(ret))) {
				if err := s.collect(ctx, agent, t.finer, maxTime(from, w), minTime(to, end), m, a, reads); err != nil {
					return err
				}
			}
			continue
		}
		for _, rs := range r.Series {
			if !m.match(rs.Name, rs.Labels) {
				continue
			}
			for i := range rs.Avg {
				bt := r.Start + rs.index(i)*r.Step
				if bt < lo || bt >= hi {
					continue
				}
				g := agg{sum: rs.Avg[i] * float64(rs.N[i]), min: rs.Min[i], max: rs.Max[i], n: rs.N[i], lastT: bt}
				if i < len(rs.Last) {
					g.last = rs.Last[i]
				} else {
					g.last = rs.Avg[i]
				}
				a.add(rs.Name, rs.Kind, rs.Labels, bt, g)
			}
		}
	}
	return nil
}

// collectRaw adds an agent's raw batches of the hours to a: the hours are listed and the batches not
// cached read concurrently (a day is 24 listings and 288 batches), then folded in key order, so the
// sums are the same whichever request finished first.
func (s *Service) collectRaw(ctx context.Context, agent string, hours []time.Time, lo, hi int64, m matcher, a *acc, reads *int) error {
	keys := make([][]string, len(hours))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	var listed atomic.Int64
	now := s.now()
	for i, h := range hours {
		g.Go(func() error {
			prefix := layout.MetricsRawOf(h, agent)
			ended := !h.Add(time.Hour).After(now)
			if ended {
				if k, ok := s.lists.get(prefix, now); ok {
					keys[i] = k
					return nil
				}
			}
			listed.Add(1)
			err := store.Walk(gctx, s.Store, prefix, "", 0, func(o store.ObjectInfo) error {
				if strings.HasSuffix(o.Key, ".json.gz") {
					keys[i] = append(keys[i], o.Key)
				}
				return nil
			})
			if err == nil && ended {
				s.lists.put(prefix, keys[i], now)
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("list raw batches of %s: %w", agent, err)
	}
	*reads += int(listed.Load())
	var all []string
	for _, k := range keys {
		all = append(all, k...)
	}
	batches := make([]*wire.MetricBatch, len(all))
	var fetched atomic.Int64
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, k := range all {
		g.Go(func() error {
			if _, ok := s.cache.get(k); !ok {
				fetched.Add(1)
			}
			b, err := s.rawBatch(gctx, k)
			batches[i] = b
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	*reads += int(fetched.Load())
	for _, b := range batches {
		if b == nil {
			continue // planted (fails the integrity check) or deleted meanwhile
		}
		for _, se := range b.Series {
			if !m.match(se.Name, se.Labels) {
				continue
			}
			sa := a.of(se.Name, se.Kind, se.Labels)
			for _, p := range se.Points {
				if p.T >= lo && p.T < hi {
					sa.add(a.step, p.T, agg{sum: p.V, min: p.V, max: p.V, n: 1, last: p.V, lastT: p.T})
				}
			}
		}
	}
	return nil
}

// listTTL is how long the listing of an hour that has ended is reused: a batch uploaded late into such
// an hour shows in queries this much later.
const listTTL = time.Minute

// listCache keeps listings of ended hours' raw batches for listTTL, so a dashboard repeating a 24 h
// query lists only the current hour. Bounded like objCache.
type listCache struct {
	mu sync.Mutex
	m  map[string]listed
}

type listed struct {
	keys []string
	at   time.Time
}

func (c *listCache) get(prefix string, now time.Time) ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.m[prefix]
	if !ok || now.Sub(l.at) > listTTL || now.Before(l.at) {
		return nil, false
	}
	return l.keys, true
}

func (c *listCache) put(prefix string, keys []string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= cacheMax {
		c.m = map[string]listed{}
	}
	c.m[prefix] = listed{keys: keys, at: now}
}

// prefetch reads an agent's rollups of the windows concurrently into the cache (16 at a time), so a
// 3-day query's 72 hourly objects cost the time of a few requests; what is missing stays missing.
func (s *Service) prefetch(ctx context.Context, agent string, t *tier, windows []time.Time, reads *int) error {
	var n atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	cutoff := s.now().Add(-t.keep(s.retention()))
	for _, w := range windows {
		if !t.windowEnd(w).After(cutoff) {
			continue // past the tier's retention: deleted
		}
		key := layout.MetricsRollup(t.name, w, agent)
		if _, ok := s.cache.get(key); ok {
			continue
		}
		n.Add(1)
		g.Go(func() error {
			_, err := s.rollup(gctx, key)
			return err
		})
	}
	err := g.Wait()
	*reads += int(n.Load())
	return err
}
