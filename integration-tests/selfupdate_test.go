package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/integration-tests/s3server"
)

// buildAgent builds pulse-agent reporting version into dir, as the Makefile's build line does.
func buildAgent(t *testing.T, dir, version string) string {
	t.Helper()
	out := filepath.Join(dir, "pulse-agent-"+version)
	cmd := exec.Command("go", "build", "-ldflags", "-X main.version="+version, "-o", out, "./agent/cmd/pulse-agent")
	cmd.Dir = ".."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build pulse-agent %s: %v\n%s", version, err, b)
	}
	return out
}

// agentVersion is the version the hub shows for an agent (`pulse agents --json`).
func agentVersion(t *testing.T, hubURL, token, id string) string {
	t.Helper()
	out, errOut, code := pulseCLI(t, hubURL, token, "agents", "--json")
	if code != 0 {
		t.Fatalf("pulse agents: %d %s", code, errOut)
	}
	var l struct {
		Agents []struct{ ID, Version string }
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatal(err)
	}
	for _, a := range l.Agents {
		if a.ID == id {
			return a.Version
		}
	}
	return ""
}

// TestAgentSelfUpdate: real `pulse serve` on MinIO and a real pulse-agent run from its own copy of
// the binary (v1), reaching the hub through a proxy the test controls. A v2 binary pushed as an
// artifact and named by an `agent` unit is swapped in, restarts in place (same pid) and reports v2 to
// the hub, and the unit converges; a broken binary (one that exits at once) is refused by its
// self-test: the unit fails with the reason, and the agent still runs v2 and reports it; a v3 that
// passes its self-test but whose heartbeats the hub never accepts (the proxy refuses them) is rolled
// back to v2 after confirm_within, and v2 reports the unit failed with that reason.
func TestAgentSelfUpdate(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	v1, v2, v3 := buildAgent(t, dir, "v1"), buildAgent(t, dir, "v2"), buildAgent(t, dir, "v3")
	t.Logf("built v1, v2 and v3 in %v", time.Since(start).Round(time.Millisecond))
	broken := filepath.Join(dir, "broken")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\necho 'broken build' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	binDir := filepath.Join(dir, "bin")
	os.MkdirAll(binDir, 0o755)
	exe := filepath.Join(binDir, "pulse-agent")
	b, _ := os.ReadFile(v1)
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}

	storeURL, token := initStore(t, dir)
	h := startHub(t, dir, s3server.Env(), "--store", storeURL, "--poll-hold", "5s")
	hubURL, err := url.Parse(h.url)
	if err != nil {
		t.Fatal(err)
	}
	var refuseBeats atomic.Bool
	proxy := httputil.NewSingleHostReverseProxy(hubURL)
	proxy.ErrorLog = log.New(io.Discard, "", 0) // a killed agent's requests end mid-way, as they should
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refuseBeats.Load() && strings.HasSuffix(r.URL.Path, "/heartbeat") {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"status":503,"detail":"heartbeats refused by the test"}`))
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	tok, tokErr, code := pulseCLI(t, h.url, token, "enroll-token", "create", "--labels", "role=upd")
	if code != 0 {
		t.Fatalf("enroll-token create: %s", tokErr)
	}
	cfg := strings.Replace(agentConfig, "[agent]\n", "[agent]\nplan_period = \"1s\"\n", 1) + "\n[agent_update]\nenabled = true\nconfirm_within = \"5s\"\n"
	cfgPath := filepath.Join(dir, "agent.toml")
	os.WriteFile(cfgPath, []byte(cfg), 0o600)
	stateDir := filepath.Join(dir, "agent")
	cmd := exec.Command(exe, "run", "--hub", front.URL, "--state-dir", stateDir, "--config", cfgPath, "--enroll-token", strings.TrimSpace(tok))
	a := &agentProc{t: t, cmd: cmd, stateDir: stateDir, logs: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = a.logs, a.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.done <- cmd.Wait() }()
	t.Cleanup(func() {
		a.stop()
		if t.Failed() {
			t.Logf("agent log:\n%s", a.logs)
		}
	})
	id := a.id()
	waitFor(t, "the agent reports v1", 30*time.Second, func() bool { return agentVersion(t, h.url, token, id) == "v1" })

	source := func(ref wire.ArtifactRef, version string) string {
		return fmt.Sprintf("targets: [role=upd]\nunits:\n  - name: agent\n    type: agent\n    deadline: 120s\n    spec: {artifact: {digest: %q, size: %d}, version: %q}\n", ref.Digest, ref.Size, version)
	}
	unit := func() (int, string, string) {
		v := planStatus(t, h.url, token, "upd")
		if len(v.Agents) != 1 || len(v.Agents[0].Units) != 1 {
			return 0, "", ""
		}
		return v.Agents[0].Version, v.Agents[0].Units[0].State, v.Agents[0].Units[0].Reason
	}

	ref2 := pushArtifact(t, h.url, token, v2)
	applied := time.Now()
	if out, code := applyPlan(t, h.url, token, "upd", dir, source(ref2, "v2")); code != 0 {
		t.Fatalf("pulse plan apply: exit %d: %s", code, out)
	}
	waitFor(t, "the agent reports v2 and the unit converged", 90*time.Second, func() bool {
		ver, state, _ := unit()
		return agentVersion(t, h.url, token, id) == "v2" && ver == 1 && state == "converged"
	})
	t.Logf("v2 swapped in, reported and converged %v after the apply", time.Since(applied).Round(time.Millisecond))
	if got, _ := os.ReadFile(exe); string(got) != string(mustRead(t, v2)) {
		t.Error("the agent's binary is not v2")
	}
	if prev, _ := os.ReadFile(exe + ".prev"); string(prev) != string(b) {
		t.Error("the previous binary is not kept as .prev")
	}
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the agent process (pid %d) is gone: %v; an exec keeps the pid", cmd.Process.Pid, err)
	}
	if logs := a.logs.String(); !strings.Contains(logs, "restarting into it") || !strings.Contains(logs, "agent update committed") {
		t.Errorf("the agent log does not show the restart into v2 and its commit")
	}
	if _, err := os.Stat(filepath.Join(stateDir, "integrations", "agent_update", "marker.json")); !os.IsNotExist(err) {
		t.Errorf("update marker still there (%v): the update was not committed", err)
	}

	refBroken := pushArtifact(t, h.url, token, broken)
	if out, code := applyPlan(t, h.url, token, "upd", dir, source(refBroken, "v3")); code != 0 {
		t.Fatalf("pulse plan apply: exit %d: %s", code, out)
	}
	var reason string
	waitFor(t, "the unit with the broken binary failed with the reason", 90*time.Second, func() bool {
		ver, state, r := unit()
		reason = r
		return ver == 2 && state == "failed" && strings.Contains(r, "exited with status 3 in its self-test") && strings.Contains(r, "still running v2")
	})
	t.Logf("broken binary refused: %s", reason)
	if !strings.Contains(reason, "broken build") {
		t.Errorf("reason %q does not carry the binary's stderr", reason)
	}
	if v := agentVersion(t, h.url, token, id); v != "v2" {
		t.Errorf("the hub shows version %q, want v2 still", v)
	}
	if got, _ := os.ReadFile(exe); string(got) != string(mustRead(t, v2)) {
		t.Error("the broken binary replaced v2")
	}
	select {
	case err := <-a.done:
		a.done <- err
		t.Fatalf("the agent exited: %v", err)
	default:
	}

	// v3 passes its self-test (a signed GET), but the hub never accepts its heartbeat.
	refuseBeats.Store(true)
	ref3 := pushArtifact(t, h.url, token, v3)
	if out, code := applyPlan(t, h.url, token, "upd", dir, source(ref3, "v3")); code != 0 {
		t.Fatalf("pulse plan apply: exit %d: %s", code, out)
	}
	waitFor(t, "v3 swapped in and rolled back", 90*time.Second, func() bool {
		return strings.Contains(a.logs.String(), "rolling back the agent update")
	})
	refuseBeats.Store(false)
	waitFor(t, "the unit failed with the rollback's reason, the agent back on v2", 90*time.Second, func() bool {
		ver, state, r := unit()
		reason = r
		return ver == 3 && state == "failed" && strings.Contains(r, "was rolled back to") && agentVersion(t, h.url, token, id) == "v2"
	})
	t.Logf("v3 rolled back: %s", reason)
	if !strings.Contains(reason, "(v3) was rolled back to") || !strings.Contains(reason, "(v2): the hub did not hear from it within 5s of the swap") {
		t.Errorf("reason %q, want v3 rolled back to v2 because the hub did not hear from it", reason)
	}
	if got, _ := os.ReadFile(exe); string(got) != string(mustRead(t, v2)) {
		t.Error("the agent's binary is not v2 after the rollback")
	}
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the agent process is gone after the rollback: %v", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
