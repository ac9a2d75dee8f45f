package hub_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
)

// TestFinalStatesDoNotChange: a target that expired (nothing heard from its agent by the command's
// deadline and the grace after it) stays expired when its agent comes back: the late poll changes
// nothing and a late running report or result is refused as a conflict that says why. A target whose
// agent reported in time (its running notice) and finishes after the deadline is still heard.
func TestFinalStatesDoNotChange(t *testing.T) {
	th := newTestHub(t)
	th.h.Commands.LateGrace = 500 * time.Millisecond
	late := th.agent("late-1", map[string]string{"group": "late"}, nil)
	ontime := th.agent("ontime-1", map[string]string{"group": "ontime"}, nil)
	create := func(group string) string {
		var cmd commandView
		if st := th.call(th.admin, "POST", "/v1/commands", map[string]any{"command": "host_uptime", "targets": []string{"group=" + group}, "expiresInSeconds": 3}, &cmd); st != 202 {
			t.Fatalf("create: %d %s", st, cmd.Detail)
		}
		return cmd.ID
	}
	state := func(id string) string {
		var cmd commandView
		if st := th.call(th.admin, "GET", "/v1/commands/"+id, nil, &cmd); st != 200 || len(cmd.Agents) != 1 {
			t.Fatalf("get %s: %d %+v", id, st, cmd)
		}
		return cmd.Agents[0].State
	}
	expired, delivered := create("late"), create("ontime")
	work, _, err := ontime.Poll(context.Background(), nil) // delivered in time
	if err != nil || len(work) != 1 {
		t.Fatalf("on-time poll: %v %d", err, len(work))
	}
	if err := ontime.Running(context.Background(), work[0]); err != nil { // still running a second in
		t.Fatal(err)
	}
	if s := state(delivered); s != "running" {
		t.Fatalf("after the running notice: %s", s)
	}
	time.Sleep(3700 * time.Millisecond) // past the deadline and the grace; 3 s leave a loaded machine time to deliver the on-time one
	if s := state(expired); s != "expired" {
		t.Fatalf("after the deadline: %s, want expired", s)
	}
	ctx := context.Background()
	late.Poll(ctx, nil) // the agent is back; it refuses the expired envelope itself
	if s := state(expired); s != "expired" {
		t.Errorf("after a late poll: %s, want expired still", s)
	}
	exit := 0
	for _, tc := range []struct {
		name string
		path string
		body any
	}{
		{"running", fmt.Sprintf("/v1/agents/%s/commands/%s/running", late.ID, expired), wire.Running{At: time.Now()}},
		{"rejected result", "/v1/agents/" + late.ID + "/results", wire.Result{CommandID: expired, Status: wire.StatusRejected, Reason: "expired"}},
		{"succeeded result", "/v1/agents/" + late.ID + "/results", wire.Result{CommandID: expired, Status: wire.StatusSucceeded, ExitCode: &exit}},
	} {
		err := late.Signed(ctx, "POST", tc.path, tc.body, nil)
		if err == nil || !strings.Contains(err.Error(), "409") || !strings.Contains(err.Error(), "expired") {
			t.Errorf("late %s: %v, want a 409 saying the target expired", tc.name, err)
		}
		if s := state(expired); s != "expired" {
			t.Errorf("after a late %s: %s, want expired still", tc.name, s)
		}
	}
	if err := ontime.Complete(ctx, work[0], wire.StatusSucceeded, 0, nil); err != nil {
		t.Fatalf("a result after the deadline for work delivered in time: %v", err)
	}
	if s := state(delivered); s != "succeeded" {
		t.Errorf("work delivered in time, reported late: %s, want succeeded", s)
	}
}
