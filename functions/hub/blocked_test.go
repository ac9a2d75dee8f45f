package hub_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub/access"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/integration-tests/simagent"
)

var blockCatalog = []wire.CommandSpec{{Name: "host_uptime", Group: "host"}, {Name: "shell_run", Group: "shell", Dangerous: true,
	Params: []wire.ParamSpec{{Name: "script", MaxBytes: 100}}}}

// polled reports whether an agent's next poll carries an envelope of command id.
func polled(t *testing.T, a *simagent.Agent, id string) (simagent.Work, bool) {
	t.Helper()
	works, _, err := a.Poll(context.Background(), nil)
	if err != nil {
		t.Fatalf("poll %s: %v", a.ID, err)
	}
	for _, w := range works {
		if w.Command.CommandID == id {
			return w, true
		}
	}
	return simagent.Work{}, false
}

// waves starts a host_uptime on two agents, one at a time (maxConcurrency 1, and maxErrors if not 0),
// and returns the command, the agent of the first wave and the other one.
func waves(t *testing.T, th *testHub, a, b *simagent.Agent, maxErrors int) (commandView, *simagent.Agent, *simagent.Agent) {
	t.Helper()
	var cmd commandView
	body := map[string]any{"command": "host_uptime", "targets": []string{a.ID, b.ID}, "maxConcurrency": 1, "maxErrors": maxErrors}
	if st := th.call(th.admin, "POST", "/v1/commands", body, &cmd); st != 202 {
		t.Fatalf("create %d %s", st, cmd.Detail)
	}
	for _, s := range cmd.Agents {
		if s.Agent == b.ID && s.State != "pending" {
			return cmd, b, a
		}
	}
	return cmd, a, b
}

// TestPlantedObjectsBlockNoDecision: a bucket writer who plants an object under the key of a decision
// the hub is about to write (a revocation, a cancel, a denial, a deletion, a retirement, an envelope)
// does not make that decision a silent no-op: the hub replaces what it did not write. Found by review.
func TestPlantedObjectsBlockNoDecision(t *testing.T) {
	ctx := context.Background()
	t.Run("revoking a token", func(t *testing.T) {
		th := newTestHub(t)
		leaked := th.token("ci", "admin")
		th.plant(layout.RevokedToken(access.HashSecret(leaked)), map[string]any{"by": "x"})
		if st := th.call(th.admin, "DELETE", "/v1/tokens/"+access.HashSecret(leaked)[:16], nil, nil); st != 204 {
			t.Fatalf("revoke: %d", st)
		}
		if st := th.call(leaked, "GET", "/v1/agents", nil, nil); st != 401 {
			t.Fatalf("the revoked token: %d, want 401", st)
		}
	})
	t.Run("cancelling", func(t *testing.T) {
		th := newTestHub(t)
		cmd, first, next := waves(t, th, th.agent("db-1", nil, blockCatalog), th.agent("db-2", nil, blockCatalog), 0)
		th.plant(layout.Cancelled(cmd.ID), map[string]any{"by": "x"})
		if st := th.call(th.admin, "POST", "/v1/commands/"+cmd.ID+"/cancel", map[string]any{}, nil); st != 200 {
			t.Fatalf("cancel: %d", st)
		}
		if w, ok := polled(t, first, cmd.ID); ok {
			first.Complete(ctx, w, wire.StatusSucceeded, 0, nil)
		}
		if _, ok := polled(t, next, cmd.ID); ok {
			t.Fatal("after the cancel, the next wave was released")
		}
	})
	t.Run("denying", func(t *testing.T) {
		th := newTestHub(t)
		box := th.agent("box", nil, blockCatalog)
		alice, bob, carol, dave := th.token("alice", "admin"), th.token("bob", "admin"), th.token("carol", "admin"), th.token("dave", "admin")
		var cmd commandView
		if st := th.call(alice, "POST", "/v1/commands", map[string]any{"command": "shell_run", "targets": []string{box.ID}, "params": map[string]string{"script": "id"}}, &cmd); st != 202 {
			t.Fatalf("create %d", st)
		}
		th.plant(layout.Denied(cmd.ID), map[string]any{"by": "x"})
		var d struct{ Denied bool }
		if st := th.call(bob, "POST", "/v1/commands/"+cmd.ID+"/deny", map[string]any{}, &d); st != 200 || !d.Denied {
			t.Fatalf("deny: %d denied=%v", st, d.Denied)
		}
		th.call(carol, "POST", "/v1/commands/"+cmd.ID+"/approve", map[string]any{}, nil)
		th.call(dave, "POST", "/v1/commands/"+cmd.ID+"/approve", map[string]any{}, nil)
		if _, ok := polled(t, box, cmd.ID); ok {
			t.Fatal("the denied command was released")
		}
	})
	t.Run("deleting a workflow", func(t *testing.T) {
		th := newTestHub(t)
		th.agent("box", nil, blockCatalog)
		src := "name: nightly\nschedule:\n  cron: \"* * * * *\"\nsteps:\n  - name: up\n    type: execute\n    command: host_uptime\n    targets: all\n"
		if st := th.call(th.admin, "PUT", "/v1/workflows/nightly", map[string]any{"source": src}, nil); st != 200 {
			t.Fatalf("apply: %d", st)
		}
		th.plant(layout.WorkflowVersion("nightly", 2), map[string]any{"deleted": true})
		if st := th.call(th.admin, "DELETE", "/v1/workflows/nightly", nil, nil); st != 204 {
			t.Fatalf("delete: %d", st)
		}
		if st := th.call(th.admin, "GET", "/v1/workflows/nightly", nil, nil); st != 404 {
			t.Fatalf("GET after the delete: %d, want 404", st)
		}
	})
	t.Run("retiring an agent", func(t *testing.T) {
		th := newTestHub(t)
		box := th.agent("box", nil, blockCatalog)
		th.plant(layout.RetiredAgent(box.ID), map[string]any{"by": "x"})
		if st := th.call(th.admin, "POST", "/v1/agents/"+box.ID+"/retire", map[string]any{"reason": "key leaked"}, nil); st != 200 {
			t.Fatalf("retire: %d", st)
		}
		if _, _, err := box.Poll(ctx, nil); err == nil {
			t.Fatal("the retired agent is still accepted")
		}
	})
	t.Run("a cancel envelope", func(t *testing.T) {
		th := newTestHub(t)
		box := th.agent("box", nil, blockCatalog)
		var cmd commandView
		if st := th.call(th.admin, "POST", "/v1/commands", map[string]any{"command": "host_uptime", "targets": []string{box.ID}}, &cmd); st != 202 {
			t.Fatalf("create %d", st)
		}
		works, _, err := box.Poll(ctx, nil)
		if err != nil || len(works) != 1 {
			t.Fatalf("poll: %v %+v", err, works)
		}
		rec, err := th.h.Commands.Get(ctx, cmd.ID)
		if err != nil {
			t.Fatal(err)
		}
		key := layout.Delivery(rec.NotAfter.Add(time.Duration(rec.TimeoutSeconds)*time.Second), cmd.ID+"-cancel")
		th.plant(key, map[string]any{"junk": true})
		if st := th.call(th.admin, "POST", "/v1/commands/"+cmd.ID+"/cancel", map[string]any{}, nil); st != 200 {
			t.Fatalf("cancel: %d", st)
		}
		if b, _, _ := store.ReadAll(ctx, th.bucket(), key); strings.Contains(string(b), "junk") {
			t.Fatalf("the delivery key still holds the planted object, not the hub's cancel: %s", b)
		}
		works, _, err = box.Poll(ctx, []string{works[0].InboxKey})
		if err != nil || len(works) != 1 || works[0].Envelope.Kind != wire.KindCancel {
			t.Fatalf("after the cancel the agent polled %v %+v, want the hub's cancel envelope", err, works)
		}
	})
}

// TestPlantedFinalsReleaseNoWave: planted results (and a planted release index to make the tick look)
// neither free a maxConcurrency slot nor hide a failure from maxErrors.
func TestPlantedFinalsReleaseNoWave(t *testing.T) {
	ctx := context.Background()
	th := newTestHub(t)
	cmd, first, next := waves(t, th, th.agent("db-1", nil, blockCatalog), th.agent("db-2", nil, blockCatalog), 0)
	th.plant(layout.Result(cmd.ID, first.ID), map[string]any{"status": "succeeded"})
	th.plant(layout.Release(cmd.ID, "01900000-0000-7000-8000-000000000000"), map[string]any{})
	th.h.Commands.RetryReleases(ctx, 0)
	if _, ok := polled(t, next, cmd.ID); ok {
		t.Fatal("planted markers released the second wave while the first still runs")
	}

	// maxErrors: a planted success in the key of a genuine failure hides nothing.
	cmd2, one, other := waves(t, th, th.agent("db-3", nil, blockCatalog), th.agent("db-4", nil, blockCatalog), 1)
	th.plant(layout.Result(cmd2.ID, one.ID), map[string]any{"status": "succeeded"})
	w, ok := polled(t, one, cmd2.ID)
	if !ok {
		t.Fatal("the first wave did not arrive")
	}
	if err := one.Complete(ctx, w, wire.StatusFailed, 1, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := polled(t, other, cmd2.ID); ok {
		t.Fatal("a planted success hid a failure from maxErrors: the next wave was released")
	}
}
