package hub_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/httpsig"
	"github.com/pulsehq/pulse/agent/wire"
)

// agentRoutes are the JSON bodies the agent protocol accepts, by the index a fuzz input picks.
var agentRoutes = []struct {
	name, path string // path after /v1/; "{id}" and "{cmd}" are filled in
	signed     bool
}{
	{"result", "agents/{id}/results", true},
	{"running", "agents/{id}/commands/{cmd}/running", true},
	{"heartbeat", "agents/{id}/heartbeat", true},
	{"rejection", "agents/{id}/rejections", true},
	{"poll", "agents/{id}/poll", true},
	{"enroll", "enroll", false},
	{"plan status", "agents/{id}/plans/web/status", true},
}

// FuzzAgentBodies posts arbitrary JSON bodies, signed by an enrolled agent, to every route of the agent
// protocol of an in-process hub: decoding, huma's schema checks and the rooms' own validation all run
// as in production. Properties: the hub never panics and never answers 5xx to a body, however
// malformed (a 5xx would make the agent retry a report forever instead of parking it); a refusal is a
// 4xx problem document.
func FuzzAgentBodies(f *testing.F) {
	th := newTestHub(f)
	a := th.agent("web-1", nil, nil)
	var cmd commandView
	if st := th.call(th.admin, "POST", "/v1/commands", map[string]any{"command": "host_uptime", "targets": []string{a.ID}, "timeoutSeconds": 3600}, &cmd); st != 202 {
		f.Fatalf("create command: %d %s", st, cmd.Detail)
	}
	if st, out := th.applyPlan(th.admin, "web", "targets: "+a.ID+"\nunits:\n  - {name: conf, type: file, spec: {path: /etc/x}}\n"); st != 200 {
		f.Fatalf("apply a plan: %d %s", st, out.Detail)
	}
	signer, err := httpsig.NewSigner(a.Key, a.ID, nil)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	exit := 0
	seeds := map[int][]any{
		0: {wire.Result{CommandID: cmd.ID, EnvelopeID: "e1", Status: wire.StatusSucceeded, ExitCode: &exit, StartedAt: now, FinishedAt: now},
			wire.Result{CommandID: "nope", Status: "done"}, wire.Result{CommandID: cmd.ID, Status: wire.StatusFailed, OutputChunks: -1}},
		1: {wire.Running{EnvelopeID: "e1", At: now}},
		2: {wire.Heartbeat{Version: "1", Time: now, Integrations: []wire.IntegrationStatus{{ID: "exec", Reason: "x"}},
			Catalog: []wire.CommandSpec{{Name: "host_uptime", Group: "host"}, {Name: "Bad Name"}}, Hatch: &wire.HatchStatus{Open: true}}},
		3: {wire.Rejection{EnvelopeKey: "k.json", CommandID: cmd.ID, Reason: "bad signature", At: now}, wire.Rejection{}},
		4: {wire.PollRequest{Ack: []string{cmd.ID + ".json", "../../x", ""}}},
		5: {wire.EnrollRequest{Token: "pet_nope", PublicKey: make([]byte, 32), Hostname: "h", Catalog: []wire.CommandSpec{{Name: "a", Group: "b"}}}},
		6: {wire.PlanStatus{Plan: "web", Version: 1, At: now, Units: []wire.UnitStatus{{Unit: "conf", Type: "file", State: wire.UnitFailed, Reason: "disk full", ChangedAt: now}}},
			wire.PlanStatus{Plan: "other", Version: 1, At: now}, wire.PlanStatus{Plan: "web", Version: -1, RefusedVersion: 99, At: now},
			wire.PlanStatus{Plan: "web", Version: 1, At: now, Units: []wire.UnitStatus{{Unit: "conf", State: "exploded", ChangedAt: now}}}},
	}
	for route, bodies := range seeds {
		for _, b := range bodies {
			raw, _ := json.Marshal(b)
			f.Add(uint8(route), raw)
		}
	}
	for _, raw := range []string{``, `null`, `[]`, `{"status":1}`, `{"commandId":{"a":1}}`, `{"at":"yesterday"}`, `{"ack":"x"}`, "{\"reason\":\"\xff\"}"} {
		for route := range agentRoutes {
			f.Add(uint8(route), []byte(raw))
		}
	}

	client := &http.Client{Timeout: 30 * time.Second}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		r := agentRoutes[int(route)%len(agentRoutes)]
		path := strings.NewReplacer("{id}", a.ID, "{cmd}", cmd.ID).Replace("/v1/" + r.path)
		req, err := http.NewRequest(http.MethodPost, th.url+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if r.signed {
			if err := signer.Sign(req); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: the hub dropped the connection (a panic?): %v", r.name, err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("%s: %d for body %q: %s", r.name, resp.StatusCode, body, answer)
		}
		if resp.StatusCode >= 400 && !json.Valid(answer) {
			t.Fatalf("%s: %d without a problem document: %q", r.name, resp.StatusCode, answer)
		}
	})
}
