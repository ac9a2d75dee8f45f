package hub_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/audit"
	"github.com/pulsehq/pulse/functions/hub/delivery"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/integration-tests/simagent"
)

// envelopeFails fails one write of a command's delivery (the failAt-th, counting from 1), as a store
// that drops one request does.
type envelopeFails struct {
	store.Store
	failAt int64
	puts   atomic.Int64
}

func (f *envelopeFails) Put(ctx context.Context, k string, r io.Reader, n int64, o store.PutOptions) (store.ObjectInfo, error) {
	if strings.HasPrefix(k, layout.Deliveries) && !strings.HasSuffix(k, "-cancel.json") && f.puts.Add(1) == f.failAt {
		return store.ObjectInfo{}, errors.New("put " + k + ": 503 SlowDown")
	}
	return f.Store.Put(ctx, k, r, n, o)
}

// TestReleaseIsRetriedUntilItLands: when the delivery write of a release fails after its wave was
// written (at create, for a later wave after a result, on the approval that releases it), the target
// sits queued with no envelope; the commands tick finds the release and writes the delivery, the
// agent's poll receives it, and once it is acknowledged no retry offers it again.
func TestReleaseIsRetriedUntilItLands(t *testing.T) {
	catalog := []wire.CommandSpec{{Name: "host_uptime", Group: "host"}, {Name: "shell_run", Group: "shell", Dangerous: true,
		Params: []wire.ParamSpec{{Name: "script", MaxBytes: 100}}}}
	for _, tc := range []struct {
		name   string
		failAt int64
		// run creates the command and drives it to the failing release; it returns the command and the
		// target left without its envelope.
		run func(t *testing.T, th *testHub, a1, a2 *simagent.Agent) (cmd string, stuck *simagent.Agent)
	}{
		{"the first wave, at create", 1, func(t *testing.T, th *testHub, a1, a2 *simagent.Agent) (string, *simagent.Agent) {
			var cmd commandView
			if st := th.call(th.admin, "POST", "/v1/commands", map[string]any{"command": "host_uptime", "targets": []string{a1.ID}}, &cmd); st != 202 {
				t.Fatalf("create: %d %s", st, cmd.Detail)
			}
			return cmd.ID, a1
		}},
		{"the next wave, after a result", 2, func(t *testing.T, th *testHub, a1, a2 *simagent.Agent) (string, *simagent.Agent) {
			var cmd commandView
			if st := th.call(th.admin, "POST", "/v1/commands", map[string]any{"command": "host_uptime", "targets": []string{a1.ID, a2.ID}, "maxConcurrency": 1}, &cmd); st != 202 {
				t.Fatalf("create: %d %s", st, cmd.Detail)
			}
			first, next := a1, a2
			if len(cmd.Agents) != 2 || cmd.Agents[0].State != "queued" || cmd.Agents[1].State != "pending" {
				t.Fatalf("want the first target queued and the second pending: %+v", cmd.Agents)
			}
			if cmd.Agents[0].Agent == a2.ID {
				first, next = a2, a1
			}
			work, _, err := first.Poll(context.Background(), nil)
			if err != nil || len(work) != 1 {
				t.Fatalf("first wave poll: %v %d", err, len(work))
			}
			// The result is stored; releasing the next wave fails, and the agent hears a 503.
			first.Complete(context.Background(), work[0], wire.StatusSucceeded, 0, nil)
			return cmd.ID, next
		}},
		{"the approval that releases it", 1, func(t *testing.T, th *testHub, a1, a2 *simagent.Agent) (string, *simagent.Agent) {
			alice, bob, carol := th.token("alice", "admin"), th.token("bob", "admin"), th.token("carol", "admin")
			var cmd commandView
			if st := th.call(alice, "POST", "/v1/commands", map[string]any{"command": "shell_run", "targets": []string{a1.ID}, "params": map[string]string{"script": "id"}}, &cmd); st != 202 || !cmd.AwaitingApproval {
				t.Fatalf("create: %d %+v", st, cmd)
			}
			th.call(bob, "POST", "/v1/commands/"+cmd.ID+"/approve", map[string]any{}, nil)
			th.call(carol, "POST", "/v1/commands/"+cmd.ID+"/approve", map[string]any{}, nil) // releases; the envelope write fails
			return cmd.ID, a1
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			th := newTestHubOn(t, func(s store.Store) store.Store { return &envelopeFails{Store: s, failAt: tc.failAt} })
			a1, a2 := th.agent("db-1", nil, catalog), th.agent("db-2", nil, catalog)
			ctx := context.Background()
			cmd, stuck := tc.run(t, th, a1, a2)
			// inbox is what the hub offers the stuck agent, from the deliveries in the store.
			inbox := func() []string {
				var keys []string
				err := store.Walk(ctx, th.h.Store, layout.Deliveries, "", 0, func(o store.ObjectInfo) error {
					var d delivery.Stored
					if _, err := store.ReadJSON(ctx, th.h.Store, o.Key, &d); err != nil {
						return err
					}
					for _, b := range d.Batches {
						if d.Ref == cmd && slices.Contains(b.Agents, stuck.ID) {
							keys = append(keys, o.Key)
						}
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				return keys
			}
			state := func() string {
				var st commandView
				th.call(th.admin, "GET", "/v1/commands/"+cmd, nil, &st)
				for _, a := range st.Agents {
					if a.Agent == stuck.ID {
						return a.State
					}
				}
				return ""
			}
			if s, in := state(), inbox(); s != "queued" || len(in) != 0 {
				t.Fatalf("after the failed envelope write: %s with inbox %v, want queued and empty", s, in)
			}
			th.h.Commands.RetryReleases(ctx, 0) // what the tick runs, without waiting for the release to age
			work, _, err := stuck.Poll(ctx, nil)
			if err != nil || len(work) != 1 || work[0].Command.CommandID != cmd {
				t.Fatalf("poll after the tick: %v %+v, want the command", err, work)
			}
			if s := state(); s != "queued" {
				t.Errorf("after the poll: %s, want queued (delivery writes nothing; the first report says it)", s)
			}
			if page, _ := th.bucket().List(ctx, layout.Releasing, "", 0); len(page.Objects) != 0 {
				t.Errorf("releases left for the tick after it landed: %+v", page.Objects)
			}
			if in := inbox(); len(in) != 1 {
				t.Errorf("deliveries for the stuck agent after the tick: %v, want one", in)
			}
			// A release object left behind (its delete failed) is finished again: harmlessly.
			if _, err := store.CreateJSON(ctx, th.h.Store, layout.Release(cmd, "left-behind"), map[string]any{}); err != nil {
				t.Fatal(err)
			}
			th.h.Commands.RetryReleases(ctx, 0)
			if in := inbox(); len(in) != 1 {
				t.Errorf("a retry wrote another delivery: %v", in)
			}
			// Acknowledged: the poll holds and offers nothing again.
			again, _, err := stuck.Poll(ctx, []string{work[0].InboxKey})
			if err != nil || len(again) != 0 {
				t.Errorf("poll after the acknowledgement: %v %+v, want nothing", err, again)
			}
		})
	}
}

// TestPlantedReleaseSignsNothing: someone who can write to the bucket plants a wave and a release
// object for a target the hub has not released (its command awaits approval, or its wave has not
// come). The tick finishes releases, but delivers only the waves the hub wrote: nothing is delivered
// to the target.
func TestPlantedReleaseSignsNothing(t *testing.T) {
	th := newTestHub(t)
	catalog := []wire.CommandSpec{{Name: "host_uptime", Group: "host"}, {Name: "shell_run", Group: "shell", Dangerous: true,
		Params: []wire.ParamSpec{{Name: "script", MaxBytes: 100}}}}
	a1, a2 := th.agent("db-1", nil, catalog), th.agent("db-2", nil, catalog)
	alice := th.token("alice", "admin")
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		spec map[string]any
	}{
		{"awaiting approval", map[string]any{"command": "shell_run", "targets": []string{a1.ID}, "params": map[string]string{"script": "id"}}},
		{"a wave that has not come", map[string]any{"command": "host_uptime", "targets": []string{a1.ID, a2.ID}, "maxConcurrency": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cmd commandView
			if st := th.call(alice, "POST", "/v1/commands", tc.spec, &cmd); st != 202 {
				t.Fatalf("create: %d %s", st, cmd.Detail)
			}
			var target string
			waves := 0
			for _, a := range cmd.Agents {
				if a.State == "pending" || a.State == "awaiting_approval" {
					target = a.Agent
				} else {
					waves = 1
				}
			}
			if target == "" {
				t.Fatalf("no unreleased target: %+v", cmd.Agents)
			}
			th.plant(layout.Wave(cmd.ID, waves+1), map[string]any{"agents": []string{target}, "delivery": cmd.ID + "-w9", "at": time.Now().UTC()})
			th.plant(layout.Release(cmd.ID, "planted"), map[string]any{})
			th.h.Commands.RetryReleases(ctx, 0)
			err := store.Walk(ctx, th.h.Store, layout.Deliveries, "", 0, func(o store.ObjectInfo) error {
				var d delivery.Stored
				if _, err := store.ReadJSON(ctx, th.h.Store, o.Key, &d); err != nil {
					return err
				}
				for _, b := range d.Batches {
					if d.Ref == cmd.ID && slices.Contains(b.Agents, target) {
						t.Errorf("the tick delivered the command to %s on a planted wave (%s)", target, o.Key)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// releaseFails fails writes of release records (releasing/…): the first failAt of them, or all when
// failAt is 0.
type releaseFails struct {
	store.Store
	failAt int64
	puts   atomic.Int64
}

func (f *releaseFails) Put(ctx context.Context, k string, r io.Reader, n int64, o store.PutOptions) (store.ObjectInfo, error) {
	if strings.HasPrefix(k, layout.Releasing) && (f.failAt == 0 || f.puts.Add(1) <= f.failAt) {
		return store.ObjectInfo{}, errors.New("put " + k + ": 503 SlowDown")
	}
	return f.Store.Put(ctx, k, r, n, o)
}

// TestRecordNeverStandsWithoutItsRelease: a create writes its record and its release record at once.
// When the release record's write fails once, it is written again and the command runs; when it
// keeps failing, the create is refused and no record is left behind, so no command sits recorded with
// nothing that would ever release it.
func TestRecordNeverStandsWithoutItsRelease(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		failAt  int64
		created bool
	}{
		{"the release record fails once", 1, true},
		{"the release record keeps failing", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			th := newTestHubOn(t, func(s store.Store) store.Store { return &releaseFails{Store: s, failAt: tc.failAt} })
			a := th.agent("db-1", nil, nil)
			var cmd commandView
			st := th.call(th.admin, "POST", "/v1/commands", map[string]any{"command": "host_uptime", "targets": []string{a.ID}}, &cmd)
			page, err := th.bucket().List(ctx, layout.Commands, "", 0)
			if err != nil {
				t.Fatal(err)
			}
			if tc.created {
				if st != 202 || len(page.Objects) == 0 {
					t.Fatalf("create: %d %s, %d objects under commands/", st, cmd.Detail, len(page.Objects))
				}
				if works, _, err := a.Poll(ctx, nil); err != nil || len(works) != 1 {
					t.Fatalf("poll: %v %+v", err, works)
				}
				return
			}
			if st < 500 || !strings.Contains(cmd.Detail, "releasing") {
				t.Errorf("create: %d %q, want a 5xx problem naming the failed write", st, cmd.Detail)
			}
			if len(page.Objects) != 0 {
				t.Errorf("a refused create left %+v", page.Objects)
			}
			// Its audit record, written beside the record, is followed by one that says it failed.
			recs, err := audit.List(ctx, th.h.Store, audit.Query{})
			if err != nil {
				t.Fatal(err)
			}
			var outcomes []string
			for _, r := range recs {
				if r.Action == "create-command" {
					outcomes = append(outcomes, r.Outcome)
				}
			}
			if len(outcomes) != 2 || outcomes[0] != "ok" || !strings.HasPrefix(outcomes[1], "failed: ") || !strings.Contains(outcomes[1], "releasing") {
				t.Errorf("audit outcomes of the refused create: %q, want ok then failed naming the write", outcomes)
			}
		})
	}
}

// deliveryGate holds every write of a command's delivery until open is closed, as a store busy with a
// thousand agents' results holds a write that joins the queue behind them.
type deliveryGate struct {
	store.Store
	open chan struct{}
}

func (g *deliveryGate) Put(ctx context.Context, k string, r io.Reader, n int64, o store.PutOptions) (store.ObjectInfo, error) {
	if strings.HasPrefix(k, layout.Deliveries) {
		<-g.open
	}
	return g.Store.Put(ctx, k, r, n, o)
}

// TestCreateAnswersBeforeItsDeliveryLands: a create answers, and the agents polling this instance run
// the command, while the delivery's store write is still queued; the delivery lands after, and only
// then is the release record deleted (a hub that died before would leave it for the tick).
func TestCreateAnswersBeforeItsDeliveryLands(t *testing.T) {
	gate := &deliveryGate{open: make(chan struct{})}
	th := newTestHubOn(t, func(s store.Store) store.Store { gate.Store = s; return gate })
	a1 := th.agent("db-1", nil, []wire.CommandSpec{{Name: "host_uptime", Group: "host"}})
	ctx := context.Background()
	answered := make(chan commandView, 1)
	go func() {
		var cmd commandView
		if st := th.call(th.admin, "POST", "/v1/commands", map[string]any{"command": "host_uptime", "targets": []string{a1.ID}}, &cmd); st != 202 {
			t.Errorf("create: %d %s", st, cmd.Detail)
		}
		answered <- cmd
	}()
	var cmd commandView
	select {
	case cmd = <-answered:
	case <-time.After(10 * time.Second):
		close(gate.open)
		t.Fatal("the create waited for its delivery's store write")
	}
	if len(cmd.Agents) != 1 || cmd.Agents[0].State != "queued" {
		t.Fatalf("create answered %+v, want its target queued", cmd.Agents)
	}
	work, _, err := a1.Poll(ctx, nil)
	if err != nil || len(work) != 1 || work[0].Command.CommandID != cmd.ID {
		t.Fatalf("poll while the delivery is not stored: %v %+v", err, work)
	}
	releasing := func() int {
		n := 0
		store.Walk(ctx, th.h.Store, layout.Releasing, "", 0, func(store.ObjectInfo) error { n++; return nil })
		return n
	}
	if n := releasing(); n != 1 {
		t.Fatalf("%d release records while the delivery is not stored, want 1 (the tick's fallback)", n)
	}
	close(gate.open)
	th.h.Bus.Wait()
	if n := releasing(); n != 0 {
		t.Errorf("%d release records after the delivery landed, want 0", n)
	}
	found := false
	store.Walk(ctx, th.h.Store, layout.Deliveries, "", 0, func(o store.ObjectInfo) error {
		found = found || strings.Contains(o.Key, cmd.ID)
		return nil
	})
	if !found {
		t.Error("the delivery never landed in the store")
	}
}
