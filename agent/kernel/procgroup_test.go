//go:build linux

package kernel

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/proc"
	"github.com/pulsehq/pulse/agent/state"
	"github.com/pulsehq/pulse/agent/wire"
)

// sleepGroup starts a sleep in a process group of its own, as the runner starts commands, and returns
// the group. The process is reaped as soon as it dies, so a killed group really disappears.
func sleepGroup(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("/bin/sleep", "300")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	return cmd.Process.Pid
}

// waitGroupGone waits until no process of group pgid exists.
func waitGroupGone(t *testing.T, pgid int, within time.Duration) {
	t.Helper()
	eventually(t, within, func() bool { return errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH) },
		fmt.Sprintf("process group %d to end", pgid))
}

// A command the previous run left behind has its process group killed, unless the group has ended or
// its number now belongs to someone else; either way the command is reported failed, saying which.
func TestLeftoverProcessGroupOnStart(t *testing.T) {
	ended := func(t *testing.T) (int, string) { // a group that existed and is gone
		pg := sleepGroup(t)
		leader, _ := proc.Identity(pg)
		syscall.Kill(-pg, syscall.SIGKILL)
		waitGroupGone(t, pg, 5*time.Second)
		return pg, leader
	}
	cases := []struct {
		name       string
		job        func(t *testing.T) (pgid int, leader string)
		wantReason string // %d is the group
		wantKilled bool
	}{
		{"a live group is killed", func(t *testing.T) (int, string) {
			pg := sleepGroup(t)
			leader, ok := proc.Identity(pg)
			if !ok {
				t.Fatal("no identity for a live process")
			}
			return pg, leader
		}, "the agent restarted while this ran; its process group %d was killed", true},
		{"a live group recorded without a leader identity is killed", func(t *testing.T) (int, string) {
			return sleepGroup(t), ""
		}, "its process group %d was killed", true},
		{"a group that ended is left alone", ended, "its process group %d had already ended", false},
		{"a reused group number is left alone", func(t *testing.T) (int, string) {
			pg := sleepGroup(t)
			return pg, proc.Boot() + "/1" // the same number, started at another time
		}, "its process group %d had already ended (the number now belongs to another process", false},
		{"a group of another boot is left alone", func(t *testing.T) (int, string) {
			return sleepGroup(t), "another-boot/12345"
		}, "the host restarted while this ran; its process group %d ended with it", false},
		{"no group recorded (an in-process job)", func(t *testing.T) (int, string) { return 0, "" },
			"the agent stopped while the command was running", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHub(t)
			dir := t.TempDir()
			startAgent(t, testConfig(t, h, dir)).stop()
			pg, leader := tc.job(t)
			st, err := state.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.SaveJob(state.Job{CommandID: "cmd-left", EnvelopeID: "env-left", StartedAt: time.Now().Add(-time.Minute),
				ProcessGroup: pg, Leader: leader}); err != nil {
				t.Fatal(err)
			}
			st.Close()

			startAgent(t, testConfig(t, h, dir))
			r := h.waitResult("cmd-left")
			want := tc.wantReason
			if strings.Contains(want, "%d") {
				want = fmt.Sprintf(want, pg)
			}
			if r.Status != wire.StatusFailed || !strings.Contains(r.Reason, want) {
				t.Fatalf("result %s %q, want failed mentioning %q", r.Status, r.Reason, want)
			}
			if pg == 0 {
				return
			}
			if tc.wantKilled {
				waitGroupGone(t, pg, 5*time.Second)
			} else if tc.name != "a group that ended is left alone" && syscall.Kill(-pg, 0) != nil {
				t.Fatalf("process group %d was killed though it was not the command's", pg)
			}
		})
	}
}

// runningJob reads the job marker of the one command running in dir, if its process group is recorded.
func runningJob(dir string) (state.Job, bool) {
	ents, _ := os.ReadDir(filepath.Join(dir, "jobs"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			continue // a marker being written: until its rename, the agent has not recorded it
		}
		b, err := os.ReadFile(filepath.Join(dir, "jobs", e.Name()))
		var j state.Job
		if err == nil && json.Unmarshal(b, &j) == nil && j.ProcessGroup > 1 {
			return j, true
		}
	}
	return state.Job{}, false
}

// The real binary, killed with SIGKILL while a command runs: the command's process group outlives it,
// and the restarted agent kills the group and reports the command failed, saying so.
func TestKilledAgentLeavesNothingRunning(t *testing.T) {
	bin := buildAgent(t)
	h := newFakeHub(t)
	dir := t.TempDir()
	config := filepath.Join(t.TempDir(), "agent.toml")
	os.WriteFile(config, []byte(`[agent]
heartbeat = "1h"

[exec.commands.nap]
binary = "/bin/sleep"
args = ["{{seconds}}"]
timeout = "600s"
[exec.commands.nap.params.seconds]
pattern = "[0-9]{1,4}"
required = true
`), 0o600)

	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "run", "--hub", h.srv.URL, "--enroll-token", h.token, "--state-dir", dir,
			"--config", config, "--log-level", "debug")
		cmd.Stdout, cmd.Stderr = t.Output(), t.Output()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	agent := start()
	var agentID string
	eventually(t, 10*time.Second, func() bool {
		h.with(func() {
			for id := range h.agents {
				agentID = id
			}
		})
		return agentID != ""
	}, "enrollment")

	cmdID := h.send(agentID, "nap", map[string]string{"seconds": "421"})
	var job state.Job
	eventually(t, 10*time.Second, func() bool {
		var ok bool
		job, ok = runningJob(dir)
		return ok
	}, "the command's process group in the state directory")
	if job.CommandID != cmdID || job.Leader == "" {
		t.Fatalf("job marker %+v, want command %s with its leader", job, cmdID)
	}
	pg := job.ProcessGroup
	t.Cleanup(func() { syscall.Kill(-pg, syscall.SIGKILL) })

	if err := agent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	agent.Wait()
	time.Sleep(200 * time.Millisecond)
	if err := syscall.Kill(-pg, 0); err != nil {
		t.Fatalf("the command's group %d did not outlive the killed agent (%v): this test would prove nothing", pg, err)
	}
	if _, ok := h.result(cmdID); ok {
		t.Fatal("a result arrived before the agent restarted")
	}

	start()
	r := h.waitResult(cmdID)
	want := fmt.Sprintf("the agent restarted while this ran; its process group %d was killed", pg)
	if r.Status != wire.StatusFailed || r.Reason != want {
		t.Fatalf("result %s %q, want failed %q", r.Status, r.Reason, want)
	}
	waitGroupGone(t, pg, 5*time.Second)
	if _, ok := runningJob(dir); ok {
		t.Fatal("the job marker is still there after the command was reported")
	}
}
