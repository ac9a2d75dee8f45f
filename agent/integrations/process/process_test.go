//go:build linux

package process_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/integrations/process"
	"github.com/pulsehq/pulse/agent/proc"
	"github.com/pulsehq/pulse/agent/wire"
)

// allowed is what the tests' [process] table allows.
var allowed = []any{"/bin/sleep", "/bin/true", "/bin/false", "/bin/sh"}

// sup is the integration as the agent loads it, with the state directory it was given.
type sup struct {
	integration.Reconciler
	dir     string
	mu      sync.Mutex
	changes []string
}

// load builds the integration over a state directory (a fresh one if dir is ""), as a new start of
// the agent would; the processes it leaves are killed when the test ends.
func load(t *testing.T, dir string) *sup {
	t.Helper()
	if dir == "" {
		dir = stateDir(t)
	}
	s := integration.Load(context.Background(), map[string]any{"process": map[string]any{"allow": allowed, "stop_grace": "2s"}}, nil,
		integration.WithStateDir(dir))
	r, err := s.Reconciler("process")
	if err != nil {
		t.Fatalf("no process reconciler: %v (%+v)", err, s.Statuses())
	}
	sp := &sup{Reconciler: r, dir: filepath.Join(dir, process.ID)}
	r.(integration.Watcher).Watch(func(unit string) {
		sp.mu.Lock()
		sp.changes = append(sp.changes, unit)
		sp.mu.Unlock()
	})
	return sp
}

// stateDir is a state directory whose processes are killed when the test ends, before the directory
// is removed (which is retried while their supervisors record how they ended).
func stateDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "pulse-process-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, pid := range proc.WithEnv("PULSE_AGENT_SUPERVISOR=" + filepath.Join(dir, process.ID)) {
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

func (s *sup) changed(unit string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.changes {
		if c == unit {
			return true
		}
	}
	return false
}

func unit(name string, spec map[string]any) wire.Unit {
	b, _ := json.Marshal(spec)
	return wire.Unit{Name: name, Type: "process", Spec: b}
}

func sleeper(name string, extra ...any) wire.Unit {
	spec := map[string]any{"command": "/bin/sleep", "args": []string{"300"}}
	for i := 0; i+1 < len(extra); i += 2 {
		spec[extra[i].(string)] = extra[i+1]
	}
	return unit(name, spec)
}

func apply(t *testing.T, s *sup, u wire.Unit, within time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	return s.Apply(ctx, u)
}

func observe(t *testing.T, s *sup, u wire.Unit) integration.Observation {
	t.Helper()
	obs, err := s.Observe(context.Background(), u)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	return obs
}

// pids lists the live leaders of the unit's processes, found by their environment.
func (s *sup) pids(unit string) []int {
	return proc.WithEnv("PULSE_AGENT_SUPERVISOR="+s.dir, "PULSE_AGENT_UNIT="+unit)
}

func eventually(t *testing.T, within time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConfigure(t *testing.T) {
	cases := []struct {
		name  string
		table map[string]any
		dir   bool
		want  string // "": enabled
	}{
		{"allowed binaries", map[string]any{"allow": []any{"/bin/sleep", "/opt/app/bin/*"}}, true, ""},
		{"nothing allowed", map[string]any{}, true, "not enabled by its configuration"},
		{"relative", map[string]any{"allow": []any{"sleep"}}, true, `"sleep" is not an absolute path or pattern`},
		{"bad pattern", map[string]any{"allow": []any{"/opt/[bin"}}, true, "syntax error in pattern"},
		{"bad grace", map[string]any{"allow": []any{"/bin/sleep"}, "stop_grace": "soon"}, true, `stop_grace "soon"`},
		{"no state directory", map[string]any{"allow": []any{"/bin/sleep"}}, false, "gave it no state directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var opts []integration.Option
			if tc.dir {
				opts = append(opts, integration.WithStateDir(t.TempDir()))
			}
			var st wire.IntegrationStatus
			for _, s := range integration.Load(context.Background(), map[string]any{"process": tc.table}, nil, opts...).Statuses() {
				if s.ID == process.ID {
					st = s
				}
			}
			if tc.want == "" {
				if !st.Enabled {
					t.Fatalf("status %+v, want enabled", st)
				}
				return
			}
			if st.Enabled || !strings.Contains(st.Reason, tc.want) {
				t.Fatalf("status %+v, want disabled mentioning %q", st, tc.want)
			}
		})
	}
}

func TestCheckUnit(t *testing.T) {
	s := integration.Load(context.Background(), map[string]any{"process": map[string]any{"allow": []any{"/bin/sleep", "/bin/true", "/opt/app/bin/*"}}}, nil,
		integration.WithStateDir(t.TempDir()))
	r, err := s.Reconciler("process")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		spec map[string]any
		want string // "": accepted
	}{
		{"allowed binary", map[string]any{"command": "/bin/sleep", "args": []string{"1"}}, ""},
		{"allowed by a pattern", map[string]any{"command": "/opt/app/bin/server"}, ""},
		{"everything", map[string]any{"command": "/bin/sleep", "args": []string{"1"}, "env": map[string]string{"K": "v"}, "dir": "/tmp",
			"restart": "on-failure", "health": map[string]any{"command": []string{"/bin/true"}}}, ""},
		{"tcp health", map[string]any{"command": "/bin/sleep", "health": map[string]any{"tcp": "127.0.0.1:8080"}}, ""},
		{"http health", map[string]any{"command": "/bin/sleep", "health": map[string]any{"http": "http://127.0.0.1:8080/healthz"}}, ""},
		{"not allowed", map[string]any{"command": "/bin/rm", "args": []string{"-rf", "/"}}, "command /bin/rm is not allowed on this agent"},
		{"a pattern does not reach below", map[string]any{"command": "/opt/app/bin/sub/x"}, "is not allowed"},
		{"relative", map[string]any{"command": "sleep"}, "not an absolute path: the agent runs no shell"},
		{"unclean", map[string]any{"command": "/opt/app/bin/../../../bin/rm"}, "is not clean"},
		{"no command", map[string]any{"args": []string{"x"}}, "command is missing"},
		{"health binary not allowed", map[string]any{"command": "/bin/sleep", "health": map[string]any{"command": []string{"/bin/sh", "-c", "x"}}}, "health: command /bin/sh is not allowed"},
		{"two health checks", map[string]any{"command": "/bin/sleep", "health": map[string]any{"tcp": "127.0.0.1:1", "http": "http://x/"}}, "exactly one"},
		{"empty health", map[string]any{"command": "/bin/sleep", "health": map[string]any{}}, "exactly one"},
		{"bad tcp", map[string]any{"command": "/bin/sleep", "health": map[string]any{"tcp": "8080"}}, "want host:port"},
		{"bad port", map[string]any{"command": "/bin/sleep", "health": map[string]any{"tcp": "localhost:http"}}, "is not a number"},
		{"bad http", map[string]any{"command": "/bin/sleep", "health": map[string]any{"http": "ftp://x/"}}, "want an http:// or https:// URL"},
		{"bad restart", map[string]any{"command": "/bin/sleep", "restart": "sometimes"}, `restart "sometimes"`},
		{"reserved env", map[string]any{"command": "/bin/sleep", "env": map[string]string{"PULSE_AGENT_UNIT": "x"}}, "are the agent's own"},
		{"bad env name", map[string]any{"command": "/bin/sleep", "env": map[string]string{"A=B": "x"}}, "is not a variable name"},
		{"relative dir", map[string]any{"command": "/bin/sleep", "dir": "srv"}, "not a clean absolute path"},
		{"unknown key", map[string]any{"command": "/bin/sleep", "shell": true}, `unknown field "shell"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := r.CheckUnit(unit("app", tc.spec))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckUnit = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestStartObserveAndNoSecondCopy(t *testing.T) {
	s := load(t, "")
	u := sleeper("app", "env", map[string]string{"GREETING": "hello"})
	if obs := observe(t, s, u); obs.InState || obs.Detail != "not running" {
		t.Fatalf("before: %+v", obs)
	}
	if err := apply(t, s, u, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	obs := observe(t, s, u)
	if !obs.InState || obs.Digest != u.Digest() {
		t.Fatalf("after: %+v", obs)
	}
	pids := s.pids("app")
	if len(pids) != 1 {
		t.Fatalf("%d processes for the unit, want 1", len(pids))
	}
	pid := pids[0]
	if info, _ := proc.Stat(pid); info.PGID != pid {
		t.Fatalf("pid %d is in group %d, not one of its own", pid, info.PGID)
	}
	env, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
	if !strings.Contains(string(env), "GREETING=hello\x00") || strings.Contains(string(env), "PULSE_ENROLL_TOKEN") {
		t.Fatalf("environment %q", env)
	}
	if log, err := os.ReadFile(filepath.Join(s.dir, "logs", "app.log")); err != nil || !strings.Contains(string(log), "starting /bin/sleep (unit app") {
		t.Fatalf("log %q, %v", log, err)
	}
	// Applied again, and by a new start of the agent over the same state directory: nothing starts.
	if err := apply(t, s, u, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	again := load(t, filepath.Dir(s.dir))
	if obs := observe(t, again, u); !obs.InState {
		t.Fatalf("a restarted agent observes %+v", obs)
	}
	if err := apply(t, again, u, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := s.pids("app"); len(got) != 1 || got[0] != pid {
		t.Fatalf("processes %v, want [%d] alone", got, pid)
	}
	// The restarted agent learns of the exit of a process it did not start.
	syscall.Kill(pid, syscall.SIGKILL)
	eventually(t, 10*time.Second, func() bool { return again.changed("app") }, "the exit to be reported")
	if obs := observe(t, again, u); obs.InState || !strings.HasPrefix(obs.Detail, "not running") {
		t.Fatalf("after the kill: %+v", obs)
	}
	if err := apply(t, again, u, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := s.pids("app"); len(got) != 1 || got[0] == pid {
		t.Fatalf("after the repair: processes %v, want one new", got)
	}
}

func TestExitIsReportedAndRepaired(t *testing.T) {
	s := load(t, "")
	u := sleeper("app")
	if err := apply(t, s, u, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	pid := s.pids("app")[0]
	syscall.Kill(pid, syscall.SIGKILL)
	eventually(t, 10*time.Second, func() bool { return s.changed("app") }, "the exit to be reported")
	obs := observe(t, s, u)
	if obs.InState || obs.Detail != "not running (signal: killed)" {
		t.Fatalf("observed %+v", obs)
	}
	if err := apply(t, s, u, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if pids := s.pids("app"); len(pids) != 1 || pids[0] == pid {
		t.Fatalf("processes %v after the repair", pids)
	}
}

func TestNewSpecReplacesTheProcess(t *testing.T) {
	s := load(t, "")
	v1 := sleeper("app")
	if err := apply(t, s, v1, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	old := s.pids("app")[0]
	v2 := unit("app", map[string]any{"command": "/bin/sleep", "args": []string{"301"}})
	if obs := observe(t, s, v2); obs.InState || !strings.Contains(obs.Detail, "runs another spec") || obs.Digest != v1.Digest() {
		t.Fatalf("observed %+v", obs)
	}
	if err := apply(t, s, v2, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	pids := s.pids("app")
	if len(pids) != 1 || pids[0] == old {
		t.Fatalf("processes %v, want one that is not %d", pids, old)
	}
	if proc.GroupExists(old) {
		t.Fatal("the old process still runs")
	}
	if s.changed("app") {
		t.Fatal("stopping the old process on purpose was reported as a change")
	}
}

func TestLostProcessIsAdoptedNotDoubled(t *testing.T) {
	s := load(t, "")
	u := sleeper("app")
	if err := apply(t, s, u, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	pid := s.pids("app")[0]
	// As if the agent had been killed after starting it and before writing it down.
	os.Remove(filepath.Join(s.dir, "units", "app.json"))
	again := load(t, filepath.Dir(s.dir))
	if obs := observe(t, again, u); obs.InState {
		t.Fatalf("observed %+v without a record", obs)
	}
	if err := apply(t, again, u, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := s.pids("app"); len(got) != 1 || got[0] != pid {
		t.Fatalf("processes %v, want the lost one (%d) adopted", got, pid)
	}
	if obs := observe(t, again, u); !obs.InState {
		t.Fatalf("after adoption: %+v", obs)
	}
}

func TestHealthChecks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer sick.Close()

	cases := []struct {
		name   string
		health map[string]any
		want   string // "": passes
	}{
		{"command passes", map[string]any{"command": []string{"/bin/true"}}, ""},
		{"tcp accepts", map[string]any{"tcp": ln.Addr().String()}, ""},
		{"http answers", map[string]any{"http": ok.URL + "/healthz"}, ""},
		{"command fails", map[string]any{"command": []string{"/bin/false"}}, "health check: command /bin/false: exit status 1"},
		{"command prints why", map[string]any{"command": []string{"/bin/sh", "-c", "echo db unreachable; exit 2"}}, "exit status 2: db unreachable"},
		{"tcp refuses", map[string]any{"tcp": closedAddr}, "connection refused"},
		{"http 503", map[string]any{"http": sick.URL}, "answered 503 Service Unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := load(t, "")
			u := sleeper("app", "health", tc.health)
			start := time.Now()
			err := apply(t, s, u, time.Second)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if obs := observe(t, s, u); !obs.InState {
					t.Fatalf("observed %+v", obs)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply = %v, want it to mention %q", err, tc.want)
			}
			if time.Since(start) < 900*time.Millisecond {
				t.Fatalf("gave up after %s, before its deadline", time.Since(start))
			}
			if obs := observe(t, s, u); obs.InState || obs.WaitingOn != "health check" || !strings.Contains(obs.Detail, "health check fails") {
				t.Fatalf("observed %+v", obs)
			}
		})
	}
}

func TestExitBeforeHealthyFailsAtOnce(t *testing.T) {
	s := load(t, "")
	u := unit("app", map[string]any{"command": "/bin/sh", "args": []string{"-c", "exit 3"}, "health": map[string]any{"command": []string{"/bin/false"}}})
	start := time.Now()
	err := apply(t, s, u, 20*time.Second)
	if err == nil || !strings.Contains(err.Error(), "exited before its health check passed (exit status 3)") {
		t.Fatalf("Apply = %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("took %s: it waited for the deadline", time.Since(start))
	}
}

func TestRestartPolicies(t *testing.T) {
	cases := []struct {
		command, restart string
		inState          bool
		detail           string
	}{
		{"/bin/true", "never", true, "exited (exit status 0); restart policy never"},
		{"/bin/false", "never", true, "exited (exit status 1); restart policy never"},
		{"/bin/true", "on-failure", true, "exited (exit status 0); restart policy on-failure"},
		{"/bin/false", "on-failure", false, "not running (exit status 1)"},
		{"/bin/true", "always", false, "not running (exit status 0)"},
		{"/bin/true", "", false, "not running (exit status 0)"},
	}
	for _, tc := range cases {
		t.Run(tc.command+" "+tc.restart, func(t *testing.T) {
			s := load(t, "")
			u := unit("job", map[string]any{"command": tc.command, "restart": tc.restart})
			if err := apply(t, s, u, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, func() bool { return s.changed("job") }, "the exit")
			obs := observe(t, s, u)
			if obs.InState != tc.inState || obs.Detail != tc.detail {
				t.Fatalf("observed %+v, want inState %v, detail %q", obs, tc.inState, tc.detail)
			}
		})
	}
}

func TestRestartAndRelease(t *testing.T) {
	s := load(t, "")
	u := sleeper("app")
	if err := apply(t, s, u, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	first := s.pids("app")[0]
	if err := s.Reconciler.(integration.Restarter).Restart(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	pids := s.pids("app")
	if len(pids) != 1 || pids[0] == first {
		t.Fatalf("after a restart: %v (was %d)", pids, first)
	}
	if err := s.Reconciler.(integration.Releaser).Release(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	if got := s.pids("app"); len(got) != 0 {
		t.Fatalf("released, yet %v run", got)
	}
	if _, err := os.Stat(filepath.Join(s.dir, "units", "app.json")); !os.IsNotExist(err) {
		t.Fatalf("the record survived the release: %v", err)
	}
	if obs := observe(t, s, u); obs.InState || obs.Detail != "not running" {
		t.Fatalf("after the release: %+v", obs)
	}
}
