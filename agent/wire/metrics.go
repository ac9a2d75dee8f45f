package wire

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Metric kinds, as Prometheus names them: a gauge goes up and down (bytes used, a ratio, a
// temperature); a counter only grows, and resets to 0 when its source restarts (bytes received, CPU
// seconds). The hub compacts them differently (a counter's min, max and average are of its value; a
// rate is computed at query time).
const (
	MetricGauge   = "gauge"
	MetricCounter = "counter"
)

// MetricBatch is what an agent uploads of its samples (POST /v1/agents/{id}/metrics, the JSON
// gzip-compressed with Content-Encoding: gzip): every series it sampled over [From, To). Seq counts an
// agent's batches from 1 and names the batch: the hub stores each batch write-once under its agent,
// day and Seq, so a batch the agent uploads again (it did not hear the answer) is stored once. A
// batch is kept in the agent's outbox until the hub answered, so an unreachable hub loses none.
type MetricBatch struct {
	Seq  uint64    `json:"seq"`
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// IntervalSeconds is how often the agent sampled (10 by default).
	IntervalSeconds int      `json:"intervalSeconds"`
	Series          []Series `json:"series"`
}

// Series is one metric with one set of labels, and its points in time order.
type Series struct {
	// Name follows Prometheus conventions: base units, _total for counters, ratios 0–1, e.g.
	// node_filesystem_avail_bytes, node_network_receive_bytes_total, node_cpu_seconds_total.
	Name string `json:"name"`
	Kind string `json:"kind" enum:"gauge,counter"`
	// Labels tell series of one name apart (mountpoint, device, cpu and mode, sensor, …); the agent's
	// own labels are the hub's to add.
	Labels map[string]string `json:"labels,omitempty"`
	Points []Point           `json:"points"`
}

// Point is one sample: T in Unix milliseconds, V the value.
type Point struct {
	T int64   `json:"t"`
	V float64 `json:"v"`
}

// Bounds on one batch, so an agent cannot make the hub store without end.
const (
	MaxBatchSeries       = 2000
	MaxBatchPoints       = 200_000
	MaxBatchBytes        = 8 << 20 // decompressed
	MaxMetricLabels      = 10
	MaxBatchSpan         = 24 * time.Hour
	DefaultMetricSample  = 10 * time.Second
	DefaultMetricsUpload = 5 * time.Minute
)

var (
	metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]{0,199}$`)
	labelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{0,99}$`)
)

// Key names a series within an agent, as Prometheus writes it: its name and its labels sorted,
// name{k="v",…}. Values are quoted, so two series never share a key; the hub keeps its tiers and its
// alerts' subjects by it.
func (s Series) Key() string {
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var sb strings.Builder
	sb.WriteString(s.Name)
	sb.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, "%s=%q", k, s.Labels[k])
	}
	sb.WriteByte('}')
	return sb.String()
}

// ErrBadBatch wraps every reason Validate refuses a batch for.
var ErrBadBatch = errors.New("bad metric batch")

// Validate refuses a batch the hub cannot store as it is: names that are not Prometheus names, a kind
// that is neither, too many series, labels or points, points outside [From, To) or out of order,
// values that are not numbers.
func (b *MetricBatch) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadBatch, fmt.Sprintf(format, a...))
	}
	switch {
	case b.Seq == 0:
		return bad("seq counts from 1")
	case b.From.IsZero() || !b.To.After(b.From):
		return bad("from %s must be before to %s", b.From.Format(time.RFC3339), b.To.Format(time.RFC3339))
	case b.To.Sub(b.From) > MaxBatchSpan:
		return bad("spans %s, at most %s", b.To.Sub(b.From), MaxBatchSpan)
	case b.IntervalSeconds < 1:
		return bad("intervalSeconds %d: at least 1", b.IntervalSeconds)
	case len(b.Series) > MaxBatchSeries:
		return bad("%d series, at most %d", len(b.Series), MaxBatchSeries)
	}
	from, to := b.From.UnixMilli(), b.To.UnixMilli()
	points := 0
	for i, s := range b.Series {
		switch {
		case !metricName.MatchString(s.Name):
			return bad("series %d: name %q is not a Prometheus metric name", i, s.Name)
		case s.Kind != MetricGauge && s.Kind != MetricCounter:
			return bad("series %s: kind %q: %s or %s", s.Name, s.Kind, MetricGauge, MetricCounter)
		case len(s.Labels) > MaxMetricLabels:
			return bad("series %s: %d labels, at most %d", s.Name, len(s.Labels), MaxMetricLabels)
		}
		for k, v := range s.Labels {
			if !labelName.MatchString(k) || len(v) > 200 {
				return bad("series %s: label %q: a Prometheus label name, and a value of at most 200 bytes", s.Name, k)
			}
		}
		points += len(s.Points)
		last := int64(math.MinInt64)
		for _, p := range s.Points {
			switch {
			case p.T < from || p.T >= to:
				return bad("series %s: a point at %d outside the batch [%d, %d)", s.Name, p.T, from, to)
			case p.T <= last:
				return bad("series %s: points out of time order at %d", s.Name, p.T)
			case math.IsNaN(p.V) || math.IsInf(p.V, 0):
				return bad("series %s: a value at %d is not a number", s.Name, p.T)
			}
			last = p.T
		}
	}
	if points > MaxBatchPoints {
		return bad("%d points, at most %d", points, MaxBatchPoints)
	}
	return nil
}
