package hub_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/pulsehq/pulse/agent/wire"
)

type commandView struct {
	ID               string         `json:"id"`
	Done             bool           `json:"done"`
	AwaitingApproval bool           `json:"awaitingApproval"`
	Counts           map[string]int `json:"counts"`
	Agents           []struct {
		Agent, State string
		ExitCode     *int
	} `json:"agents"`
	Detail string
}

// TestCommandStreamEndsWithLastResult: the stream of a command sends each agent's state as it is
// stored, with the exit code once final, and ends the moment the last result is in.
func TestCommandStreamEndsWithLastResult(t *testing.T) {
	th := newTestHub(t)
	a1 := th.agent("web-1", map[string]string{"env": "dev"}, nil)
	a2 := th.agent("web-2", map[string]string{"env": "dev"}, nil)
	var cmd commandView
	if st := th.call(th.admin, "POST", "/v1/commands", map[string]any{"command": "host_uptime", "targets": []string{"env=dev"}}, &cmd); st != 202 {
		t.Fatalf("create: %d %s", st, cmd.Detail)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := th.stream(ctx, th.admin, "/v1/commands/"+cmd.ID+"/events", "")
	first := next(t, events, "command")
	if first.Data["done"] != false {
		t.Fatalf("first command event: %v", first.Data)
	}
	serve(t, a1, 0)
	serve(t, a2, 3)
	finals := map[string]float64{}
	sawDone := false
	lastID := ""
	for _, e := range rest(t, events) { // the stream ends once every target is final
		if e.Event == "agent" && (e.Data["state"] == "succeeded" || e.Data["state"] == "failed") {
			finals[e.Data["agent"].(string)] = e.Data["exitCode"].(float64)
			if e.ID == "" {
				t.Errorf("final agent event without an id: %v", e.Data)
			}
			lastID = e.ID
		}
		if e.Event == "command" && e.Data["done"] == true {
			sawDone = true
		}
	}
	if !sawDone {
		t.Error("the stream ended without a command event saying done")
	}
	if finals[a1.ID] != 0 || finals[a2.ID] != 3 || len(finals) != 2 {
		t.Fatalf("final states from the stream: %v", finals)
	}
	// Resuming after the last event sends no agent state again, and ends at once: the command is done.
	resumed := th.stream(ctx, th.admin, "/v1/commands/"+cmd.ID+"/events", lastID)
	for _, e := range rest(t, resumed) {
		if e.Event == "agent" && (e.Data["state"] == "succeeded" || e.Data["state"] == "failed") {
			t.Errorf("resumed stream repeated %v", e.Data)
		}
	}
	if st := th.call(th.admin, "GET", "/v1/commands/nope/events", nil, nil); st != 404 {
		t.Errorf("stream of an unknown command: %d, want 404", st)
	}
}

// TestListCommands filters by state, agent, command and issuer, newest first, in pages.
func TestListCommands(t *testing.T) {
	th := newTestHub(t)
	a := th.agent("db-1", map[string]string{"role": "db"}, nil)
	th.agent("web-1", map[string]string{"role": "web"}, nil)
	op := th.token("ops", "operator")
	var ids []string
	for i, spec := range []struct{ token, command, target string }{
		{th.admin, "host_uptime", "role=db"},
		{op, "host_uptime", "role=web"},
		{op, "echo", "all"},
	} {
		var c commandView
		body := map[string]any{"command": spec.command, "targets": []string{spec.target}}
		if spec.command == "echo" {
			body["params"] = map[string]string{"text": "hi"}
		}
		if st := th.call(spec.token, "POST", "/v1/commands", body, &c); st != 202 {
			t.Fatalf("command %d: %d %s", i, st, c.Detail)
		}
		ids = append(ids, c.ID)
	}
	serve(t, a, 0) // db-1 runs the first and the third
	type page struct {
		Commands []struct{ ID, State, Issuer string }
		Next     string
	}
	cases := []struct {
		query string
		want  []string
	}{
		{"", []string{ids[2], ids[1], ids[0]}},
		{"?issuer=ops", []string{ids[2], ids[1]}},
		{"?agent=" + a.ID, []string{ids[2], ids[0]}},
		{"?command=echo", []string{ids[2]}},
		{"?state=done", []string{ids[0]}},
		{"?state=running", []string{ids[2], ids[1]}},
		{"?limit=2", []string{ids[2], ids[1]}},
		{"?limit=2&cursor=" + ids[1], []string{ids[0]}},
	}
	for _, c := range cases {
		var p page
		if st := th.call(th.admin, "GET", "/v1/commands"+c.query, nil, &p); st != 200 {
			t.Errorf("%s: %d", c.query, st)
			continue
		}
		var got []string
		for _, cmd := range p.Commands {
			got = append(got, cmd.ID)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("list %q = %v, want %v", c.query, got, c.want)
		}
	}
	if st := th.call(th.admin, "GET", "/v1/commands?state=nope", nil, nil); st != 422 {
		t.Errorf("unknown state: %d, want 422", st)
	}
	viewer := th.token("eve", "viewer")
	if st := th.call(viewer, "GET", "/v1/commands", nil, nil); st != 200 {
		t.Errorf("a viewer lists commands: %d, want 200", st)
	}
}

// TestApprovalsInbox: a command awaiting approval says so on its stream, and shows in the inbox of
// the people who may approve it, not in the requester's.
func TestApprovalsInbox(t *testing.T) {
	th := newTestHub(t)
	catalog := []wire.CommandSpec{{Name: "shell_run", Group: "shell", Dangerous: true, Params: []wire.ParamSpec{{Name: "script", MaxBytes: 100}}}}
	th.agent("box", nil, catalog)
	// Two people onboarded by root: a token root made never approves root's own commands.
	requester, second := th.token("alice", "admin"), th.token("second", "admin")
	var cmd commandView
	if st := th.call(requester, "POST", "/v1/commands", map[string]any{"command": "shell_run", "targets": []string{"all"}, "params": map[string]string{"script": "id"}}, &cmd); st != 202 {
		t.Fatalf("create: %d %s", st, cmd.Detail)
	}
	if !cmd.AwaitingApproval {
		t.Fatalf("shell_run does not await approval: %+v", cmd)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ev := next(t, th.stream(ctx, th.admin, "/v1/commands/"+cmd.ID+"/events", ""), "command")
	if ev.Data["message"] != "awaiting approval: 0 of 2" {
		t.Errorf("stream says %v, want awaiting approval: 0 of 2", ev.Data["message"])
	}
	inbox := func(token string) []string {
		var out struct{ Commands []struct{ ID string } }
		if st := th.call(token, "GET", "/v1/approvals", nil, &out); st != 200 {
			t.Fatalf("approvals: %d", st)
		}
		var ids []string
		for _, c := range out.Commands {
			ids = append(ids, c.ID)
		}
		return ids
	}
	if got := inbox(requester); len(got) != 0 {
		t.Errorf("the requester's inbox holds %v", got)
	}
	if got := inbox(second); len(got) != 1 || got[0] != cmd.ID {
		t.Errorf("the second admin's inbox = %v, want [%s]", got, cmd.ID)
	}
	if st := th.call(second, "POST", "/v1/commands/"+cmd.ID+"/approve", map[string]any{}, nil); st != 200 {
		t.Fatalf("approve: %d", st)
	}
	if got := inbox(second); len(got) != 0 {
		t.Errorf("after approving, the inbox still holds %v", got)
	}
}

// TestCreateAnswersWhatAFoldSays: a create answers from what it wrote, without folding the command
// again; the answer is the same as the command read back at once, for every shape of a first release.
func TestCreateAnswersWhatAFoldSays(t *testing.T) {
	th := newTestHub(t)
	catalog := []wire.CommandSpec{{Name: "host_uptime", Group: "host"}, {Name: "shell_run", Group: "shell", Dangerous: true,
		Params: []wire.ParamSpec{{Name: "script", MaxBytes: 100}}}}
	a1, a2 := th.agent("db-1", nil, catalog), th.agent("db-2", nil, catalog)
	alice := th.token("alice", "admin")
	for _, tc := range []struct {
		name string
		spec map[string]any
	}{
		{"every target released", map[string]any{"command": "host_uptime", "targets": []string{a1.ID, a2.ID}}},
		{"one wave of two", map[string]any{"command": "host_uptime", "targets": []string{a1.ID, a2.ID}, "maxConcurrency": 1}},
		{"awaiting approval", map[string]any{"command": "shell_run", "targets": []string{a1.ID}, "params": map[string]string{"script": "id"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var created, read commandView
			if st := th.call(alice, "POST", "/v1/commands", tc.spec, &created); st != 202 {
				t.Fatalf("create: %d %s", st, created.Detail)
			}
			if st := th.call(alice, "GET", "/v1/commands/"+created.ID, nil, &read); st != 200 {
				t.Fatalf("get: %d %s", st, read.Detail)
			}
			if !reflect.DeepEqual(created, read) {
				t.Errorf("create answered\n%+v\nthe command reads\n%+v", created, read)
			}
			if len(created.Counts) == 0 || created.Counts["pending"]+created.Counts["queued"]+created.Counts["awaiting_approval"] != len(created.Agents) {
				t.Errorf("counts %v do not add up to %d targets", created.Counts, len(created.Agents))
			}
		})
	}
}
