package hub_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/integration-tests/simagent"
)

type rejectionsView struct {
	Rejections []struct {
		Agent       string `json:"agent"`
		EnvelopeKey string `json:"envelopeKey"`
		EnvelopeID  string `json:"envelopeId"`
		CommandID   string `json:"commandId"`
		Reason      string `json:"reason"`
	} `json:"rejections"`
}

// A refusal of a signed envelope for a command the hub does not know (a whitelist or parameter refusal
// of work someone planted) reaches /rejections even though its result is refused.
func TestRefusalOfAnUnknownCommandIsRecorded(t *testing.T) {
	th := newTestHub(t)
	a := th.agent("web-1", nil, nil)
	ctx := context.Background()
	reason := `unknown command "format_disk": not in this agent's catalog`
	err := a.Signed(ctx, "POST", "/v1/agents/"+a.ID+"/results", wire.Result{CommandID: "cmd-planted", EnvelopeID: "env-planted",
		Status: wire.StatusRejected, Reason: reason, FinishedAt: time.Now()}, nil)
	var he *simagent.HTTPError
	if !errors.As(err, &he) || he.Status != 404 {
		t.Fatalf("result for an unknown command: %v, want 404 (the reason the rejection is needed)", err)
	}
	if err := a.Signed(ctx, "POST", "/v1/agents/"+a.ID+"/rejections", wire.Rejection{EnvelopeKey: "cmd-planted.json",
		EnvelopeID: "env-planted", CommandID: "cmd-planted", Reason: reason, At: time.Now()}, nil); err != nil {
		t.Fatalf("rejection: %v", err)
	}
	var got rejectionsView
	if st := th.call(th.admin, "GET", "/v1/agents/"+a.ID+"/rejections", nil, &got); st != 200 {
		t.Fatalf("list rejections: %d", st)
	}
	if len(got.Rejections) != 1 || got.Rejections[0].CommandID != "cmd-planted" || got.Rejections[0].Reason != reason ||
		got.Rejections[0].Agent != a.ID || got.Rejections[0].EnvelopeKey != "cmd-planted.json" {
		t.Fatalf("rejections %+v", got.Rejections)
	}
}

// Every text an agent reports is stored at most wire.MaxReasonBytes long, visibly truncated: a
// rejection's reason and ids, a result's reason, an integration's status reason.
func TestAgentReasonsAreCapped(t *testing.T) {
	th := newTestHub(t)
	a := th.agent("web-1", nil, nil)
	ctx := context.Background()
	huge := strings.Repeat("A", 200<<10) // four of them stay under the 1 MiB body limit, each far over the cap
	capped := func(t *testing.T, what, got string) {
		t.Helper()
		if len(got) > wire.MaxReasonBytes || !strings.HasSuffix(got, wire.TruncatedMark) || !strings.HasPrefix(got, "AAAA") {
			t.Errorf("%s: %d bytes stored (ends %q), want at most %d ending with %q", what, len(got), got[max(0, len(got)-20):],
				wire.MaxReasonBytes, wire.TruncatedMark)
		}
	}

	cases := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"rejection", func(t *testing.T) {
			if err := a.Signed(ctx, "POST", "/v1/agents/"+a.ID+"/rejections", wire.Rejection{EnvelopeKey: huge, EnvelopeID: huge,
				CommandID: huge, Reason: huge, At: time.Now()}, nil); err != nil {
				t.Fatal(err)
			}
			var got rejectionsView
			th.call(th.admin, "GET", "/v1/agents/"+a.ID+"/rejections", nil, &got)
			if len(got.Rejections) != 1 {
				t.Fatalf("%d rejections", len(got.Rejections))
			}
			r := got.Rejections[0]
			capped(t, "reason", r.Reason)
			capped(t, "envelopeKey", r.EnvelopeKey)
			capped(t, "envelopeId", r.EnvelopeID)
			capped(t, "commandId", r.CommandID)
		}},
		{"result", func(t *testing.T) {
			var cmd commandView
			if st := th.call(th.admin, "POST", "/v1/commands", map[string]any{"command": "host_uptime", "targets": []string{a.ID}}, &cmd); st != 202 {
				t.Fatalf("create: %d %s", st, cmd.Detail)
			}
			work, _, err := a.Poll(ctx, nil)
			if err != nil || len(work) != 1 {
				t.Fatalf("poll: %d envelopes, %v", len(work), err)
			}
			if err := a.Signed(ctx, "POST", "/v1/agents/"+a.ID+"/results", wire.Result{CommandID: cmd.ID, EnvelopeID: work[0].Envelope.ID,
				Status: wire.StatusFailed, Reason: huge, FinishedAt: time.Now()}, nil); err != nil {
				t.Fatal(err)
			}
			var st struct {
				Agents []struct{ State, Reason string }
			}
			th.call(th.admin, "GET", "/v1/commands/"+cmd.ID, nil, &st)
			if len(st.Agents) != 1 || st.Agents[0].State != "failed" {
				t.Fatalf("status %+v", st)
			}
			capped(t, "result reason", st.Agents[0].Reason)
		}},
		{"heartbeat", func(t *testing.T) {
			if err := a.Signed(ctx, "POST", "/v1/agents/"+a.ID+"/heartbeat", wire.Heartbeat{Version: "sim", Time: time.Now(),
				Integrations: []wire.IntegrationStatus{{ID: "exec", Reason: huge}}}, nil); err != nil {
				t.Fatal(err)
			}
			var list struct {
				Agents []struct {
					ID       string
					Disabled []struct{ ID, Reason string }
				}
			}
			th.call(th.admin, "GET", "/v1/agents", nil, &list)
			found := false
			for _, ag := range list.Agents {
				for _, d := range ag.Disabled {
					if ag.ID == a.ID && d.ID == "exec" {
						found = true
						capped(t, "integration reason", d.Reason)
					}
				}
			}
			if !found {
				t.Fatalf("the disabled integration is not listed: %+v", list)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, tc.check)
	}
}

// TestInlineOutputIsBounded: a result carries its output inline only up to wire.MaxInlineOutput bytes
// and only without chunks; anything else is a 422 that says so, and nothing is stored. Within the
// bound, the output is served as chunk 0 and shown with the command's state.
func TestInlineOutputIsBounded(t *testing.T) {
	th := newTestHub(t)
	a := th.agent("web-1", nil, nil)
	ctx := context.Background()
	var cmd commandView
	if st := th.call(th.admin, "POST", "/v1/commands", map[string]any{"command": "host_uptime", "targets": []string{a.ID}}, &cmd); st != 202 {
		t.Fatalf("create: %d %s", st, cmd.Detail)
	}
	exit := 0
	for _, tc := range []struct {
		name string
		res  wire.Result
	}{
		{"too large", wire.Result{CommandID: cmd.ID, Status: wire.StatusSucceeded, ExitCode: &exit, Output: bytes.Repeat([]byte("x"), wire.MaxInlineOutput+1)}},
		{"beside chunks", wire.Result{CommandID: cmd.ID, Status: wire.StatusSucceeded, ExitCode: &exit, Output: []byte("x"), OutputChunks: 1}},
	} {
		err := a.Signed(ctx, "POST", "/v1/agents/"+a.ID+"/results", tc.res, nil)
		if err == nil || !strings.Contains(err.Error(), "422") || !strings.Contains(err.Error(), "inline output") {
			t.Errorf("%s: %v, want a 422 about inline output", tc.name, err)
		}
		if got := th.reported(cmd.ID, a.ID); len(got) != 0 {
			t.Errorf("%s: stored %v", tc.name, got)
		}
	}
	out := []byte("up 3 days\n")
	if err := a.Signed(ctx, "POST", "/v1/agents/"+a.ID+"/results", wire.Result{CommandID: cmd.ID, Status: wire.StatusSucceeded, ExitCode: &exit,
		Output: out, OutputBytes: int64(len(out))}, nil); err != nil {
		t.Fatal(err)
	}
	var st struct {
		Agents []struct {
			Output []byte `json:"output"`
		} `json:"agents"`
	}
	th.call(th.admin, "GET", "/v1/commands/"+cmd.ID, nil, &st)
	if len(st.Agents) != 1 || !bytes.Equal(st.Agents[0].Output, out) {
		t.Fatalf("the command's state: %+v, want the output inline", st.Agents)
	}
	o, err := th.h.Commands.Output(ctx, cmd.ID, a.ID, 0, 0)
	if err != nil || !bytes.Equal(o.Bytes, out) || !o.Complete || o.NextChunk != 1 {
		t.Fatalf("output: %+v %v", o, err)
	}
}
