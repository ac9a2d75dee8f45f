package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hub/access"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/integration-tests/simagent"
)

// bucket is the hub's store as someone with write access to the bucket (and no key) sees it.
func (th *testHub) bucket() store.Store { return th.h.Signed.Inner() }

// body reads an object the hub wrote and returns its JSON without the MAC line, as a bucket reader
// would to build a forgery.
func (th *testHub) body(key string) map[string]any {
	th.t.Helper()
	b, _, err := store.ReadAll(context.Background(), th.bucket(), key)
	if err != nil {
		th.t.Fatalf("read %s: %v", key, err)
	}
	_, js, _ := bytes.Cut(b, []byte("\n"))
	var m map[string]any
	if err := json.Unmarshal(js, &m); err != nil {
		th.t.Fatalf("decode %s: %v", key, err)
	}
	return m
}

// plant writes v straight into the bucket.
func (th *testHub) plant(key string, v any) {
	th.t.Helper()
	b, _ := json.Marshal(v)
	if _, err := store.PutBytes(context.Background(), th.bucket(), key, b, store.PutOptions{}); err != nil {
		th.t.Fatal(err)
	}
}

// refused checks that the integrity view names key.
func (th *testHub) refused(key string) {
	th.t.Helper()
	var out struct {
		OK          bool
		Objects     []struct{ Key string }
		ScanRefused []struct{ Key string }
	}
	if st := th.call(th.admin, "GET", "/v1/integrity?scan=true", nil, &out); st != 200 {
		th.t.Fatalf("integrity: %d", st)
	}
	for _, o := range append(out.Objects, out.ScanRefused...) {
		if o.Key == key {
			if out.OK {
				th.t.Errorf("integrity names %s but says ok", key)
			}
			return
		}
	}
	th.t.Errorf("integrity view does not name %s: %+v", key, out)
}

// TestBucketWriterCannotCommand plays someone who can write to the bucket but holds no key (DESIGN.md
// §8): every object they plant or edit is ignored, and the integrity view names it.
func TestBucketWriterCannotCommand(t *testing.T) {
	th := newTestHub(t)
	box := th.agent("box", nil, []wire.CommandSpec{{Name: "host_uptime", Group: "host"}, {Name: "shell_run", Group: "shell", Dangerous: true,
		Params: []wire.ParamSpec{{Name: "script", MaxBytes: 100}}}})
	ctx := context.Background()

	t.Run("a planted workflow with a schedule, applied by admin", func(t *testing.T) {
		src := "name: tmpl\nsteps:\n  - name: up\n    type: execute\n    command: host_uptime\n    targets: all\n"
		var prob struct{ Detail string }
		if st := th.call(th.admin, "PUT", "/v1/workflows/tmpl", map[string]any{"source": src}, &prob); st != 200 {
			t.Fatalf("apply: %d %s", st, prob.Detail)
		}
		v := th.body(layout.WorkflowVersion("tmpl", 1))
		v["name"] = "nightly"
		v["source"] = "name: nightly\nschedule:\n  cron: \"* * * * *\"\nsteps:\n  - name: up\n    type: execute\n    command: host_uptime\n    targets: all\n"
		v["appliedAt"] = time.Now().Add(-5 * time.Minute).UTC()
		v["appliedByPrincipal"] = map[string]any{"id": "admin", "groups": []string{"admin"}, "via": "token"}
		key := layout.WorkflowVersion("nightly", 1)
		th.plant(key, v)
		th.h.Tick(ctx)
		th.h.Tick(ctx)
		var ex struct{ Executions []struct{ Workflow string } }
		th.call(th.admin, "GET", "/v1/executions", nil, &ex)
		if len(ex.Executions) != 0 {
			t.Fatalf("the planted schedule started %+v", ex.Executions)
		}
		if st := th.call(th.admin, "GET", "/v1/workflows/nightly", nil, nil); st != 404 {
			t.Fatalf("GET the planted workflow: %d, want 404", st)
		}
		// A planted newer version of a genuine workflow neither runs nor hides the genuine one.
		v["name"] = "tmpl"
		v["version"] = 2
		th.plant(layout.WorkflowVersion("tmpl", 2), v)
		var got struct{ Version int }
		if st := th.call(th.admin, "GET", "/v1/workflows/tmpl", nil, &got); st != 200 || got.Version != 1 {
			t.Fatalf("GET tmpl after a planted version 2: %d version %d, want 200 version 1", st, got.Version)
		}
		th.refused(key)
	})

	t.Run("a planted operator token", func(t *testing.T) {
		secret := "pulse_forged-by-a-bucket-writer"
		key := layout.Token(access.HashSecret(secret))
		th.plant(key, access.APIToken{Name: "admin", Groups: []string{"admin"}, CreatedAt: time.Now(), Owner: "person:admin"})
		if st := th.call(secret, "GET", "/v1/agents", nil, nil); st != 401 {
			t.Fatalf("a planted token: %d, want 401", st)
		}
		th.refused(key)
	})

	t.Run("a planted enrollment token", func(t *testing.T) {
		secret := "pet_forged"
		key := layout.EnrollToken(access.HashSecret(secret))
		th.plant(key, map[string]any{"labels": map[string]string{}, "uses": 5, "expiresAt": time.Now().Add(time.Hour), "createdAt": time.Now()})
		_, err := enrollWith(th, secret)
		if err == nil || !strings.Contains(err.Error(), "403") {
			t.Fatalf("enrolling with a planted token: %v, want 403", err)
		}
		th.refused(key)
	})

	t.Run("planted labels and a planted retirement", func(t *testing.T) {
		th.plant(layout.AgentLabelsVersion(box.ID, 1), map[string]any{"version": 1, "labels": map[string]string{"env": "prod"}, "changedBy": "admin", "changedAt": time.Now()})
		th.plant(layout.RetiredAgent(box.ID), map[string]any{"at": time.Now(), "by": "admin"})
		var cmd struct{ Detail string }
		if st := th.call(th.admin, "POST", "/v1/commands", map[string]any{"command": "host_uptime", "targets": []string{"env=prod"}}, &cmd); st == 202 {
			t.Fatalf("a planted label made box a target of env=prod")
		}
		var agents struct{ Agents []struct{ ID string } }
		if st := th.call(th.admin, "GET", "/v1/agents", nil, &agents); st != 200 || len(agents.Agents) != 1 {
			t.Fatalf("list agents with planted objects beside them: %d %+v, want box still listed", st, agents)
		}
		if _, _, err := box.Poll(ctx, nil); err != nil {
			t.Fatalf("a planted retirement refused box: %v", err)
		}
		th.refused(layout.AgentLabelsVersion(box.ID, 1))
	})

	t.Run("planted approvals", func(t *testing.T) {
		alice := th.token("alice", "admin")
		var cmd commandView
		if st := th.call(alice, "POST", "/v1/commands", map[string]any{"command": "shell_run", "targets": []string{"all"}, "params": map[string]string{"script": "id"}}, &cmd); st != 202 {
			t.Fatalf("create: %d %s", st, cmd.Detail)
		}
		for _, who := range []string{"bob", "carol"} {
			th.plant(layout.Approval(cmd.ID, who), map[string]any{"by": who, "person": "person:" + who, "via": "token", "at": time.Now()})
		}
		var st commandView
		th.call(alice, "GET", "/v1/commands/"+cmd.ID, nil, &st)
		if !st.AwaitingApproval {
			t.Fatalf("two planted approvals released the command: %+v", st)
		}
		th.refused(layout.Approval(cmd.ID, "bob"))
	})

	t.Run("a planted cancel and denial stop nothing", func(t *testing.T) {
		var cmd commandView
		if st := th.call(th.admin, "POST", "/v1/commands", map[string]any{"command": "host_uptime", "targets": []string{"all"}}, &cmd); st != 202 {
			t.Fatalf("create: %d", st)
		}
		th.plant(layout.Cancelled(cmd.ID), map[string]any{"by": "admin", "at": time.Now()})
		th.plant(layout.Denied(cmd.ID), map[string]any{"by": "admin", "at": time.Now()})
		var st struct{ Cancelled, Denied bool }
		th.call(th.admin, "GET", "/v1/commands/"+cmd.ID, nil, &st)
		if st.Cancelled || st.Denied {
			t.Fatalf("planted objects stopped the command: %+v", st)
		}
		w, ok := polled(t, box, cmd.ID)
		if !ok {
			t.Fatalf("the poll brought no envelope of %s", cmd.ID)
		}
		if err := box.Complete(ctx, w, wire.StatusSucceeded, 0, nil); err != nil {
			t.Fatalf("the result of a command with a planted cancel: %v", err)
		}
	})

	t.Run("an edited result shows as tampered", func(t *testing.T) {
		var cmd commandView
		if st := th.call(th.admin, "POST", "/v1/commands", map[string]any{"command": "host_uptime", "targets": []string{"all"}}, &cmd); st != 202 {
			t.Fatalf("create: %d", st)
		}
		w, ok := polled(t, box, cmd.ID)
		if !ok {
			t.Fatalf("the poll brought no envelope of %s", cmd.ID)
		}
		if err := box.Complete(ctx, w, wire.StatusFailed, 3, []byte("disk full\n")); err != nil {
			t.Fatal(err)
		}
		key := layout.Result(cmd.ID, box.ID)
		res := th.body(key)
		res["status"], res["exitCode"] = "succeeded", 0
		th.plant(key, res)
		var st struct {
			Agents []struct{ State, Reason string }
		}
		th.call(th.admin, "GET", "/v1/commands/"+cmd.ID, nil, &st)
		if len(st.Agents) != 1 || st.Agents[0].State != "tampered" {
			t.Fatalf("after editing the result to succeeded: %+v, want tampered", st.Agents)
		}
		th.refused(key)
		// And an edited output chunk is named, not silently served or waited for.
		chunk := layout.Chunk(cmd.ID, box.ID, 0)
		store.PutBytes(ctx, th.bucket(), chunk, []byte("all good\n"), store.PutOptions{})
		var prob struct{ Detail string }
		if code := th.call(th.admin, "GET", "/v1/commands/"+cmd.ID+"/output/"+box.ID, nil, &prob); code != 409 || !strings.Contains(prob.Detail, "tampered") {
			t.Fatalf("output after editing a chunk: %d %q, want 409 naming the tampering", code, prob.Detail)
		}
	})
}

// enrollWith enrolls a simulated agent with a raw enrollment token secret.
func enrollWith(th *testHub, secret string) (*simagent.Agent, error) {
	return simagent.Enroll(context.Background(), th.url, secret, "intruder", nil)
}

// TestFourEyesAreTwoPeople: a second credential of the requester never approves the requester's
// command, whoever's name it carries; people are compared by how they were established, case-blind.
func TestFourEyesAreTwoPeople(t *testing.T) {
	th := newTestHub(t)
	th.agent("box", nil, []wire.CommandSpec{{Name: "shell_run", Group: "shell", Dangerous: true, Params: []wire.ParamSpec{{Name: "script", MaxBytes: 100}}}})
	alice, bob := th.token("alice", "admin"), th.token("bob", "admin")
	request := func() string {
		var cmd commandView
		if st := th.call(alice, "POST", "/v1/commands", map[string]any{"command": "shell_run", "targets": []string{"all"}, "params": map[string]string{"script": "id"}}, &cmd); st != 202 || !cmd.AwaitingApproval {
			t.Fatalf("create: %d %+v", st, cmd)
		}
		return cmd.ID
	}
	// alice makes herself a second token, and one "for" someone else: both are hers.
	mint := func(name, forPerson string) string {
		var out struct{ Token, Owner string }
		body := map[string]any{"name": name, "groups": []string{"admin"}}
		if forPerson != "" {
			body["for"] = forPerson
		}
		if st := th.call(alice, "POST", "/v1/tokens", body, &out); st != 201 {
			t.Fatalf("alice creates %s: %d", name, st)
		}
		return out.Token
	}
	sock, puppet := mint("alice-sock", ""), mint("carol", "carol")
	// and the puppet makes another one, for itself.
	var deeper struct{ Token string }
	th.call(puppet, "POST", "/v1/tokens", map[string]any{"name": "dave", "groups": []string{"admin"}, "for": "dave"}, &deeper)

	id := request()
	if st := th.call(bob, "POST", "/v1/commands/"+id+"/approve", map[string]any{}, nil); st != 200 {
		t.Fatalf("bob approves: %d", st)
	}
	for name, tok := range map[string]string{"alice's second token": sock, "a token alice made for carol": puppet, "a token made by that one": deeper.Token} {
		var prob struct{ Detail string }
		if st := th.call(tok, "POST", "/v1/commands/"+id+"/approve", map[string]any{}, &prob); st != 403 {
			t.Errorf("%s approves alice's command: %d %s, want 403", name, st, prob.Detail)
		}
	}
	var st commandView
	th.call(alice, "GET", "/v1/commands/"+id, nil, &st)
	if !st.AwaitingApproval {
		t.Fatalf("alice's own credentials released her command: %+v", st)
	}
	// bob again, through a second token of his own: still one person.
	var bob2 struct{ Token string }
	th.call(bob, "POST", "/v1/tokens", map[string]any{"name": "BOB-laptop", "groups": []string{"admin"}}, &bob2)
	if code := th.call(bob2.Token, "POST", "/v1/commands/"+id+"/approve", map[string]any{}, nil); code != 409 {
		t.Fatalf("bob's second token approves again: %d, want 409 (already approved)", code)
	}
}
