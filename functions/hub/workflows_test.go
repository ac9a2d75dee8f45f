package hub_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/integration-tests/simagent"
)

// TestListExecutions: executions newest first, filtered by workflow and status, in pages; a bad cursor
// is refused with the reason.
func TestListExecutions(t *testing.T) {
	th := newTestHub(t)
	ask := func(name string) string {
		return "name: " + name + "\nsteps:\n  - name: Ask\n    type: prompt\n    message: Go on?\n    options: [\"Yes\", \"No\"]\n"
	}
	for _, name := range []string{"ask-a", "ask-b"} {
		var out struct{ Detail string }
		if st := th.call(th.admin, "PUT", "/v1/workflows/"+name, map[string]any{"source": ask(name)}, &out); st != 200 {
			t.Fatalf("apply %s: %d %s", name, st, out.Detail)
		}
	}
	var ids []string
	for _, name := range []string{"ask-a", "ask-b", "ask-a"} {
		var ex struct{ ID, Detail string }
		if st := th.call(th.admin, "POST", "/v1/executions", map[string]any{"workflow": name}, &ex); st != 201 {
			t.Fatalf("start %s: %d %s", name, st, ex.Detail)
		}
		ids = append(ids, ex.ID)
	}
	if st := th.call(th.admin, "POST", "/v1/executions/"+ids[1]+"/cancel", nil, nil); st != 200 {
		t.Fatalf("cancel: %d", st)
	}
	cases := []struct {
		query string
		want  []string
	}{
		{"", []string{ids[2], ids[1], ids[0]}},
		{"?workflow=ask-a", []string{ids[2], ids[0]}},
		{"?status=cancelled", []string{ids[1]}},
		{"?status=running", []string{ids[2], ids[0]}},
		{"?limit=1", []string{ids[2]}},
		{"?limit=1&cursor=" + ids[2], []string{ids[1]}},
	}
	for _, c := range cases {
		var page struct {
			Executions []struct{ ID, Status string }
			Next       string
		}
		if st := th.call(th.admin, "GET", "/v1/executions"+c.query, nil, &page); st != 200 {
			t.Errorf("%s: %d", c.query, st)
			continue
		}
		var got []string
		for _, e := range page.Executions {
			got = append(got, e.ID)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("list %q = %v, want %v", c.query, got, c.want)
		}
	}
	var problem struct {
		Detail string
		Errors []struct{ Location string }
	}
	if st := th.call(th.admin, "GET", "/v1/executions?cursor=nope", nil, &problem); st != 422 || len(problem.Errors) != 1 || problem.Errors[0].Location != "cursor" {
		t.Errorf("unknown cursor: %d %+v", st, problem)
	}
	viewer := th.token("eve", "viewer")
	if st := th.call(viewer, "GET", "/v1/executions", nil, nil); st != 200 {
		t.Errorf("a viewer lists executions: %d, want 200", st)
	}
}

// TestExecutionStream: an execution's stream sends every event as it is recorded and ends when the
// execution does; an unknown execution is a 404 problem, not an empty stream.
func TestExecutionStream(t *testing.T) {
	th := newTestHub(t)
	src := "name: ask\nsteps:\n  - name: Ask\n    type: prompt\n    message: Go on?\n    options: [\"Yes\", \"No\"]\n"
	if st := th.call(th.admin, "PUT", "/v1/workflows/ask", map[string]any{"source": src}, nil); st != 200 {
		t.Fatalf("apply: %d", st)
	}
	var ex struct{ ID string }
	if st := th.call(th.admin, "POST", "/v1/executions", map[string]any{"workflow": "ask"}, &ex); st != 201 {
		t.Fatalf("start: %d", st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := th.stream(ctx, th.admin, "/v1/executions/"+ex.ID+"/events", "")
	if e := next(t, events, "started"); e.ID == "" {
		t.Errorf("started event without an id: %+v", e)
	}
	if st := th.call(th.admin, "POST", "/v1/executions/"+ex.ID+"/respond", map[string]any{"step": "Ask", "answer": "Yes"}, nil); st != 200 {
		t.Fatalf("respond: %d", st)
	}
	if e := next(t, events, "prompt_answered"); e.Data["answer"] != "Yes" {
		t.Errorf("answer event: %+v", e)
	}
	rest(t, events) // the stream ends by itself now that the execution has
	if st := th.call(th.admin, "GET", "/v1/executions/nope/events", nil, nil); st != 404 {
		t.Errorf("stream of an unknown execution: %d, want 404", st)
	}
}

// TestConcurrentDrivesIssueEachStepOnce: a result's drive and the tick's (several at once here) all
// see the next step due; drives of one execution in one process take turns, so each step's command is
// accepted once and the execution records two events a step (accepted, result), not one per drive.
func TestConcurrentDrivesIssueEachStepOnce(t *testing.T) {
	th := newTestHub(t)
	a := th.agent("box", nil, []wire.CommandSpec{{Name: "host_uptime", Group: "host"}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Serve(ctx, func(w simagent.Work) {
		if w.Envelope.Kind == wire.KindCommand {
			a.Complete(ctx, w, wire.StatusSucceeded, 0, nil)
		}
	})
	const steps = 6
	var src strings.Builder
	src.WriteString("name: chain\nsteps:\n")
	for i := range steps {
		fmt.Fprintf(&src, "  - {name: s%d, type: execute, targets: [box], command: host_uptime}\n", i)
	}
	if st := th.call(th.admin, "PUT", "/v1/workflows/chain", map[string]any{"source": src.String()}, nil); st != 200 {
		t.Fatalf("apply: %d", st)
	}
	var ex struct{ ID, Detail string }
	if st := th.call(th.admin, "POST", "/v1/executions", map[string]any{"workflow": "chain"}, &ex); st != 201 {
		t.Fatalf("start: %d %s", st, ex.Detail)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 40 {
				th.h.Tick(ctx)
			}
		})
	}
	wg.Wait()
	var st struct {
		State struct {
			Status string `json:"status"`
			Events int    `json:"events"`
		} `json:"state"`
	}
	for deadline := time.Now().Add(20 * time.Second); st.State.Status != "succeeded" && time.Now().Before(deadline); {
		th.h.Tick(ctx)
		th.call(th.admin, "GET", "/v1/executions/"+ex.ID, nil, &st)
		time.Sleep(20 * time.Millisecond)
	}
	if st.State.Status != "succeeded" || st.State.Events != 2*steps+1 {
		t.Fatalf("execution %s with %d events, want succeeded with %d (started, then accepted and result per step)", st.State.Status, st.State.Events, 2*steps+1)
	}
}
