package proc_test

import (
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/proc"
)

func startSleep(t *testing.T, env ...string) (*exec.Cmd, <-chan struct{}) {
	return startSleepAs(t, nil, env...)
}

func startSleepAs(t *testing.T, cred *syscall.Credential, env ...string) (*exec.Cmd, <-chan struct{}) {
	t.Helper()
	cmd := exec.Command("/bin/sleep", "300")
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-done })
	return cmd, done
}

func TestRunningTellsAReusedNumberApart(t *testing.T) {
	cmd, done := startSleep(t)
	pid := cmd.Process.Pid
	id, ok := proc.Identity(pid)
	if !ok || id == "" {
		t.Fatal("no identity for a live process")
	}
	info, ok := proc.Stat(pid)
	if !ok || info.PGID != pid || info.Zombie() {
		t.Fatalf("Stat = %+v, %v; want a live leader of its own group", info, ok)
	}
	cases := []struct {
		name     string
		pid      int
		identity string
		want     bool
	}{
		{"the very process", pid, id, true},
		{"its number, started at another time", pid, proc.Boot() + "/1", false},
		{"its number in another boot", pid, "other-boot/" + id[len(proc.Boot())+1:], false},
		{"no identity recorded", pid, "", false},
		{"no pid", 0, id, false},
	}
	for _, tc := range cases {
		if got := proc.Running(tc.pid, tc.identity); got != tc.want {
			t.Errorf("%s: Running = %v, want %v", tc.name, got, tc.want)
		}
	}
	if err := proc.TerminateGroup(pid); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the group did not stop on SIGTERM")
	}
	if proc.Running(pid, id) {
		t.Fatal("an ended process still counts as running")
	}
	if err := proc.KillGroup(pid); err != nil {
		t.Fatalf("killing an ended group: %v", err)
	}
	if err := proc.KillGroup(1); err == nil {
		t.Fatal("KillGroup(1) was not refused")
	}
}

func TestWithEnvFindsTheLeaderOnly(t *testing.T) {
	marker := "PULSE_PROC_TEST=" + time.Now().Format(time.RFC3339Nano)
	cmd, _ := startSleep(t, marker)
	startSleep(t, "PULSE_PROC_TEST=other")
	if got := proc.WithEnv(marker); !slices.Equal(got, []int{cmd.Process.Pid}) {
		t.Fatalf("WithEnv = %v, want [%d]", got, cmd.Process.Pid)
	}
	if got := proc.WithEnv(marker, "NOT_THERE=1"); len(got) != 0 {
		t.Fatalf("WithEnv with an entry nobody has = %v", got)
	}
	if got := proc.WithEnv("PULSE_PROC_TEST=" + os.Args[0]); len(got) != 0 {
		t.Fatalf("WithEnv found %v for a value nobody has", got)
	}
}

// Anyone can set any variable in their own environment: a process of another user is never named.
func TestWithEnvIgnoresOtherUsers(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("starting a process as another user needs root")
	}
	marker := "PULSE_PROC_TEST=other-user-" + time.Now().Format(time.RFC3339Nano)
	startSleepAs(t, &syscall.Credential{Uid: 65534, Gid: 65534}, marker)
	if got := proc.WithEnv(marker); len(got) != 0 {
		t.Fatalf("WithEnv named %v, a process of another user", got)
	}
}
