package integration

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/integration-tests/simagent"
)

// eventCostStore counts store requests: all of them, and those under v1/executions/ (the execution
// records and their events, what the workflow driver folds).
type eventCostStore struct {
	store.Store
	all, executions atomic.Int64
}

func (c *eventCostStore) count(key string) {
	c.all.Add(1)
	if strings.HasPrefix(key, layout.Executions) {
		c.executions.Add(1)
	}
}

func (c *eventCostStore) Get(ctx context.Context, k string, o store.GetOptions) (*store.Object, error) {
	c.count(k)
	return c.Store.Get(ctx, k, o)
}

func (c *eventCostStore) Put(ctx context.Context, k string, r io.Reader, n int64, o store.PutOptions) (store.ObjectInfo, error) {
	c.count(k)
	return c.Store.Put(ctx, k, r, n, o)
}

func (c *eventCostStore) List(ctx context.Context, p, after string, limit int) (store.Page, error) {
	c.count(p)
	return c.Store.List(ctx, p, after, limit)
}

func (c *eventCostStore) Delete(ctx context.Context, k string) error {
	c.count(k)
	return c.Store.Delete(ctx, k)
}

// BenchmarkWorkflowEventCost: what driving one execution costs per event it records, for an
// execution of about 100 and of about 1,000 events (a workflow of 50 and of 499 execute steps, one
// agent, two events a step: the command accepted and its result), on an in-process hub over MinIO
// with a counting store. If the driver re-read every event on every round, the requests per event
// would grow with the number of events (quadratic in total); they stay about the same when it reads
// only what is new. Reported: store-req/event (every request the hub made while the execution ran),
// exec-req/event (those on execution records and events), and µs/event (wall time, the agent
// included).
func BenchmarkWorkflowEventCost(b *testing.B) {
	for _, steps := range []int{50, 499} {
		b.Run(fmt.Sprintf("events=%d", 2*steps+1), func(b *testing.B) { workflowEventCost(b, steps) })
	}
}

func workflowEventCost(b *testing.B, steps int) {
	inner, err := minio.Store(bucket)
	if err != nil {
		b.Fatal(err)
	}
	cs := &eventCostStore{Store: inner}
	_, priv, _ := ed25519.GenerateKey(crand.Reader)
	h, err := hub.New(context.Background(), hub.Config{Store: cs, Keys: &hubkey.Keys{Current: priv}, PollHold: 30 * time.Second,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	mux := http.NewServeMux()
	hub.NewAPI(mux, h)
	srv := httptest.NewServer(hub.Handler(mux, h.Log))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go h.Delivery.WatchBells(ctx)
	admin, err := hub.CreateAPIToken(ctx, h.Store, "bench", []string{"admin"}, 0, "bench")
	if err != nil {
		b.Fatal(err)
	}
	hp := &hubProc{t: b, url: srv.URL}
	var tok struct {
		Token string `json:"token"`
	}
	op(b, hp, admin, "POST", "/v1/enroll-tokens", map[string]any{"uses": 1}, &tok)
	a, err := simagent.Enroll(ctx, srv.URL, tok.Token, "cost-1", []wire.CommandSpec{{Name: "noop", Group: "test"}})
	if err != nil {
		b.Fatal(err)
	}
	var completed atomic.Int64 // commands the agent completed
	go func() {
		var ack []string
		for ctx.Err() == nil {
			works, _, err := a.Poll(ctx, ack)
			ack = nil
			if err != nil {
				continue
			}
			for _, w := range works {
				ack = append(ack, w.InboxKey)
				if w.Envelope.Kind != wire.KindCommand {
					continue
				}
				a.Complete(ctx, w, wire.StatusSucceeded, 0, nil)
				completed.Add(1)
			}
		}
	}()
	var src strings.Builder
	src.WriteString("steps:\n")
	for i := range steps {
		fmt.Fprintf(&src, "  - {name: s%d, type: execute, targets: [cost-1], command: noop}\n", i)
	}
	if code := op(b, hp, admin, "PUT", "/v1/workflows/cost", map[string]any{"source": src.String()}, nil); code != 200 {
		b.Fatalf("apply: %d", code)
	}
	for b.Loop() {
		cs.all.Store(0)
		cs.executions.Store(0)
		completed.Store(0)
		start := time.Now()
		var v executionView
		if code := op(b, hp, admin, "POST", "/v1/executions", map[string]any{"workflow": "cost"}, &v); code != 201 {
			b.Fatalf("start: %d", code)
		}
		var ex struct {
			State struct {
				Status string `json:"status"`
				Events int    `json:"events"`
			} `json:"state"`
		}
		// Watching the agent costs no request; the execution is looked at once its last command is done.
		for completed.Load() < int64(steps) || ex.State.Status != "succeeded" {
			if time.Since(start) > 20*time.Minute || ex.State.Status == "failed" {
				b.Fatalf("execution %s: %s after %s, %d commands done", v.ID, ex.State.Status, time.Since(start), completed.Load())
			}
			time.Sleep(10 * time.Millisecond)
			if completed.Load() >= int64(steps) {
				op(b, hp, admin, "GET", "/v1/executions/"+v.ID, nil, &ex)
			}
		}
		elapsed := time.Since(start)
		events := float64(ex.State.Events)
		b.ReportMetric(events, "events")
		b.ReportMetric(float64(cs.all.Load())/events, "store-req/event")
		b.ReportMetric(float64(cs.executions.Load())/events, "exec-req/event")
		b.ReportMetric(float64(elapsed.Microseconds())/events, "µs/event")
	}
}
