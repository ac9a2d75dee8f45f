package metrics

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pulsehq/pulse/functions/hub/domain"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
)

// MaxQueryPoints bounds the points of one series in a query answer: a range and step that would make
// more are refused, with the step that fits.
const MaxQueryPoints = 11000

// Query is a range query of one agent's series.
type Query struct {
	Agent string
	// Name is the metric name (required).
	Name string
	// Labels must all be equal on a series for it to be answered.
	Labels   map[string]string
	From, To time.Time
	// Step is the width of the answer's buckets; zero picks one giving about 240 points.
	Step time.Duration
}

// Result is a range query's answer.
type Result struct {
	Agent string    `json:"agent"`
	Name  string    `json:"name"`
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	// Tier is the tier the answer was read from.
	Tier        string `json:"tier" enum:"raw,1m,1h,1d" doc:"The tier read: raw (kept 24 h by default), 1m (7 d), 1h (90 d), 1d (2 years): the finest whose retention covers from and whose resolution is at most the step. Windows not yet compacted are read from the finer tier."`
	StepSeconds int64  `json:"stepSeconds" doc:"The width of each point's bucket: the step asked for, raised to the tier's resolution."`
	// Requests is how many store requests answering took (cached objects cost none).
	Requests int            `json:"requests" doc:"Store requests this answer took; objects this hub read before cost none."`
	Series   []ResultSeries `json:"series"`
}

// ResultSeries is one series of an answer.
type ResultSeries struct {
	Name   string            `json:"name"`
	Kind   string            `json:"kind" enum:"gauge,counter"`
	Labels map[string]string `json:"labels,omitempty"`
	Points []ResultPoint     `json:"points"`
}

// ResultPoint is one bucket: T its start (Unix ms), the average, minimum and maximum of the samples
// in it, how many there were, and the last (for a counter, its value at the end of the bucket).
type ResultPoint struct {
	T     int64   `json:"t" doc:"The bucket's start, Unix milliseconds."`
	Avg   float64 `json:"avg"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
	Count int64   `json:"count" doc:"Samples in the bucket."`
	Last  float64 `json:"last" doc:"The last sample's value; from a compacted tier, a counter's last value and a gauge's average over its last minute."`
}

// niceSteps are the steps an automatic step is rounded up to.
var niceSteps = []time.Duration{10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}

// pickTier is the finest tier whose retention covers from and whose resolution is at most step;
// when no covering tier is that fine, the finest covering one (the coarsest when none covers from),
// with the step raised to its resolution.
func (s *Service) pickTier(from time.Time, step time.Duration) (*tier, time.Duration) {
	now, ret := s.now(), s.retention()
	var chosen *tier
	for _, t := range tiers {
		if from.Before(t.windowStart(now.Add(-t.keep(ret)))) {
			continue // older than the tier's oldest window still kept
		}
		if chosen == nil {
			chosen = t
		}
		if t.res <= step {
			chosen = t
			break
		}
	}
	if chosen == nil {
		chosen = tierDay
	}
	if step < chosen.res {
		step = chosen.res
	}
	return chosen, step
}

// Range answers a range query from the tier pickTier chooses: series named q.Name with q.Labels,
// in buckets of the step aligned to the Unix epoch. Costs: raw, one LIST per hour of the range plus
// one GET per batch not read before; compacted tiers, one GET per window (hour, day, month) not read
// before, and a window not yet compacted costs what the finer tier costs for it.
func (s *Service) Range(ctx context.Context, q Query) (*Result, error) {
	if !layout.ValidID(q.Agent) {
		return nil, &domain.Error{Kind: domain.KindInvalid, Field: "path.id", Msg: fmt.Sprintf("agent id %q: letters, digits, - and _", q.Agent)}
	}
	if q.Name == "" {
		return nil, &domain.Error{Kind: domain.KindInvalid, Field: "query.name", Msg: "name the metric (e.g. node_cpu_seconds_total); GET /v1/agents/{id}/metrics/names lists them"}
	}
	now := s.now()
	if q.To.IsZero() {
		q.To = now
	}
	if q.From.IsZero() {
		q.From = q.To.Add(-time.Hour)
	}
	if !q.From.Before(q.To) {
		return nil, &domain.Error{Kind: domain.KindInvalid, Field: "query.from", Msg: fmt.Sprintf("from %s must be before to %s", q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))}
	}
	if q.Step < 0 {
		return nil, &domain.Error{Kind: domain.KindInvalid, Field: "query.step", Msg: "step must be positive (e.g. 1m)"}
	}
	if q.Step == 0 {
		want := q.To.Sub(q.From) / 240
		q.Step = niceSteps[len(niceSteps)-1]
		for _, n := range niceSteps {
			if n >= want {
				q.Step = n
				break
			}
		}
	}
	t, step := s.pickTier(q.From, q.Step)
	if n := int64(q.To.Sub(q.From) / step); n > MaxQueryPoints {
		return nil, &domain.Error{Kind: domain.KindInvalid, Field: "query.step",
			Msg: fmt.Sprintf("%s over %s is %d points a series, at most %d: ask for a step of at least %s", step, q.To.Sub(q.From), n, MaxQueryPoints, (q.To.Sub(q.From)/MaxQueryPoints).Round(time.Second)+time.Second)}
	}
	a := newAcc(step)
	res := &Result{Agent: q.Agent, Name: q.Name, From: q.From.UTC(), To: q.To.UTC(), Tier: t.name, StepSeconds: int64(step / time.Second), Series: []ResultSeries{}}
	if err := s.collect(ctx, q.Agent, t, q.From, q.To, matcher{name: q.Name, labels: q.Labels}, a, &res.Requests); err != nil {
		return nil, fmt.Errorf("query %s of %s: %w", q.Name, q.Agent, err)
	}
	for _, k := range a.keys() {
		sa := a.series[k]
		rs := ResultSeries{Name: sa.name, Kind: sa.kind, Labels: sa.labels, Points: []ResultPoint{}}
		ts := make([]int64, 0, len(sa.buckets))
		for b := range sa.buckets {
			ts = append(ts, b)
		}
		sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
		for _, b := range ts {
			g := sa.buckets[b]
			rs.Points = append(rs.Points, ResultPoint{T: b, Avg: g.sum / float64(g.n), Min: g.min, Max: g.max, Count: g.n, Last: g.last})
		}
		res.Series = append(res.Series, rs)
	}
	return res, nil
}

// Sample is the newest sample of one series.
type Sample struct {
	Name   string            `json:"name"`
	Kind   string            `json:"kind" enum:"gauge,counter"`
	Labels map[string]string `json:"labels,omitempty"`
	T      int64             `json:"t" doc:"When it was sampled, Unix milliseconds."`
	V      float64           `json:"v"`
}

// Latest returns the newest sample of every series of an agent: those of the newest hour (within the
// raw retention) in which the agent stored a batch, by name and labels. It is what an exposition of
// the fleet's current values (Prometheus) reads per agent. Costs one LIST per hour back to that hour
// and one GET per batch of it not read before (a few, with 5-minute uploads).
func (s *Service) Latest(ctx context.Context, agent string) ([]Sample, error) {
	if !layout.ValidID(agent) {
		return nil, &domain.Error{Kind: domain.KindInvalid, Field: "path.id", Msg: fmt.Sprintf("agent id %q: letters, digits, - and _", agent)}
	}
	now, ret := s.now(), s.retention()
	newest := map[string]*Sample{}
	for h := now.Truncate(time.Hour); h.Add(time.Hour).After(now.Add(-ret.Raw)); h = h.Add(-time.Hour) {
		var keys []string
		if err := store.Walk(ctx, s.Store, layout.MetricsRawOf(h, agent), "", 0, func(o store.ObjectInfo) error {
			keys = append(keys, o.Key)
			return nil
		}); err != nil {
			return nil, fmt.Errorf("latest of %s: %w", agent, err)
		}
		for _, k := range keys {
			b, err := s.rawBatch(ctx, k)
			if err != nil {
				return nil, fmt.Errorf("latest of %s: %w", agent, err)
			}
			if b == nil {
				continue
			}
			for _, se := range b.Series {
				if len(se.Points) == 0 {
					continue
				}
				p := se.Points[len(se.Points)-1]
				sk := seriesKey(se.Name, se.Labels)
				if cur := newest[sk]; cur == nil || p.T > cur.T {
					newest[sk] = &Sample{Name: se.Name, Kind: se.Kind, Labels: se.Labels, T: p.T, V: p.V}
				}
			}
		}
		if len(newest) > 0 {
			break
		}
	}
	keys := make([]string, 0, len(newest))
	for k := range newest {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]Sample, 0, len(keys))
	for _, k := range keys {
		out = append(out, *newest[k])
	}
	return out, nil
}

// ParseLabels reads label matchers "k=v" (as the query's label parameters and the CLI's --label).
func ParseLabels(in []string) (map[string]string, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, l := range in {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return nil, &domain.Error{Kind: domain.KindInvalid, Field: "query.label", Msg: fmt.Sprintf("label %q: want name=value, e.g. mountpoint=/", l)}
		}
		out[k] = v
	}
	return out, nil
}
