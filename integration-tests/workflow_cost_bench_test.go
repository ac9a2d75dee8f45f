package integration

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/integration-tests/simagent"
)

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
	// Every request, and those under v1/executions/ (the execution records and their events, what the
	// workflow driver folds).
	var all, executions atomic.Int64
	_, _, hp, admin, agents := inProcessHub(b, 1, 30*time.Second, []wire.CommandSpec{{Name: "noop", Group: "test"}}, func(key string) {
		all.Add(1)
		if strings.HasPrefix(key, layout.Executions) {
			executions.Add(1)
		}
	})
	a := agents[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var completed atomic.Int64 // commands the agent completed
	go a.Serve(ctx, func(w simagent.Work) {
		if w.Envelope.Kind == wire.KindCommand {
			a.Complete(ctx, w, wire.StatusSucceeded, 0, nil)
			completed.Add(1)
		}
	})
	var src strings.Builder
	src.WriteString("steps:\n")
	for i := range steps {
		fmt.Fprintf(&src, "  - {name: s%d, type: execute, targets: [%s], command: noop}\n", i, a.Name)
	}
	if code := op(b, hp, admin, "PUT", "/v1/workflows/cost", map[string]any{"source": src.String()}, nil); code != 200 {
		b.Fatalf("apply: %d", code)
	}
	for b.Loop() {
		all.Store(0)
		executions.Store(0)
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
		b.ReportMetric(float64(all.Load())/events, "store-req/event")
		b.ReportMetric(float64(executions.Load())/events, "exec-req/event")
		b.ReportMetric(float64(elapsed.Microseconds())/events, "µs/event")
	}
}
