//go:build unix

package integration_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

func runnerSet(t *testing.T) *integration.Set {
	t.Helper()
	s := integration.Load(context.Background(), map[string]any{"test_run": map[string]any{}}, nil)
	if st := status(t, s, "test_run"); !st.Enabled {
		t.Fatalf("test_run disabled: %s", st.Reason)
	}
	return s
}

func TestRunSucceedsWithOutput(t *testing.T) {
	s := runnerSet(t)
	res, out := run(t, s, "test_run_job_ok", nil)
	if res.Status != wire.StatusSucceeded || out != "job done\n" || res.ExitCode != nil {
		t.Fatalf("job_ok = %+v %q", res, out)
	}
	if res.StartedAt.IsZero() || res.FinishedAt.Before(res.StartedAt) {
		t.Fatalf("times = %v .. %v", res.StartedAt, res.FinishedAt)
	}

	res, out = run(t, s, "test_run_argv", map[string]string{"value": "plain"})
	if res.Status != wire.StatusSucceeded || res.ExitCode == nil || *res.ExitCode != 0 {
		t.Fatalf("argv = %+v %q", res, out)
	}
}

func TestRunNonZeroExitFails(t *testing.T) {
	s := runnerSet(t)
	res, out := run(t, s, "test_run_exit", nil)
	if res.Status != wire.StatusFailed || res.ExitCode == nil || *res.ExitCode != 3 {
		t.Fatalf("exit = %+v", res)
	}
	if !strings.Contains(out, "to-stdout") || !strings.Contains(out, "to-stderr") {
		t.Fatalf("stdout and stderr should both reach out, got %q", out)
	}
}

func TestRunJobFailures(t *testing.T) {
	s := runnerSet(t)
	for name, want := range map[string]string{
		"test_run_job_fail":  "disk full",
		"test_run_job_panic": "job panicked: handler exploded",
	} {
		res, _ := run(t, s, name, nil)
		if res.Status != wire.StatusFailed || !strings.Contains(res.Reason, want) || res.ExitCode != nil {
			t.Errorf("%s = %+v, want failed with %q", name, res, want)
		}
	}
}

// Parameter values are single argv elements, never seen by a shell, and never expanded again.
func TestRunSubstitutesWholeArgv(t *testing.T) {
	s := runnerSet(t)
	hostile := `a b; touch /tmp/pwned $(id) "q" 'x' | {{opt}} *`
	cases := []struct {
		name   string
		params map[string]string
		want   []string
	}{
		{"optional absent drops its elements", map[string]string{"value": hostile},
			[]string{"--value", hostile, "--format={{.Names}}"}},
		{"optional present", map[string]string{"value": hostile, "opt": "zz"},
			[]string{"--value", hostile, "--opt=zz", "zz", "--format={{.Names}}"}},
		{"empty value is one empty argument", map[string]string{"value": ""},
			[]string{"--value", "", "--format={{.Names}}"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, out := run(t, s, "test_run_argv", tc.params)
			if res.Status != wire.StatusSucceeded {
				t.Fatalf("argv = %+v %q", res, out)
			}
			var got []string
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("helper output %q: %v", out, err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("argv = %q\nwant   %q", got, tc.want)
			}
		})
	}
}

func TestRunEnvironmentIsMinimal(t *testing.T) {
	t.Setenv("PULSE_TEST_SECRET", "hunter2")
	s := runnerSet(t)
	res, out := run(t, s, "test_run_env", nil)
	if res.Status != wire.StatusSucceeded {
		t.Fatalf("env = %+v %q", res, out)
	}
	var env []string
	if err := json.Unmarshal([]byte(out), &env); err != nil {
		t.Fatal(err)
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "PULSE_TEST_SECRET=") {
			t.Fatalf("the agent's environment leaked into a command: %v", env)
		}
	}
	for _, want := range []string{"EXTRA=1", "PULSE_TEST_HELPER=env"} {
		if !slices.Contains(env, want) {
			t.Errorf("env %v lacks %s", env, want)
		}
	}
	if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "PATH=") }) {
		t.Errorf("env %v has no PATH", env)
	}
}

func TestRunRejectsWithoutRunning(t *testing.T) {
	s := runnerSet(t)
	dir := t.TempDir()
	target := filepath.Join(dir, "created")
	cases := []struct {
		name string
		cmd  wire.Command
		want string
	}{
		{"unknown command", wire.Command{Name: "test_run_nope", Params: map[string]string{"path": target}}, `unknown command "test_run_nope"`},
		{"unknown parameter", wire.Command{Name: "test_run_touch", Params: map[string]string{"path": target, "mode": "x"}}, `no parameter "mode"`},
		{"pattern mismatch", wire.Command{Name: "test_run_touch", Params: map[string]string{"path": target + " /etc/x"}}, "does not match"},
		{"over the cap", wire.Command{Name: "test_run_touch", Params: map[string]string{"path": "/" + strings.Repeat("a", 600)}}, "more than 512"},
		{"missing required", wire.Command{Name: "test_run_touch"}, "parameter path is required"},
		{"negative timeout", wire.Command{Name: "test_run_touch", Params: map[string]string{"path": target}, TimeoutSeconds: -1}, "negative timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			res := s.Run(context.Background(), tc.cmd, &out)
			if res.Status != wire.StatusRejected || !strings.Contains(res.Reason, tc.want) {
				t.Fatalf("Run = %+v, want rejected mentioning %q", res, tc.want)
			}
			if !res.StartedAt.IsZero() || out.Len() != 0 {
				t.Fatalf("a rejected command started or wrote: %+v %q", res, out.String())
			}
			if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a rejected command ran: %s exists (%v)", target, err)
			}
		})
	}
	// The same command with valid parameters does create the file, so the checks above prove something.
	if res, _ := run(t, s, "test_run_touch", map[string]string{"path": target}); res.Status != wire.StatusSucceeded {
		t.Fatalf("touch = %+v", res)
	}
	if _, err := os.Stat(target); err != nil {
		t.Fatalf("valid touch did not create the file: %v", err)
	}
}

// processGone reports whether pid no longer runs (a zombie waiting for a reaper counts as gone).
func processGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, os.ErrNotExist) || errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && len(b) > i+2 && b[i+2] == 'Z'
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("grandchild %d still running after the command was stopped", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(file)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil && pid > 0 {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s: %v", file, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunTimeoutKillsProcessGroup(t *testing.T) {
	s := runnerSet(t)
	cases := []struct{ name, command string }{
		{"exits on SIGTERM", "test_run_sleep"},
		{"ignores SIGTERM so needs SIGKILL", "test_run_stubborn"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pidfile := filepath.Join(t.TempDir(), "pid")
			start := time.Now()
			res := s.Run(context.Background(), wire.Command{Name: tc.command, Params: map[string]string{"path": pidfile}, TimeoutSeconds: 1}, nil)
			elapsed := time.Since(start)
			if res.Status != wire.StatusTimedOut || res.ExitCode != nil || !strings.Contains(res.Reason, "timed out after 1s") {
				t.Fatalf("Run = %+v", res)
			}
			if elapsed < time.Second || elapsed > time.Second+grace+2*time.Second {
				t.Fatalf("Run took %s for a 1s timeout and %s grace", elapsed, grace)
			}
			waitGone(t, readPid(t, pidfile))
		})
	}
}

func TestRunSpecDefaultTimeout(t *testing.T) {
	s := runnerSet(t)
	start := time.Now()
	res, _ := run(t, s, "test_run_default_timeout", nil)
	if res.Status != wire.StatusTimedOut || time.Since(start) > 1*time.Second+grace+2*time.Second {
		t.Fatalf("Run = %+v after %s", res, time.Since(start))
	}
}

// A grandchild that leaves the process group and keeps stdout open must not keep Run from returning.
func TestRunReturnsWhenEscapeeHoldsOutput(t *testing.T) {
	if _, err := os.Stat("/usr/bin/setsid"); err != nil {
		t.Skip("no /usr/bin/setsid")
	}
	s := runnerSet(t)
	pidfile := filepath.Join(t.TempDir(), "pid")
	start := time.Now()
	res := s.Run(context.Background(), wire.Command{Name: "test_run_escape", Params: map[string]string{"path": pidfile}, TimeoutSeconds: 1}, nil)
	pid := readPid(t, pidfile)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	if res.Status != wire.StatusTimedOut {
		t.Fatalf("Run = %+v", res)
	}
	if elapsed := time.Since(start); elapsed > time.Second+2*grace+2*time.Second {
		t.Fatalf("Run took %s", elapsed)
	}
}

func TestRunCancel(t *testing.T) {
	s := runnerSet(t)
	pidfile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan integration.RunResult)
	go func() {
		done <- s.Run(ctx, wire.Command{Name: "test_run_sleep", Params: map[string]string{"path": pidfile}, TimeoutSeconds: 60}, nil)
	}()
	pid := readPid(t, pidfile)
	cancel()
	select {
	case res := <-done:
		if res.Status != wire.StatusCancelled {
			t.Fatalf("Run = %+v", res)
		}
	case <-time.After(grace + 3*time.Second):
		t.Fatal("Run did not return after cancel")
	}
	waitGone(t, pid)

	// A job that honours its context is cancelled the same way.
	ctx, cancel = context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	if res := s.Run(ctx, wire.Command{Name: "test_run_job_wait"}, nil); res.Status != wire.StatusCancelled {
		t.Fatalf("job_wait = %+v", res)
	}
	// And nothing starts on an already-cancelled context.
	if res := s.Run(ctx, wire.Command{Name: "test_run_job_ok"}, nil); res.Status != wire.StatusCancelled || !res.StartedAt.IsZero() {
		t.Fatalf("job_ok on a cancelled context = %+v", res)
	}
}

func TestRunJobTimeoutAndAbandon(t *testing.T) {
	s := runnerSet(t)
	if res := s.Run(context.Background(), wire.Command{Name: "test_run_job_wait", TimeoutSeconds: 1}, nil); res.Status != wire.StatusTimedOut {
		t.Fatalf("job_wait = %+v", res)
	}

	var out bytes.Buffer
	res := s.Run(context.Background(), wire.Command{Name: "test_run_job_stubborn", TimeoutSeconds: 1}, &out)
	if res.Status != wire.StatusTimedOut || !strings.Contains(res.Reason, "abandoned") {
		t.Fatalf("job_stubborn = %+v", res)
	}
	select {
	case err := <-lateWrite:
		if err == nil {
			t.Fatal("a job wrote after Run returned without an error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stubborn job never wrote")
	}
	if out.Len() != 0 {
		t.Fatalf("output reached the caller after Run returned: %q", out.String())
	}
}

// chunkRecorder records the size of every write it receives.
type chunkRecorder struct {
	mu     sync.Mutex
	sizes  []int
	total  int
	failAt int // fail writes once total exceeds this (0: never)
}

func (c *chunkRecorder) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failAt > 0 && c.total >= c.failAt {
		return 0, errors.New("upload broke")
	}
	c.sizes = append(c.sizes, len(p))
	c.total += len(p)
	return len(p), nil
}

func TestRunOutputChunkingAndLoss(t *testing.T) {
	s := runnerSet(t)
	rec := &chunkRecorder{}
	res := s.Run(context.Background(), wire.Command{Name: "test_run_job_big"}, rec)
	if res.Status != wire.StatusSucceeded {
		t.Fatalf("job_big = %+v", res)
	}
	if want := 5*wire.MaxChunkBytes/2 + 7; rec.total != want || slices.Max(rec.sizes) > wire.MaxChunkBytes {
		t.Fatalf("got %d bytes in writes of %v; want %d in writes of at most %d", rec.total, rec.sizes, want, wire.MaxChunkBytes)
	}

	// A writer that breaks does not change what happened on the host, but the loss is reported.
	rec = &chunkRecorder{failAt: 1}
	res = s.Run(context.Background(), wire.Command{Name: "test_run_job_big"}, rec)
	if res.Status != wire.StatusSucceeded || !strings.Contains(res.Reason, "output lost") || !strings.Contains(res.Reason, "upload broke") {
		t.Fatalf("job_big to a broken writer = %+v", res)
	}
}

// OnProcessGroup hears the group a subprocess runs in while it runs (so the agent can write it down),
// and a group that cannot be written down is killed at once rather than left to run unrecorded.
func TestRunReportsProcessGroup(t *testing.T) {
	s := runnerSet(t)
	cases := []struct {
		name       string
		recordErr  error
		timeout    int
		wantStatus wire.Status
		wantReason string
	}{
		{"recorded: the command runs in that group", nil, 1, wire.StatusTimedOut, "timed out"},
		{"not recorded: the group is killed at once", errors.New("disk full"), 60, wire.StatusFailed, "process group could not be recorded: disk full"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pidfile := filepath.Join(t.TempDir(), "pid")
			var groups []int
			var alive bool
			start := time.Now()
			res := s.Run(context.Background(), wire.Command{Name: "test_run_sleep", Params: map[string]string{"path": pidfile}, TimeoutSeconds: tc.timeout}, nil,
				integration.OnProcessGroup(func(pgid int) error {
					groups = append(groups, pgid)
					alive = syscall.Kill(-pgid, 0) == nil
					return tc.recordErr
				}))
			if res.Status != tc.wantStatus || !strings.Contains(res.Reason, tc.wantReason) {
				t.Fatalf("Run = %+v, want %s mentioning %q", res, tc.wantStatus, tc.wantReason)
			}
			if len(groups) != 1 || groups[0] <= 1 || !alive {
				t.Fatalf("OnProcessGroup saw %v (group alive when reported: %v), want one live group", groups, alive)
			}
			if gid, err := syscall.Getpgid(os.Getpid()); err == nil && gid == groups[0] {
				t.Fatalf("the command ran in the test's own process group %d", gid)
			}
			if tc.recordErr != nil && time.Since(start) > 10*time.Second {
				t.Fatalf("an unrecorded group ran for %s", time.Since(start))
			}
			// SIGKILL has been sent; the kernel may take a moment to tear the group down.
			deadline := time.Now().Add(3 * time.Second)
			for !errors.Is(syscall.Kill(-groups[0], 0), syscall.ESRCH) {
				if time.Now().After(deadline) {
					_ = syscall.Kill(-groups[0], syscall.SIGKILL)
					t.Fatalf("process group %d still exists after Run returned", groups[0])
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
