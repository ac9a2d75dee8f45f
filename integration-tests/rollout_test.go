package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/integration-tests/s3server"
)

// rolloutView is what `pulse plan rollout NAME --json` prints.
type rolloutView struct {
	Version  int    `json:"version"`
	State    string `json:"state"`
	Reason   string `json:"reason"`
	Released int    `json:"released"`
	Waves    []struct {
		Wave      int      `json:"wave"`
		Agents    []string `json:"agents"`
		Released  bool     `json:"released"`
		Converged int      `json:"converged"`
		Failed    int      `json:"failed"`
	} `json:"waves"`
}

// TestRolloutEndToEnd: real `pulse serve` on MinIO and six real pulse-agent processes. A new version
// staged in waves goes to the first wave only. Its process never passes its health check, so the unit
// fails after its 3 s deadline with the check's reason, the health condition is false on wave 1, and
// the rollout halts there; the other four agents keep the version before, still running its process.
// `pulse plan rollback` stores that content as a new version, and every agent converges on it with
// the old process and none of the new one.
func TestRolloutEndToEnd(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	storeURL, token := initStore(t, dir)
	h := startHub(t, dir, s3server.Env(), "--store", storeURL, "--poll-hold", "5s")
	tokOut, tokErr, code := pulseCLI(t, h.url, token, "enroll-token", "create", "--uses", "6", "--labels", "role=web")
	if code != 0 {
		t.Fatalf("enroll-token create: %s", tokErr)
	}
	cfg := strings.Replace(agentConfig, "[agent]\n", "[agent]\nplan_period = \"1s\"\n", 1) + `
[process]
allow = ["/usr/bin/sleep", "/usr/bin/test"]
stop_grace = "2s"
`
	agents := make([]*agentProc, 6)
	ids := make([]string, 6)
	for i := range agents {
		agents[i] = startAgent(t, h.url, filepath.Join(dir, fmt.Sprintf("agent-%d", i)), cfg, "--enroll-token", strings.TrimSpace(tokOut))
	}
	for i, a := range agents {
		ids[i] = a.id()
	}
	slices.Sort(ids) // waves are cut in id order

	base := time.Now().UnixNano() % 100000
	good, bad := fmt.Sprint(200000+base), fmt.Sprint(300000+base) // this run's sleeps, told apart from any other
	t.Cleanup(func() {
		for _, a := range []string{good, bad} { // supervised processes outlive their agent by design
			exec.Command("pkill", "-KILL", "-f", "^/usr/bin/sleep "+a+"$").Run()
		}
	})
	source := func(arg, extra, rollout string) string {
		return fmt.Sprintf(`targets: [role=web]
units:
  - name: app
    type: process
    deadline: 3s
    spec: {command: /usr/bin/sleep, args: [%q], restart: always%s}
%s`, arg, extra, rollout)
	}
	status := func(what string, cond func(planView) bool) planView {
		t.Helper()
		var v planView
		waitFor(t, what, 90*time.Second, func() bool {
			v = planStatus(t, h.url, token, "web")
			return cond(v)
		})
		return v
	}
	rollout := func() rolloutView {
		t.Helper()
		out, errOut, code := pulseCLI(t, h.url, token, "plan", "rollout", "web", "--json")
		if code != 0 {
			t.Fatalf("pulse plan rollout: exit %d: %s", code, errOut)
		}
		var r rolloutView
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("pulse plan rollout --json: %v: %s", err, out)
		}
		return r
	}

	if out, code := applyPlan(t, h.url, token, "web", dir, source(good, "", "")); code != 0 {
		t.Fatalf("apply version 1: exit %d: %s", code, out)
	}
	status("version 1 converged on six agents", func(v planView) bool { return len(v.Agents) == 6 && v.every(1, "converged") })

	// Version 2's process never passes its health check, so it fails after its 3 s deadline.
	staged := "rollout:\n  first: 2\n  waves: 2\n  maxFailed: 2\n  health: 'units.all(u, u.state == \"converged\")'\n"
	out, code := applyPlan(t, h.url, token, "web", dir, source(bad, ", health: {command: [/usr/bin/test, -e, /nonexistent/pulse]}", staged))
	if code != 0 || !strings.Contains(out, "rolling out in 3 wave(s), the first sent to 2 agent(s)") {
		t.Fatalf("apply version 2: exit %d: %s", code, out)
	}
	firstWave := ids[:2]
	var r rolloutView
	waitFor(t, "the rollout halted on wave 1", 90*time.Second, func() bool {
		r = rollout()
		return r.State == "halted"
	})
	if r.Released != 1 || !strings.Contains(r.Reason, "health condition") || !strings.Contains(r.Reason, "is false on wave 1") ||
		!strings.Contains(r.Reason, firstWave[0]+"/app failed") || !strings.Contains(r.Reason, firstWave[1]+"/app failed") ||
		!strings.Contains(r.Reason, "did not reach its state within 3s: health check") ||
		!slices.Equal(r.Waves[0].Agents, firstWave) || r.Waves[1].Released {
		t.Fatalf("rollout: %+v, want halted on wave 1 by its health condition, naming both its agents' failed unit", r)
	}
	v := planStatus(t, h.url, token, "web")
	for _, a := range v.Agents {
		want := 1
		if slices.Contains(firstWave, a.Agent) {
			want = 2
		}
		if a.Version != want {
			t.Errorf("agent %s holds version %d, want %d: %s", a.Agent, a.Version, want, v.unitStates())
		}
	}
	if n := processesMatching("/usr/bin/sleep", good); n != 4 {
		t.Errorf("%d processes of version 1 run, want 4 (the agents the rollout did not reach)", n)
	}
	// The halt holds: the tick releases nothing more.
	time.Sleep(6 * time.Second)
	if r := rollout(); r.State != "halted" || r.Released != 1 {
		t.Fatalf("after the halt: %+v", r)
	}

	out, errOut, code := pulseCLI(t, h.url, token, "plan", "rollback", "web", "--reason", "app never healthy")
	if code != 0 || !strings.Contains(out, "version 3 has the content of version 1, sent to 6 agent(s)") {
		t.Fatalf("pulse plan rollback: exit %d: %s%s", code, out, errOut)
	}
	status("version 3 converged on six agents", func(v planView) bool { return len(v.Agents) == 6 && v.every(3, "converged") })
	waitFor(t, "six processes of version 1 and none of version 2", 30*time.Second, func() bool {
		return processesMatching("/usr/bin/sleep", good) == 6 && processesMatching("/usr/bin/sleep", bad) == 0
	})
	out, errOut, code = pulseCLI(t, h.url, token, "plan", "rollout", "web")
	if code == 0 || !strings.Contains(errOut, "has no rollout") {
		t.Errorf("pulse plan rollout after the rollback: exit %d: %s%s, want no rollout", code, out, errOut)
	}
	_ = ctx
}
