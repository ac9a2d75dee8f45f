package integration

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse/functions/hub"
	"github.com/pulsehq/pulse/functions/hub/delivery"
	"github.com/pulsehq/pulse/functions/hubkey"
)

// BenchmarkFunctionIdleAgent: what an idle agent costs a hub in function mode (docs/functions.md,
// docs/costs.md), on an in-process hub over MinIO behind a counting store: the store requests of one
// poll on a warm instance and on a cold one (a new hub per poll, as a new function instance is), the
// time a poll takes (the function's billed duration, less Lambda's own overhead), and, with the
// default come-back interval and the agent's default liveness beat, the store requests and
// invocations per agent per hour.
func BenchmarkFunctionIdleAgent(b *testing.B) {
	const n = 20
	_, priv, _ := ed25519.GenerateKey(crand.Reader)
	keys := &hubkey.Keys{Current: priv}
	_, cs, _, _, agents := inProcessHubWith(b, n, hub.Config{Keys: keys, Function: true}, nil, nil)
	ctx := context.Background()
	for _, a := range agents {
		a.Heartbeat(ctx)
	}
	for b.Loop() {
		// Warm: every agent polls 25 times; the instance has seen it before.
		cs.bells.Store(0)
		cs.other.Store(0)
		var mu sync.Mutex
		var took []time.Duration
		var wg sync.WaitGroup
		for _, a := range agents {
			wg.Go(func() {
				for range 25 {
					start := time.Now()
					if _, _, err := a.Poll(ctx, nil); err != nil {
						b.Error(err)
						return
					}
					mu.Lock()
					took = append(took, time.Since(start))
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		warm := float64(cs.bells.Load()+cs.other.Load()) / float64(max(len(took), 1))
		slices.Sort(took)

		// Cold: each poll on a hub instance of its own.
		const colds = 5
		cs.bells.Store(0)
		cs.other.Store(0)
		for i := range colds {
			h, err := hub.New(ctx, hub.Config{Store: cs, Keys: keys, Function: true, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			mux := http.NewServeMux()
			hub.NewAPI(mux, h)
			srv := httptest.NewServer(h.Handler(mux))
			a := *agents[i]
			a.Hub = srv.URL
			if _, _, err := a.Poll(ctx, nil); err != nil {
				b.Fatal(err)
			}
			srv.Close()
			h.Close()
		}
		cold := float64(cs.bells.Load()+cs.other.Load()) / colds

		cs.other.Store(0)
		for _, a := range agents {
			a.Heartbeat(ctx)
		}
		perBeat := float64(cs.other.Load()) / n
		pollsPerHour := float64(time.Hour / delivery.DefaultPollEvery)
		beatsPerHour := 3600.0 / 120 // the agent's default liveness beat (unchanged heartbeats)
		b.ReportMetric(warm, "store-req/poll-warm")
		b.ReportMetric(cold, "store-req/poll-cold")
		b.ReportMetric(perBeat, "store-req/heartbeat")
		b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms/poll")
		b.ReportMetric(warm*pollsPerHour+perBeat*beatsPerHour, "store-req/agent/h")
		b.ReportMetric(pollsPerHour+beatsPerHour, "invocations/agent/h")
	}
}
