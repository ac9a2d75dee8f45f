package integration

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/integration-tests/s3server"
	"github.com/pulsehq/pulse/openapi/client"
)

// createToken makes an operator token with the admin token and returns its secret.
func createToken(t *testing.T, h *hubProc, admin, name, groups string) string {
	t.Helper()
	out, errOut, code := pulseCLI(t, h.url, admin, "token", "create", "--name", name, "--groups", groups, "--for", name)
	if code != 0 {
		t.Fatalf("token create %s: %s", name, errOut)
	}
	return strings.TrimSpace(out)
}

// approveAll runs `pulse approve` as each approver and returns the final state of the command.
func approveAll(t *testing.T, h *hubProc, id string, approvers ...string) {
	t.Helper()
	for _, tok := range approvers {
		if _, errOut, code := pulseCLI(t, h.url, tok, "approve", id); code != 0 {
			t.Fatalf("approve %s: %s", id, errOut)
		}
	}
}

// TestWhoMayDoWhat: operator identities, the OPA gate, approvals, audit and the sealed shell hatch, with
// real processes (MinIO, pulse serve, pulse-agent, the pulse CLI).
func TestWhoMayDoWhat(t *testing.T) {
	dir := t.TempDir()
	storeURL, admin := initStore(t, dir)
	cfg := filepath.Join(dir, "hub.toml")
	os.WriteFile(cfg, []byte("[auth.forward]\ntrusted_proxies = [\"127.0.0.2/32\"]\n"), 0o600)
	h := startHub(t, dir, s3server.Env(), "--store", storeURL, "--config", cfg, "--poll-hold", "5s")
	hubAddr := strings.TrimPrefix(h.url, "http://")

	viewer := createToken(t, h, admin, "vic", "viewer")
	operator := createToken(t, h, admin, "olga", "operator")
	admin2 := createToken(t, h, admin, "ada", "admin")
	admin3 := createToken(t, h, admin, "bob", "admin")
	// The requester of the shell commands: a person onboarded by the bootstrap admin, like ada and bob.
	// (A token the bootstrap admin made never approves the bootstrap admin's own commands.)
	rita := createToken(t, h, admin, "rita", "admin")

	tok, _, _ := pulseCLI(t, h.url, admin, "enroll-token", "create", "--labels", "env=lab")
	stateDir := filepath.Join(dir, "agent")
	agent := startAgent(t, h.url, stateDir, agentConfig, "--enroll-token", strings.TrimSpace(tok))
	agentID := agent.id()
	waitFor(t, "agent online", 30*time.Second, func() bool {
		l := listAgents(t, h.url, admin)
		return len(l.Agents) == 1 && l.Agents[0].Online
	})

	t.Run("the policy decides who runs what", func(t *testing.T) {
		_, errOut, code := pulseCLI(t, h.url, viewer, "run", "host_uptime", "--target", "all")
		if code == 0 || !strings.Contains(errOut, "HTTP 403") || !strings.Contains(errOut, "(rule: ") {
			t.Fatalf("viewer run: exit %d %q; want a 403 naming the rule", code, errOut)
		}
		st, errOut, code := runJSON(t, h.url, operator, "host_uptime", "--target", "all", "--wait")
		if code != 0 || st.Counts["succeeded"] != 1 {
			t.Fatalf("operator run: exit %d %s %+v", code, errOut, st)
		}
		_, errOut, code = pulseCLI(t, h.url, operator, "token", "list")
		if code == 0 || !strings.Contains(errOut, "HTTP 403") {
			t.Fatalf("operator listing tokens: exit %d %q", code, errOut)
		}
	})

	t.Run("a custom policy changes the outcome without a rebuild", func(t *testing.T) {
		pol := filepath.Join(dir, "policy")
		os.MkdirAll(pol, 0o700)
		os.WriteFile(filepath.Join(pol, "uptime.rego"), []byte(`package pulse.authz

# Viewers may check uptime, nothing else.
allow contains "viewer_uptime" if {
	input.action == "create-command"
	input.command == "host_uptime"
	"viewer" in input.principal.groups
}
`), 0o600)
		h2 := startHub(t, dir, s3server.Env(), "--store", storeURL, "--policy", pol)
		st, errOut, code := runJSON(t, h2.url, viewer, "host_uptime", "--target", "all", "--wait")
		if code != 0 || st.Counts["succeeded"] != 1 {
			t.Fatalf("viewer with custom policy: exit %d %s %+v", code, errOut, st)
		}
	})

	t.Run("forward-auth headers count only from the proxy", func(t *testing.T) {
		get := func(local string) int {
			c := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}).DialContext}}
			api, err := client.NewClient("http://"+hubAddr, client.WithHTTPClient(c), client.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
				req.Header.Set("Remote-User", "alice")
				req.Header.Set("Remote-Groups", "viewer")
				return nil
			}))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := api.ListAgents(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if code := get("127.0.0.1"); code != 401 {
			t.Fatalf("headers from a non-proxy address: %d, want 401", code)
		}
		h.waitLog("ignored forward-auth headers")
		if code := get("127.0.0.2"); code != 200 {
			t.Fatalf("headers from the proxy: %d, want 200", code)
		}
	})

	host, _ := os.Hostname()
	marker := filepath.Join(dir, "hatch-ran")
	shell := func(t *testing.T) commandStatus {
		t.Helper()
		out, errOut, code := pulseCLI(t, h.url, rita, "run", "shell_run", "--param", "script=echo ran >> "+marker, "--target", agentID, "--json")
		if code != 0 {
			t.Fatalf("shell_run request: %s", errOut)
		}
		var st commandStatus
		json.Unmarshal([]byte(out), &st)
		if st.Agents[0].State != "awaiting_approval" {
			t.Fatalf("shell_run did not wait for approval: %+v", st)
		}
		return st
	}

	t.Run("two approvals, never by the requester", func(t *testing.T) {
		st := shell(t)
		if _, errOut, code := pulseCLI(t, h.url, rita, "approve", st.ID); code == 0 || !strings.Contains(errOut, "someone else must approve") {
			t.Fatalf("self-approval: exit %d %q", code, errOut)
		}
		approveAll(t, h, st.ID, admin2)
		if _, errOut, code := pulseCLI(t, h.url, admin2, "approve", st.ID); code == 0 || !strings.Contains(errOut, "already approved") {
			t.Fatalf("second approval by the same person: exit %d %q", code, errOut)
		}
		var mid commandStatus
		op(t, h, admin, "GET", "/v1/commands/"+st.ID, nil, &mid)
		if mid.Agents[0].State != "awaiting_approval" {
			t.Fatalf("after one approval: %+v", mid)
		}
		approveAll(t, h, st.ID, admin3)
		done := waitDone(t, h, admin, st.ID)
		// Sealed: approved, delivered, and refused by the agent itself.
		if done.Agents[0].State != "rejected" || !strings.Contains(done.Agents[0].Reason, "sealed") {
			t.Fatalf("shell_run while sealed: %+v", done)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatal("the sealed hatch ran the script")
		}
		var recs struct {
			Records []struct {
				Action    string `json:"action"`
				Outcome   string `json:"outcome"`
				Principal struct {
					ID string `json:"id"`
				} `json:"principal"`
				Detail map[string]any `json:"detail"`
			} `json:"records"`
		}
		op(t, h, admin, "GET", "/v1/audit", nil, &recs)
		var steps []string
		for _, r := range recs.Records {
			if r.Detail["commandId"] == st.ID {
				steps = append(steps, r.Principal.ID+":"+r.Action+":"+r.Outcome)
			}
		}
		want := []string{"rita:create-command:ok", "rita:approve-command:denied", "ada:approve-command:ok", "bob:approve-command:ok"}
		if strings.Join(steps, " ") != strings.Join(want, " ") {
			t.Fatalf("audit steps %v, want %v", steps, want)
		}
	})

	t.Run("the shell hatch: sealed, unsealed on the host, sealed again", func(t *testing.T) {
		unseal := exec.Command(agentBin, "unseal", "--for", "20s", "--state-dir", stateDir)
		unseal.Stdin = strings.NewReader(host + "\n")
		if out, err := unseal.CombinedOutput(); err != nil {
			t.Fatalf("unseal: %v\n%s", err, out)
		}
		waitFor(t, "pulse agents shows the hatch open", 15*time.Second, func() bool {
			out, _, _ := pulseCLI(t, h.url, admin, "agents", "--json")
			return strings.Contains(out, `"hatch"`) && strings.Contains(out, `"open": true`)
		})
		st := shell(t)
		approveAll(t, h, st.ID, admin2, admin3)
		if done := waitDone(t, h, admin, st.ID); done.Agents[0].State != "succeeded" {
			t.Fatalf("shell_run while unsealed: %+v", done)
		}
		if b, err := os.ReadFile(marker); err != nil || string(b) != "ran\n" {
			t.Fatalf("script side effect: %q %v", b, err)
		}
		waitFor(t, "the window to end", 40*time.Second, func() bool {
			out, _, _ := pulseCLI(t, h.url, admin, "agents", "--json")
			return !strings.Contains(out, `"hatch"`)
		})
		st = shell(t)
		approveAll(t, h, st.ID, admin2, admin3)
		if done := waitDone(t, h, admin, st.ID); done.Agents[0].State != "rejected" {
			t.Fatalf("shell_run after the window: %+v", done)
		}
		if b, _ := os.ReadFile(marker); string(b) != "ran\n" {
			t.Fatalf("the script ran again after the window: %q", b)
		}
		// The agent reports the closing in the heartbeat after the window ends.
		waitFor(t, "the hatch reports in the audit log", 15*time.Second, func() bool {
			var recs struct {
				Records []struct {
					Action string `json:"action"`
				} `json:"records"`
			}
			op(t, h, admin, "GET", "/v1/audit", nil, &recs)
			seen := map[string]bool{}
			for _, r := range recs.Records {
				seen[r.Action] = true
			}
			return seen["report-unseal"] && seen["report-seal"]
		})
	})

	t.Run("audit verify names an edited record", func(t *testing.T) {
		out, errOut, code := pulseCLI(t, h.url, admin, "audit", "verify")
		if code != 0 || !strings.Contains(out, "intact") {
			t.Fatalf("verify untouched: exit %d %s %s", code, out, errOut)
		}
		s := bucketStore(t, storeURL)
		ctx := context.Background()
		var victim string
		store.Walk(ctx, s, "v1/audit/", "", 0, func(o store.ObjectInfo) error {
			if victim == "" {
				victim = o.Key
			}
			return nil
		})
		b, _, err := store.ReadAll(ctx, s, victim)
		if err != nil {
			t.Fatal(err)
		}
		store.PutBytes(ctx, s, victim, []byte(strings.Replace(string(b), `"outcome":"ok"`, `"outcome":"ok" `, 1)), store.PutOptions{})
		_, errOut, code = pulseCLI(t, h.url, admin, "audit", "verify")
		if code == 0 || !strings.Contains(errOut, victim) || !strings.Contains(errOut, "changed") {
			t.Fatalf("verify after editing %s: exit %d %q", victim, code, errOut)
		}
	})
}
