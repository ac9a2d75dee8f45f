package integration

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/integration-tests/s3server"
)

// planMITM sits between real agents and the hub: it keeps the plans the hub answered each agent,
// and answers an agent's plan fetch with what the test says instead, as whoever controls the path
// (or the bucket, or a hub's host) could.
type planMITM struct {
	mu       sync.Mutex
	seen     map[string][]wire.SignedEnvelope // agent → the envelopes of its last genuine fetch
	override map[string][]wire.SignedEnvelope // agent → what its fetches get instead
	push     map[string][]wire.SignedEnvelope // agent → what its next poll is answered with, once
}

func (m *planMITM) handler(hub *url.URL) http.Handler {
	proxy := httputil.NewSingleHostReverseProxy(hub)
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if agent, isPoll := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/v1/agents/"), "/poll"); isPoll && r.Method == http.MethodPost {
			m.mu.Lock()
			envs, pushing := m.push[agent]
			delete(m.push, agent)
			m.mu.Unlock()
			if pushing {
				w.Header().Set("Content-Type", "application/json")
				json.NewEncoder(w).Encode(wire.PollResponse{Envelopes: envs, HoldSeconds: 5})
				return
			}
		}
		agent, isFetch := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/v1/agents/"), "/plans")
		if !isFetch || r.Method != http.MethodGet || strings.Contains(agent, "/") {
			proxy.ServeHTTP(w, r)
			return
		}
		m.mu.Lock()
		fake, faking := m.override[agent]
		m.mu.Unlock()
		if faking {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(wire.AgentPlans{Plans: fake})
			return
		}
		rec := httptest.NewRecorder()
		proxy.ServeHTTP(rec, r)
		var ap wire.AgentPlans
		if rec.Code == 200 && json.Unmarshal(rec.Body.Bytes(), &ap) == nil {
			m.mu.Lock()
			m.seen[agent] = ap.Plans
			m.mu.Unlock()
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	})
}

func (m *planMITM) genuine(agent string) []wire.SignedEnvelope {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seen[agent]
}

// deliver answers the agent's next poll with envs, as if the hub delivered them.
func (m *planMITM) deliver(agent string, envs ...wire.SignedEnvelope) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.push[agent] = envs
}

func (m *planMITM) answer(agent string, envs ...wire.SignedEnvelope) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if envs == nil {
		delete(m.override, agent)
		return
	}
	m.override[agent] = envs
}

// TestForgedPlansChangeNothing: real `pulse serve` on MinIO and two real pulse-agent processes whose
// requests pass through a man in the middle. Holding version 2, agent A is delivered a genuine older
// version and a plan signed with another key, and its plan fetches are answered with that forged
// plan, an unsigned one, one whose payload was changed after signing, and agent B's genuine
// envelope: A refuses each, reports it (a refused version in the plan's status, a refused envelope
// among its rejections), and its file and its status stay version 2's. An older version in a fetch
// (what a lagging hub instance lists) is passed over without a report, and changes nothing either.
func TestForgedPlansChangeNothing(t *testing.T) {
	dir := t.TempDir()
	storeURL, token := initStore(t, dir)
	h := startHub(t, dir, s3server.Env(), "--store", storeURL, "--poll-hold", "5s")
	hubURL, _ := url.Parse(h.url)
	mitm := &planMITM{seen: map[string][]wire.SignedEnvelope{}, override: map[string][]wire.SignedEnvelope{}, push: map[string][]wire.SignedEnvelope{}}
	front := httptest.NewServer(mitm.handler(hubURL))
	t.Cleanup(front.Close)
	tokOut, tokErr, code := pulseCLI(t, h.url, token, "enroll-token", "create", "--uses", "2", "--labels", "role=web")
	if code != 0 {
		t.Fatalf("enroll-token create: %s", tokErr)
	}
	root := filepath.Join(dir, "managed")
	os.MkdirAll(root, 0o755)
	cfg := strings.Replace(agentConfig, "[agent]\n", "[agent]\nplan_period = \"1s\"\n", 1) + fmt.Sprintf("\n[files]\nroots = [%q]\n", root)
	a := startAgent(t, front.URL, filepath.Join(dir, "agent-a"), cfg, "--enroll-token", strings.TrimSpace(tokOut))
	b := startAgent(t, front.URL, filepath.Join(dir, "agent-b"), cfg, "--enroll-token", strings.TrimSpace(tokOut))
	idA, idB := a.id(), b.id()
	conf := filepath.Join(root, "app.conf")
	source := func(content string) string {
		return fmt.Sprintf("targets: [role=web]\nunits:\n  - name: conf\n    type: file\n    spec: {path: %q, content: %q}\n", conf, content)
	}
	waitVersion := func(n int) {
		t.Helper()
		waitFor(t, fmt.Sprintf("version %d converged on both agents", n), 60*time.Second, func() bool {
			v := planStatus(t, h.url, token, "web")
			return len(v.Agents) == 2 && v.every(n, "converged")
		})
	}
	envelopeOf := func(agent string, version int) wire.SignedEnvelope {
		t.Helper()
		var got wire.SignedEnvelope
		waitFor(t, fmt.Sprintf("agent %s fetched version %d", agent, version), 30*time.Second, func() bool {
			for _, se := range mitm.genuine(agent) {
				var env wire.Envelope
				var p wire.Plan
				if json.Unmarshal(se.Payload, &env) == nil && json.Unmarshal(env.Body, &p) == nil && p.Version == version {
					got = se
					return true
				}
			}
			return false
		})
		return got
	}
	if out, code := applyPlan(t, h.url, token, "web", dir, source("v1\n")); code != 0 {
		t.Fatalf("apply v1: %s", out)
	}
	waitVersion(1)
	v1A := envelopeOf(idA, 1)
	if out, code := applyPlan(t, h.url, token, "web", dir, source("v2\n")); code != 0 {
		t.Fatalf("apply v2: %s", out)
	}
	waitVersion(2)
	v2A, v2B := envelopeOf(idA, 2), envelopeOf(idB, 2)

	var env wire.Envelope
	json.Unmarshal(v2A.Payload, &env)
	forgedBody, _ := json.Marshal(wire.Plan{Name: "web", Version: 9, Units: []wire.Unit{{Name: "conf", Type: "file",
		Spec: json.RawMessage(fmt.Sprintf(`{"path":%q,"content":"forged\n"}`, conf))}}})
	forgedEnv := env
	forgedEnv.ID, forgedEnv.Body = "plan-web-v9", forgedBody
	_, otherKey, _ := ed25519.GenerateKey(nil)
	forged, err := wire.Sign(forgedEnv, v2A.KeyID, otherKey) // the hub's key id, another key
	if err != nil {
		t.Fatal(err)
	}
	unsigned := v2A
	unsigned.Signature = nil
	tampered := v2A
	tampered.Payload = bytes.Replace(v2A.Payload, []byte(`"version":2`), []byte(`"version":3`), 1)
	if bytes.Equal(tampered.Payload, v2A.Payload) {
		t.Fatal("could not tamper with the payload")
	}

	rejections := func() string { // GET /v1/agents/{id}/rejections, as the hub stored them
		t.Helper()
		req, _ := http.NewRequest("GET", h.url+"/v1/agents/"+idA+"/rejections", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("rejections: %d %s", resp.StatusCode, b)
		}
		return string(b)
	}
	cases := []struct {
		name      string
		answer    wire.SignedEnvelope
		delivered bool   // pushed in a poll's answer, not listed in a fetch of the agent's plans
		refused   string // in the plan's status (a version refused)
		rejection string // among the agent's rejections (an envelope refused)
	}{
		{"a genuine older version delivered", v1A, true, "version 1 is older than version 2", ""},
		{"a plan signed with another key", forged, false, "", "signature"},
		{"an unsigned plan", unsigned, false, "", "signature"},
		{"a payload changed after signing", tampered, false, "", "signature"},
		{"another agent's genuine envelope", v2B, false, "", "another agent"},
		{"a forged plan delivered", forged, true, "", "signature"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := strings.Count(rejections(), `"reason"`)
			if tc.delivered {
				mitm.deliver(idA, tc.answer)
			} else {
				mitm.answer(idA, tc.answer)
				defer mitm.answer(idA)
			}
			if tc.refused != "" {
				waitFor(t, "the refusal in the plan's status", 30*time.Second, func() bool {
					for _, ag := range planStatus(t, h.url, token, "web").Agents {
						if ag.Agent == idA && strings.Contains(ag.Refused, tc.refused) {
							return true
						}
					}
					return false
				})
			} else {
				waitFor(t, "the rejection reported", 30*time.Second, func() bool {
					out := rejections()
					return strings.Count(out, `"reason"`) > before && strings.Contains(out, tc.rejection)
				})
			}
			for _, ag := range planStatus(t, h.url, token, "web").Agents {
				if ag.Agent == idA && (ag.Version != 2 || len(ag.Units) != 1 || ag.Units[0].State != "converged") {
					t.Fatalf("agent A's status changed: %+v", ag)
				}
			}
			if b, _ := os.ReadFile(conf); string(b) != "v2\n" {
				t.Fatalf("the managed file: %q, want version 2's", b)
			}
		})
	}

	// An older version in a fetch is what a hub instance that lags behind another one lists for a
	// while: it is passed over, changes nothing, and is not reported as a refusal.
	mitm.answer(idA, v1A)
	time.Sleep(3 * time.Second) // three plan periods
	mitm.answer(idA)
	if b, _ := os.ReadFile(conf); string(b) != "v2\n" {
		t.Fatalf("after an older version was listed: the managed file is %q", b)
	}
	for _, ag := range planStatus(t, h.url, token, "web").Agents {
		if ag.Agent == idA && ag.Version != 2 {
			t.Fatalf("after an older version was listed: %+v", ag)
		}
	}
}
