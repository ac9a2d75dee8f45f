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
// reached yet, and one named by a wave planted in the bucket are refused with a 409 naming the
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
		{"a forged wave", func(t *testing.T) (string, *simagent.Agent, string) {
			cmd := create(t, map[string]any{"command": "host_uptime", "targets": []string{"role=web"}, "maxConcurrency": 1})
			a := pendingOf(t, cmd)
			th.plant(layout.Wave(cmd.ID, 2), map[string]any{"agents": []string{a.ID}, "delivery": cmd.ID + "-w2", "at": time.Now().UTC()})
			return cmd.ID, a, "pending" // the planted wave fails the integrity check: it releases nobody
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

// TestCopiedDeliveryIsNeverOffered: someone who can write to the bucket copies a genuine delivery (a
// command's signed envelope) to another delivery key, or plants one of their own, hoping a hub offers
// it to an agent. Deliveries are MACed under their key, so neither passes the integrity check: the
// hub never offers them, and says so in its integrity ledger. (An agent would refuse the copy anyway:
// it is not among the envelope's addressees.)
func TestCopiedDeliveryIsNeverOffered(t *testing.T) {
	th := newTestHub(t)
	a1 := th.agent("db-1", map[string]string{"role": "db"}, nil)
	other := th.agent("web-1", map[string]string{"role": "web"}, nil)
	ctx := context.Background()
	var cmd commandView
	if st := th.call(th.admin, "POST", "/v1/commands", map[string]any{"command": "host_uptime", "targets": []string{a1.ID}}, &cmd); st != 202 {
		t.Fatalf("create: %d %s", st, cmd.Detail)
	}
	th.h.Bus.Wait() // the delivery lands in the store after the create's answer
	page, err := th.bucket().List(ctx, layout.Deliveries, "", 0)
	if err != nil || len(page.Objects) != 1 {
		t.Fatalf("deliveries after one create: %v %+v", err, page.Objects)
	}
	raw, _, err := store.ReadAll(ctx, th.bucket(), page.Objects[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := th.h.Commands.Get(ctx, cmd.ID)
	if err != nil {
		t.Fatal(err)
	}
	copied := layout.Delivery(rec.NotAfter, "copied-for-"+other.ID)
	if _, err := store.PutBytes(ctx, th.bucket(), copied, raw, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	planted := layout.Delivery(rec.NotAfter, "planted")
	th.plant(planted, map[string]any{"ref": cmd.ID, "notAfter": rec.NotAfter, "batches": []map[string]any{{"agents": []string{other.ID}}}})
	if err := th.h.Delivery.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	works, _, err := other.Poll(ctx, nil)
	if err != nil || len(works) != 0 {
		t.Fatalf("the other agent's poll: %v %+v, want nothing", err, works)
	}
	var integrity struct {
		Objects []struct{ Key string } `json:"objects"`
	}
	th.call(th.admin, "GET", "/v1/integrity", nil, &integrity)
	found := map[string]bool{}
	for _, o := range integrity.Objects {
		found[o.Key] = true
	}
	if !found[copied] || !found[planted] {
		t.Errorf("the integrity ledger lacks the copied or planted delivery: %+v", integrity.Objects)
	}
	// The genuine delivery still reaches its addressee.
	if works, _, err := a1.Poll(ctx, nil); err != nil || len(works) != 1 || works[0].Command.CommandID != cmd.ID {
		t.Fatalf("the addressee's poll: %v %+v", err, works)
	}
}
