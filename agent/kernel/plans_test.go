//go:build linux

package kernel

import (
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/pulsehq/pulse/agent/integrations/files"
	_ "github.com/pulsehq/pulse/agent/integrations/process"
	"github.com/pulsehq/pulse/agent/proc"
	"github.com/pulsehq/pulse/agent/wire"
)

// planConfig configures an agent for plans: files under root, a few harmless binaries, a short plan
// period.
func planConfig(t *testing.T, h *fakeHub, dir, root string) Config {
	cfg := testConfig(t, h, dir)
	cfg.PlanPeriod = 300 * time.Millisecond
	cfg.Integrations = map[string]any{
		"files":   map[string]any{"roots": []any{root}},
		"process": map[string]any{"allow": []any{"/bin/sleep", "/bin/true", "/bin/false"}, "stop_grace": "2s"},
	}
	return cfg
}

// stateDir is a state directory whose plans' processes are killed when the test ends, before the
// directory is removed (which is retried while the processes' supervisors record how they ended).
func stateDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "pulse-plans-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, pid := range proc.WithEnv("PULSE_AGENT_SUPERVISOR=" + filepath.Join(dir, integrationsDir, "process")) {
			proc.KillGroup(pid)
		}
		for range 100 {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("could not remove %s", dir)
	})
	return dir
}

// processes lists the live processes of a unit the agent in dir supervises.
func processes(dir, unit string) []int {
	return proc.WithEnv("PULSE_AGENT_SUPERVISOR="+filepath.Join(dir, integrationsDir, "process"), "PULSE_AGENT_UNIT="+unit)
}

func spec(v map[string]any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

func fileUnit(name, path, content string) wire.Unit {
	return wire.Unit{Name: name, Type: "file", Spec: spec(map[string]any{"path": path, "content": content, "mode": "0644"})}
}

// appPlan is a config file and the process that uses it: the process requires the file, and a changed
// file restarts it.
func appPlan(version int, mode, root, content string) wire.Plan {
	conf := fileUnit("conf", filepath.Join(root, "app", "app.conf"), content)
	conf.Notify = []string{"app"}
	return wire.Plan{Name: "web", Version: version, Mode: mode, Units: []wire.Unit{
		conf,
		{Name: "app", Type: "process", Requires: []string{"conf"}, Spec: spec(map[string]any{
			"command": "/bin/sleep", "args": []string{"300"}, "health": map[string]any{"command": []string{"/bin/true"}}})},
	}}
}

// waitPlan waits until the last status of the plan holds version with every unit in the state want
// names, and returns it.
func (h *fakeHub) waitPlan(t *testing.T, name string, version int, want map[string]string) wire.PlanStatus {
	t.Helper()
	var st wire.PlanStatus
	eventually(t, 20*time.Second, func() bool {
		var ok bool
		if st, ok = h.planStatus(name); !ok || st.Version != version || len(st.Units) != len(want) {
			return false
		}
		for _, u := range st.Units {
			if want[u.Unit] != u.State {
				return false
			}
		}
		return true
	}, "plan "+name+" to reach "+jsonString(want))
	return st
}

// waitPeriods waits until the agent has fetched its plans n more times: n plan periods, each with its
// round of reconciliation, for a test that shows something does not happen.
func (h *fakeHub) waitPeriods(t *testing.T, n int) {
	t.Helper()
	var start int
	h.with(func() { start = h.planFetches })
	eventually(t, 20*time.Second, func() bool {
		var now int
		h.with(func() { now = h.planFetches })
		return now >= start+n
	}, "plan periods to pass")
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func unitStatus(st wire.PlanStatus, unit string) wire.UnitStatus {
	for _, u := range st.Units {
		if u.Unit == unit {
			return u
		}
	}
	return wire.UnitStatus{}
}

var converged = map[string]string{"conf": wire.UnitConverged, "app": wire.UnitConverged}

func TestPlanConverges(t *testing.T) {
	h := newFakeHub(t)
	dir, root := stateDir(t), t.TempDir()
	h.setPlans()
	ra := startAgent(t, planConfig(t, h, dir, root))
	p := appPlan(1, "", root, "port=8080\n")
	se := h.planEnvelope(ra.a.ID(), p)
	h.setPlans(se)
	key := h.put(se)

	st := h.waitPlan(t, "web", 1, converged)
	for _, u := range p.Units {
		us := unitStatus(st, u.Name)
		if us.Desired != u.Digest() || us.Type != u.Type || us.ChangedAt.IsZero() || us.Reason != "" || us.Corrections != 0 {
			t.Errorf("unit %s: %+v", u.Name, us)
		}
	}
	if got := unitStatus(st, "app").Observed; got != p.Units[1].Digest() {
		t.Errorf("app observed %q, want its desired digest", got)
	}
	if b, err := os.ReadFile(filepath.Join(root, "app", "app.conf")); err != nil || string(b) != "port=8080\n" {
		t.Fatalf("the file: %q, %v", b, err)
	}
	if pids := processes(dir, "app"); len(pids) != 1 {
		t.Fatalf("%d processes, want 1", len(pids))
	}
	if st.RefusedVersion != 0 || st.Refused != "" || st.At.IsZero() {
		t.Fatalf("status %+v", st)
	}
	if _, err := os.Stat(filepath.Join(dir, "plans", "web.json")); err != nil {
		t.Fatalf("the accepted version is not cached: %v", err)
	}
	// The envelope is acknowledged, and the agent never reported it as refused.
	eventually(t, 5*time.Second, func() bool {
		var ok bool
		h.with(func() { ok = slices.Contains(h.acks, key) })
		return ok
	}, "the acknowledgement of the plan envelope")
	h.with(func() {
		if len(h.rejections) != 0 {
			t.Errorf("rejections %+v", h.rejections)
		}
	})
	// Nothing changes: no new report however many rounds pass.
	var n int
	h.with(func() { n = len(h.planStatuses) })
	h.waitPeriods(t, 4)
	h.with(func() {
		if len(h.planStatuses) != n {
			t.Errorf("%d reports after convergence, want none: %+v", len(h.planStatuses)-n, h.planStatuses[n:])
		}
	})
}

func TestDriftIsRepairedOrReported(t *testing.T) {
	cases := []struct{ mode string }{{wire.ModeEnforce}, {wire.ModeReport}}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			h := newFakeHub(t)
			dir, root := stateDir(t), t.TempDir()
			h.setPlans()
			ra := startAgent(t, planConfig(t, h, dir, root))
			path := filepath.Join(root, "motd")
			p := wire.Plan{Name: "host", Version: 1, Mode: tc.mode, Units: []wire.Unit{fileUnit("motd", path, "hello\n")}}
			h.setPlans(h.planEnvelope(ra.a.ID(), p))
			// A plan in report mode applies nothing, so the file is there from the start.
			if tc.mode == wire.ModeReport {
				os.WriteFile(path, []byte("hello\n"), 0o644)
			}
			h.waitPlan(t, "host", 1, map[string]string{"motd": wire.UnitConverged})

			os.Remove(path)
			switch tc.mode {
			case wire.ModeEnforce:
				eventually(t, 10*time.Second, func() bool {
					st, _ := h.planStatus("host")
					us := unitStatus(st, "motd")
					return us.State == wire.UnitConverged && us.Corrections == 1
				}, "the repair to be reported as a correction")
				if b, err := os.ReadFile(path); err != nil || string(b) != "hello\n" {
					t.Fatalf("not repaired: %q, %v", b, err)
				}
			case wire.ModeReport:
				st := h.waitPlan(t, "host", 1, map[string]string{"motd": wire.UnitDrifted})
				us := unitStatus(st, "motd")
				if us.Reason != "missing" || us.Observed != "" || us.Corrections != 0 {
					t.Fatalf("drifted unit %+v", us)
				}
				h.waitPeriods(t, 3)
				if _, err := os.Stat(path); !os.IsNotExist(err) {
					t.Fatalf("report mode touched the file: %v", err)
				}
			}
		})
	}
}

func TestKilledProcessIsRestarted(t *testing.T) {
	h := newFakeHub(t)
	dir, root := stateDir(t), t.TempDir()
	h.setPlans()
	ra := startAgent(t, planConfig(t, h, dir, root))
	h.setPlans(h.planEnvelope(ra.a.ID(), appPlan(1, "", root, "x\n")))
	h.waitPlan(t, "web", 1, converged)
	first := processes(dir, "app")
	if len(first) != 1 {
		t.Fatalf("processes %v", first)
	}
	syscall.Kill(first[0], syscall.SIGKILL)
	eventually(t, 20*time.Second, func() bool {
		pids := processes(dir, "app")
		st, _ := h.planStatus("web")
		us := unitStatus(st, "app")
		return len(pids) == 1 && pids[0] != first[0] && us.State == wire.UnitConverged && us.Corrections == 1
	}, "the process to be restarted and the correction reported")
}

func TestRefusedPlansChangeNothing(t *testing.T) {
	h := newFakeHub(t)
	dir, root := stateDir(t), t.TempDir()
	h.setPlans()
	ra := startAgent(t, planConfig(t, h, dir, root))
	id := ra.a.ID()
	path := filepath.Join(root, "held.conf")
	held := wire.Plan{Name: "web", Version: 2, Units: []wire.Unit{fileUnit("conf", path, "v2\n")}}
	heldEnv := h.planEnvelope(id, held)
	h.setPlans(heldEnv)
	h.waitPlan(t, "web", 2, map[string]string{"conf": wire.UnitConverged})

	_, otherKey, _ := ed25519.GenerateKey(nil)
	forged := func() wire.SignedEnvelope {
		body, _ := json.Marshal(wire.Plan{Name: "web", Version: 9, Units: []wire.Unit{fileUnit("conf", path, "forged\n")}})
		now := time.Now()
		se, _ := wire.Sign(wire.Envelope{ID: "plan-forged", Agent: id, IssuedAt: now, NotAfter: now.Add(time.Hour), Kind: wire.KindPlan, Body: body}, h.keyID, otherKey)
		return se
	}
	unsigned := h.planEnvelope(id, wire.Plan{Name: "web", Version: 8, Units: []wire.Unit{fileUnit("conf", path, "unsigned\n")}})
	unsigned.Signature = nil
	cases := []struct {
		name       string
		se         wire.SignedEnvelope
		rejection  string // refused as an envelope: reported as a rejection
		refusedVer int    // refused as a version: reported in the plan's status
		refused    string
	}{
		{"an older version", h.planEnvelope(id, wire.Plan{Name: "web", Version: 1, Units: []wire.Unit{fileUnit("conf", path, "v1\n")}}),
			"", 1, "version 1 is older than version 2, which this agent holds"},
		{"a forged plan", forged(), "bad signature", 0, ""},
		{"an unsigned plan", unsigned, "bad signature", 0, ""},
		{"a plan for another agent", h.planEnvelope("agent-someone-else", wire.Plan{Name: "web", Version: 3, Units: []wire.Unit{fileUnit("conf", path, "other\n")}}),
			"addressed to another agent", 0, ""},
		{"a unit type nothing owns", h.planEnvelope(id, wire.Plan{Name: "web", Version: 4, Units: []wire.Unit{
			fileUnit("conf", path, "v4\n"), {Name: "db", Type: "container", Spec: spec(map[string]any{"image": "postgres"})}}}),
			"", 4, `unit db: unit type "container" is not allowed here`},
		{"a file outside the roots", h.planEnvelope(id, wire.Plan{Name: "web", Version: 5, Units: []wire.Unit{
			fileUnit("conf", path, "v5\n"), fileUnit("passwd", "/etc/passwd", "root::0:0::/:/bin/sh\n")}}),
			"", 5, "unit passwd (file): path /etc/passwd is not under a root this agent allows"},
		{"a binary the config does not allow", h.planEnvelope(id, wire.Plan{Name: "web", Version: 6, Units: []wire.Unit{
			fileUnit("conf", path, "v6\n"), {Name: "evil", Type: "process", Spec: spec(map[string]any{"command": "/bin/sh", "args": []string{"-c", "rm -rf /"}})}}}),
			"", 6, "command /bin/sh is not allowed on this agent"},
		{"the held version with other content", h.planEnvelope(id, wire.Plan{Name: "web", Version: 2, Units: []wire.Unit{fileUnit("conf", path, "changed\n")}}),
			"", 2, "a version never changes"},
	}
	passwd, _ := os.ReadFile("/etc/passwd")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var rejections int
			h.with(func() { rejections = len(h.rejections) })
			h.put(tc.se)
			if tc.rejection != "" {
				eventually(t, 10*time.Second, func() bool {
					var ok bool
					h.with(func() {
						ok = len(h.rejections) > rejections && strings.Contains(h.rejections[len(h.rejections)-1].Reason, tc.rejection)
					})
					return ok
				}, "the rejection")
			} else {
				eventually(t, 10*time.Second, func() bool {
					st, _ := h.planStatus("web")
					return st.RefusedVersion == tc.refusedVer && strings.Contains(st.Refused, tc.refused)
				}, "the refusal in the plan's status")
			}
			st, _ := h.planStatus("web")
			if st.Version != 2 || unitStatus(st, "conf").State != wire.UnitConverged || len(st.Units) != 1 {
				t.Fatalf("the held version changed: %+v", st)
			}
			if b, _ := os.ReadFile(path); string(b) != "v2\n" {
				t.Fatalf("the file changed: %q", b)
			}
			if b, _ := os.ReadFile("/etc/passwd"); string(b) != string(passwd) {
				t.Fatal("/etc/passwd changed")
			}
			if len(processes(dir, "evil")) != 0 {
				t.Fatal("a refused process runs")
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "plans", "web.json")); !strings.Contains(string(b), string(mustBase64(heldEnv.Payload))) {
				t.Fatal("the cache no longer holds the version held")
			}
		})
	}
	// A refusal is reported until a newer version is accepted.
	v7 := h.planEnvelope(id, wire.Plan{Name: "web", Version: 7, Units: []wire.Unit{fileUnit("conf", path, "v7\n")}})
	h.setPlans(v7)
	h.put(v7)
	st := h.waitPlan(t, "web", 7, map[string]string{"conf": wire.UnitConverged})
	if st.RefusedVersion != 0 || st.Refused != "" {
		t.Fatalf("the refusal outlived a newer version: %+v", st)
	}
	if b, _ := os.ReadFile(path); string(b) != "v7\n" {
		t.Fatalf("the file: %q", b)
	}
}

func mustBase64(b []byte) []byte {
	s, _ := json.Marshal(b)
	return s[1 : len(s)-1]
}

func TestNewerVersionSupersedesFailing(t *testing.T) {
	h := newFakeHub(t)
	dir, root := stateDir(t), t.TempDir()
	h.setPlans()
	ra := startAgent(t, planConfig(t, h, dir, root))
	sick := wire.Plan{Name: "web", Version: 1, Units: []wire.Unit{{Name: "app", Type: "process", DeadlineSeconds: 120,
		Spec: spec(map[string]any{"command": "/bin/sleep", "args": []string{"300"}, "health": map[string]any{"command": []string{"/bin/false"}}})}}}
	sickEnv := h.planEnvelope(ra.a.ID(), sick)
	h.setPlans(sickEnv)
	h.put(sickEnv)
	h.waitPlan(t, "web", 1, map[string]string{"app": wire.UnitApplying}) // waiting for a health check that never passes
	sickPID := processes(dir, "app")

	start := time.Now()
	healthy := wire.Plan{Name: "web", Version: 2, Units: []wire.Unit{{Name: "app", Type: "process", DeadlineSeconds: 120,
		Spec: spec(map[string]any{"command": "/bin/sleep", "args": []string{"301"}, "health": map[string]any{"command": []string{"/bin/true"}}})}}}
	healthyEnv := h.planEnvelope(ra.a.ID(), healthy)
	h.setPlans(healthyEnv)
	h.put(healthyEnv)
	h.waitPlan(t, "web", 2, map[string]string{"app": wire.UnitConverged})
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("version 2 took %s: it waited for version 1's deadline", d)
	}
	pids := processes(dir, "app")
	if len(pids) != 1 || slices.Equal(pids, sickPID) {
		t.Fatalf("processes %v (version 1 ran %v)", pids, sickPID)
	}
}

func TestHealthThatNeverPassesFailsAfterItsDeadline(t *testing.T) {
	h := newFakeHub(t)
	dir, root := stateDir(t), t.TempDir()
	h.setPlans()
	ra := startAgent(t, planConfig(t, h, dir, root))
	ready := fileUnit("ready", filepath.Join(root, "ready"), "yes\n")
	ready.Requires = []string{"app"}
	p := wire.Plan{Name: "web", Version: 1, Units: []wire.Unit{ready, {Name: "app", Type: "process", DeadlineSeconds: 1,
		Spec: spec(map[string]any{"command": "/bin/sleep", "args": []string{"300"}, "health": map[string]any{"command": []string{"/bin/false"}}})}}}
	h.setPlans(h.planEnvelope(ra.a.ID(), p))
	st := h.waitPlan(t, "web", 1, map[string]string{"app": wire.UnitFailed, "ready": wire.UnitPending})
	want := "did not reach its state within 1s: health check: command /bin/false: exit status 1"
	if us := unitStatus(st, "app"); us.Reason != want {
		t.Fatalf("reason %q, want %q", us.Reason, want)
	}
	// What requires it waits, and is not applied.
	if us := unitStatus(st, "ready"); us.WaitingOn != "unit app" {
		t.Fatalf("the unit that requires it: %+v", us)
	}
	if _, err := os.Stat(filepath.Join(root, "ready")); !os.IsNotExist(err) {
		t.Fatalf("a unit whose requirement failed was applied: %v", err)
	}
	// The failed unit is tried again, with backoff: its process is started anew each time.
	first := processes(dir, "app")
	eventually(t, 10*time.Second, func() bool {
		pids := processes(dir, "app")
		return len(pids) == 1 && !slices.Equal(pids, first)
	}, "the failed unit to be retried")
}

func TestCachedPlanIsEnforcedWithTheHubDown(t *testing.T) {
	h := newFakeHub(t)
	dir, root := stateDir(t), t.TempDir()
	h.setPlans()
	cfg := planConfig(t, h, dir, root)
	ra := startAgent(t, cfg)
	path := filepath.Join(root, "motd")
	h.setPlans(h.planEnvelope(ra.a.ID(), wire.Plan{Name: "host", Version: 1, Units: []wire.Unit{fileUnit("motd", path, "hello\n")}}))
	h.waitPlan(t, "host", 1, map[string]string{"motd": wire.UnitConverged})
	ra.stop()

	h.with(func() { h.failAll = true })
	os.Remove(path)
	startAgent(t, cfg)
	eventually(t, 10*time.Second, func() bool {
		b, err := os.ReadFile(path)
		return err == nil && string(b) == "hello\n"
	}, "the cached plan to restore the file while the hub is down")
}

func TestRestartedAgentKeepsItsProcess(t *testing.T) {
	h := newFakeHub(t)
	dir, root := stateDir(t), t.TempDir()
	h.setPlans()
	cfg := planConfig(t, h, dir, root)
	ra := startAgent(t, cfg)
	h.setPlans(h.planEnvelope(ra.a.ID(), appPlan(1, "", root, "x\n")))
	h.waitPlan(t, "web", 1, converged)
	before := processes(dir, "app")
	ra.stop()
	if got := processes(dir, "app"); !slices.Equal(got, before) {
		t.Fatalf("stopping the agent changed the processes: %v, was %v", got, before)
	}

	var reports int
	h.with(func() { reports = len(h.planStatuses) })
	startAgent(t, cfg)
	eventually(t, 10*time.Second, func() bool {
		var n int
		h.with(func() { n = len(h.planStatuses) })
		st, _ := h.planStatus("web")
		return n > reports && unitStatus(st, "app").State == wire.UnitConverged && unitStatus(st, "conf").State == wire.UnitConverged
	}, "the restarted agent to report the plan converged")
	h.waitPeriods(t, 3)
	if got := processes(dir, "app"); !slices.Equal(got, before) {
		t.Fatalf("processes %v after the restart, want %v alone", got, before)
	}
	if st, _ := h.planStatus("web"); unitStatus(st, "app").Corrections != 0 {
		t.Fatalf("the restart counted a correction: %+v", st)
	}
}

func TestChangedFileRestartsItsProcess(t *testing.T) {
	h := newFakeHub(t)
	dir, root := stateDir(t), t.TempDir()
	h.setPlans()
	ra := startAgent(t, planConfig(t, h, dir, root))
	h.setPlans(h.planEnvelope(ra.a.ID(), appPlan(1, "", root, "port=1\n")))
	h.waitPlan(t, "web", 1, converged)
	before := processes(dir, "app")

	v2 := h.planEnvelope(ra.a.ID(), appPlan(2, "", root, "port=2\n"))
	h.setPlans(v2)
	h.put(v2)
	h.waitPlan(t, "web", 2, converged)
	eventually(t, 10*time.Second, func() bool {
		pids := processes(dir, "app")
		return len(pids) == 1 && !slices.Equal(pids, before)
	}, "the process to restart after its config file changed")
}

func TestDroppedPlanReleasesItsUnits(t *testing.T) {
	h := newFakeHub(t)
	dir, root := stateDir(t), t.TempDir()
	h.setPlans()
	ra := startAgent(t, planConfig(t, h, dir, root))
	h.setPlans(h.planEnvelope(ra.a.ID(), appPlan(1, "", root, "x\n")))
	h.waitPlan(t, "web", 1, converged)

	h.setPlans() // the hub no longer assigns it
	eventually(t, 15*time.Second, func() bool { return len(processes(dir, "app")) == 0 }, "the process to be stopped")
	eventually(t, 5*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(dir, "plans", "web.json"))
		return os.IsNotExist(err)
	}, "the cache file to go")
	if _, err := os.Stat(filepath.Join(root, "app", "app.conf")); err != nil {
		t.Fatalf("a released file is left as it is, but: %v", err)
	}
}

// A process that exits at once after every start is retried with backoff, not in a tight loop, and is
// reported failed saying how it ended.
func TestCrashLoopBacksOff(t *testing.T) {
	h := newFakeHub(t)
	dir, root := stateDir(t), t.TempDir()
	h.setPlans()
	ra := startAgent(t, planConfig(t, h, dir, root))
	p := wire.Plan{Name: "web", Version: 1, Units: []wire.Unit{{Name: "crash", Type: "process",
		Spec: spec(map[string]any{"command": "/bin/false", "restart": "always"})}}}
	h.setPlans(h.planEnvelope(ra.a.ID(), p))
	st := h.waitPlan(t, "web", 1, map[string]string{"crash": wire.UnitFailed})
	if us := unitStatus(st, "crash"); !strings.Contains(us.Reason, "not running (exit status 1)") {
		t.Fatalf("reason %q", us.Reason)
	}
	h.waitPeriods(t, 10) // three seconds of rounds and exits
	log, _ := os.ReadFile(filepath.Join(dir, integrationsDir, "process", "logs", "crash.log"))
	if n := strings.Count(string(log), "starting /bin/false"); n < 2 || n > 6 {
		t.Fatalf("started %d times in about three seconds; with backoff (1 s, 2 s, ...) it is 2 to 4", n)
	}
}
