package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkAlertTick1000: one hub instance evaluating 10 offline rules over 1,000 simulated agents on
// MinIO: the time of a tick's evaluation with every track settled (p50 of 20), its store requests,
// and the tick in which every agent goes offline at once (10,000 alerts fire, each a create-only PUT).
func BenchmarkAlertTick1000(b *testing.B) {
	const agents, rules = 1000, 10
	h, cs, hp, admin, sims := inProcessHub(b, agents, 2*time.Second, nil, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, a := range sims {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := a.Heartbeat(ctx); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	var src strings.Builder
	src.WriteString("rules:\n")
	for i := range rules {
		fmt.Fprintf(&src, "  - {name: down_%d, kind: offline, for: %ds}\n", i, 60*(i+1))
	}
	if st := op(b, hp, admin, "PUT", "/v1/alert-rules", map[string]any{"source": src.String()}, nil); st != 200 {
		b.Fatalf("apply rules: %d", st)
	}
	var mu sync.Mutex
	clock := time.Now()
	h.Alerts.Every = time.Nanosecond
	h.Alerts.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }

	h.Alerts.Tick(ctx) // first sight: tracks made and stored
	var steady []time.Duration
	var reqs int64
	for range 20 {
		advance(time.Second)
		before := cs.bells.Load() + cs.other.Load()
		start := time.Now()
		h.Alerts.Tick(ctx)
		steady = append(steady, time.Since(start))
		reqs += cs.bells.Load() + cs.other.Load() - before
	}
	slices.Sort(steady)
	advance(time.Hour) // every agent offline past every rule's duration
	start := time.Now()
	h.Alerts.Tick(ctx)
	firing := time.Since(start)
	var list struct{ Alerts []struct{ ID string } }
	op(b, hp, admin, "GET", "/v1/alerts", nil, &list)
	if len(list.Alerts) != agents*rules {
		b.Fatalf("%d alerts fired, want %d", len(list.Alerts), agents*rules)
	}
	b.ReportMetric(float64(steady[len(steady)/2].Microseconds())/1000, "p50-ms/tick")
	b.ReportMetric(float64(reqs)/20, "store-req/tick")
	b.ReportMetric(firing.Seconds(), "s-10000-fired")
}
