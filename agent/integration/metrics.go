package integration

import (
	"context"
	"fmt"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
)

// MetricSource is implemented by integrations that sample metrics (the host integration: CPU, memory,
// filesystems, …). The kernel calls Sample every SampleEvery, batches the points with those of every
// other source and uploads them; the integration never talks to the hub or the disk for its metrics, so
// one batching, outbox and upload path serves them all and the kernel knows no source by name.
type MetricSource interface {
	// SampleEvery is how often the kernel should call Sample under the integration's config. Zero or
	// less means this config turns sampling off (e.g. [host] metrics = false), which lets an integration
	// implement the interface unconditionally.
	SampleEvery() time.Duration
	// Sample returns the current value of each series: one point per series, at now (Unix
	// milliseconds), Prometheus names and kinds (wire.Series). Reading some values may fail (a
	// sandbox hides a file): Sample then returns what it read and an error saying what it could not,
	// and the kernel keeps the points and logs the error.
	Sample(ctx context.Context, now time.Time) ([]wire.Series, error)
}

// Sampler is one enabled MetricSource as the kernel sees it: its integration's id (for logs), how often
// to sample, and a Sample that turns a panic into an error so a broken source cannot take the agent down.
type Sampler struct {
	ID    string
	Every time.Duration
	src   MetricSource
}

// Sample calls the source, recovering a panic as an error.
func (s Sampler) Sample(ctx context.Context, now time.Time) (series []wire.Series, err error) {
	defer func() {
		if r := recover(); r != nil {
			series, err = nil, fmt.Errorf("sample %s: panic: %v", s.ID, r)
		}
	}()
	series, err = s.src.Sample(ctx, now)
	if err != nil {
		err = fmt.Errorf("sample %s: %w", s.ID, err)
	}
	return series, err
}

// Samplers lists the enabled integrations whose config has them sample metrics, in id order.
func (s *Set) Samplers() []Sampler { return append([]Sampler(nil), s.samplers...) }

// metricSampler asks an enabled integration whether it samples metrics, behind the caller's recover.
func metricSampler(id string, inst Integration) (Sampler, bool) {
	src, ok := inst.(MetricSource)
	if !ok {
		return Sampler{}, false
	}
	every := src.SampleEvery()
	if every <= 0 {
		return Sampler{}, false
	}
	return Sampler{ID: id, Every: every, src: src}, true
}
