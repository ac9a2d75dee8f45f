package hub_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/integration-tests/simagent"
)

// reported lists what is stored under results/<cmd>/<agent>… for one agent: its markers, chunks and
// result, as the bucket holds them.
func (th *testHub) reported(cmd, agent string) []string {
	th.t.Helper()
	var keys []string
	err := store.Walk(context.Background(), th.bucket(), layout.ResultsOf(cmd)+agent, "", 0, func(o store.ObjectInfo) error {
		keys = append(keys, strings.TrimPrefix(o.Key, layout.ResultsOf(cmd)))
		return nil
	})
	if err != nil {
		th.t.Fatal(err)
	}
	return keys
}

// TestReportsOnlyFromReleasedTargets: an agent may report running, output and a result only for a
// command the hub released to it. A target of a command awaiting approval, a target its wave has not
// reached yet, and one with a queued marker planted in the bucket are refused with a 409 naming the
// command and the agent, and nothing is stored; the command's state does not change.
func TestReportsOnlyFromReleasedTargets(t *testing.T) {
	th := newTestHub(t)
	catalog := []wire.CommandSpec{{Name: "host_uptime", Group: "host"}, {Name: "shell_run", Group: "shell", Dangerous: true,
		Params: []wire.ParamSpec{{Name: "script", MaxBytes: 100}}}}
	a1 := th.agent("web-1", map[string]string{"role": "web"}, catalog)
	a2 := th.agent("web-2", map[string]string{"role": "web"}, catalog)
	alice := th.token("alice", "admin")
	create := func(t *testing.T, spec map[string]any) commandView {
		t.Helper()
		var cmd commandView
		if st := th.call(alice, "POST", "/v1/commands", spec, &cmd); st != 202 {
			t.Fatalf("create: %d %s", st, cmd.Detail)
		}
		return cmd
	}
	stateOf := func(t *testing.T, cmd, agent string) string {
		t.Helper()
		var st commandView
		if code := th.call(th.admin, "GET", "/v1/commands/"+cmd, nil, &st); code != 200 {
			t.Fatalf("get %s: %d", cmd, code)
		}
		for _, a := range st.Agents {
			if a.Agent == agent {
				return a.State
			}
		}
		t.Fatalf("%s is not a target of %s: %+v", agent, cmd, st.Agents)
		return ""
	}
	// pendingOf returns the agent of a maxConcurrency-1 command that its first wave did not release.
	pendingOf := func(t *testing.T, cmd commandView) *simagent.Agent {
		t.Helper()
		for _, a := range cmd.Agents {
			if a.State == "pending" {
				if a.Agent == a1.ID {
					return a1
				}
				return a2
			}
		}
		t.Fatalf("no pending target: %+v", cmd.Agents)
		return nil
	}

	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) (cmd string, agent *simagent.Agent, want string)
	}{
		{"awaiting approval", func(t *testing.T) (string, *simagent.Agent, string) {
			cmd := create(t, map[string]any{"command": "shell_run", "targets": []string{a1.ID}, "params": map[string]string{"script": "id"}})
			if !cmd.AwaitingApproval {
				t.Fatalf("shell_run does not await approval: %+v", cmd)
			}
			return cmd.ID, a1, "awaiting_approval"
		}},
		{"pending in its wave", func(t *testing.T) (string, *simagent.Agent, string) {
			cmd := create(t, map[string]any{"command": "host_uptime", "targets": []string{"role=web"}, "maxConcurrency": 1})
			return cmd.ID, pendingOf(t, cmd), "pending"
		}},
		{"a forged queued marker", func(t *testing.T) (string, *simagent.Agent, string) {
			cmd := create(t, map[string]any{"command": "host_uptime", "targets": []string{"role=web"}, "maxConcurrency": 1})
			a := pendingOf(t, cmd)
			th.plant(layout.Marker(cmd.ID, a.ID, "queued"), map[string]any{"at": time.Now().UTC()})
			return cmd.ID, a, "queued" // the listing shows the plant; what matters is that nothing is believed
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, a, want := tc.setup(t)
			before := th.reported(cmd, a.ID)
			exit := 0
			ctx := context.Background()
			for _, up := range []struct {
				what, method, path string
				body               any
			}{
				{"running", "POST", fmt.Sprintf("/v1/agents/%s/commands/%s/running", a.ID, cmd), wire.Running{At: time.Now()}},
				{"output", "PUT", fmt.Sprintf("/v1/agents/%s/commands/%s/output/0", a.ID, cmd), []byte("forged output\n")},
				{"result", "POST", "/v1/agents/" + a.ID + "/results", wire.Result{CommandID: cmd, Status: wire.StatusSucceeded, ExitCode: &exit}},
			} {
				err := a.Signed(ctx, up.method, up.path, up.body, nil)
				if err == nil || !strings.Contains(err.Error(), "409") || !strings.Contains(err.Error(), cmd) || !strings.Contains(err.Error(), a.ID) {
					t.Errorf("%s from a target not released to: %v, want a 409 naming the command and the agent", up.what, err)
				}
			}
			if after := th.reported(cmd, a.ID); strings.Join(after, ",") != strings.Join(before, ",") {
				t.Errorf("refused reports stored %v (before: %v)", after, before)
			}
			if got := stateOf(t, cmd, a.ID); got != want {
				t.Errorf("state after refused reports: %s, want %s", got, want)
			}
		})
	}
}

// TestCopiedEnvelopeMarksNothingDelivered: a poll that hands an agent an envelope copied from another
// agent's inbox (the inbox is the one place in the bucket the hub does not MAC) records no delivery
// for that agent, whether it is not a target at all, a target its wave has not reached, or a released
// target that got someone else's envelope instead of its own. Its state stays what the hub released.
func TestCopiedEnvelopeMarksNothingDelivered(t *testing.T) {
	th := newTestHub(t)
	a1 := th.agent("db-1", map[string]string{"role": "db"}, nil)
	a2 := th.agent("db-2", map[string]string{"role": "db"}, nil)
	other := th.agent("web-1", map[string]string{"role": "web"}, nil)
	ctx := context.Background()
	byID := map[string]*simagent.Agent{a1.ID: a1, a2.ID: a2}
	create := func(t *testing.T, spec map[string]any) commandView {
		t.Helper()
		var cmd commandView
		if st := th.call(th.admin, "POST", "/v1/commands", spec, &cmd); st != 202 {
			t.Fatalf("create: %d %s", st, cmd.Detail)
		}
		return cmd
	}
	for _, tc := range []struct {
		name string
		// setup returns the command, the agent whose envelope is copied and the agent that polls it.
		setup func(t *testing.T) (cmd string, from, to *simagent.Agent)
	}{
		{"to an agent that is not a target", func(t *testing.T) (string, *simagent.Agent, *simagent.Agent) {
			cmd := create(t, map[string]any{"command": "host_uptime", "targets": []string{a1.ID}})
			return cmd.ID, a1, other
		}},
		{"to a target its wave has not reached", func(t *testing.T) (string, *simagent.Agent, *simagent.Agent) {
			cmd := create(t, map[string]any{"command": "host_uptime", "targets": []string{"role=db"}, "maxConcurrency": 1})
			var from, to *simagent.Agent
			for _, a := range cmd.Agents {
				if a.State == "pending" {
					to = byID[a.Agent]
				} else {
					from = byID[a.Agent]
				}
			}
			if from == nil || to == nil {
				t.Fatalf("want one released and one pending target: %+v", cmd.Agents)
			}
			return cmd.ID, from, to
		}},
		{"over a released target's own envelope", func(t *testing.T) (string, *simagent.Agent, *simagent.Agent) {
			cmd := create(t, map[string]any{"command": "host_uptime", "targets": []string{"role=db"}})
			return cmd.ID, a1, a2
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, from, to := tc.setup(t)
			var before commandView
			th.call(th.admin, "GET", "/v1/commands/"+cmd, nil, &before)
			b, _, err := store.ReadAll(ctx, th.bucket(), layout.InboxEntry(from.ID, cmd))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := store.PutBytes(ctx, th.bucket(), layout.InboxEntry(to.ID, cmd), b, store.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			var resp wire.PollResponse
			if err := to.Signed(ctx, "POST", "/v1/agents/"+to.ID+"/poll", wire.PollRequest{}, &resp); err != nil || len(resp.Envelopes) == 0 {
				t.Fatalf("poll of the copied envelope: %v, %d envelopes", err, len(resp.Envelopes))
			}
			for _, k := range th.reported(cmd, to.ID) {
				if strings.HasSuffix(k, "/delivered.json") {
					t.Errorf("the copied envelope's poll wrote %s", k)
				}
			}
			var after commandView
			th.call(th.admin, "GET", "/v1/commands/"+cmd, nil, &after)
			for i := range after.Agents {
				if after.Agents[i].State != before.Agents[i].State {
					t.Errorf("%s: %s before the poll, %s after", after.Agents[i].Agent, before.Agents[i].State, after.Agents[i].State)
				}
			}
			th.call(th.admin, "POST", "/v1/commands/"+cmd+"/cancel", nil, nil) // leave the next case a clean inbox
			th.bucket().Delete(ctx, layout.InboxEntry(to.ID, cmd))
		})
	}
}
