package kernel

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

func writeRecord(t *testing.T, dir string, rec hatchRecord) {
	t.Helper()
	data, _ := json.Marshal(rec)
	if err := writeHatch(dir, data); err != nil {
		t.Fatal(err)
	}
}

func TestReadHatch(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	if st, err := ReadHatch(dir, now); err != nil || st != (wire.HatchStatus{}) {
		t.Fatalf("no file: %+v %v", st, err)
	}

	st, err := OpenHatch(dir, 15*time.Minute, "alice")
	if err != nil || !st.Open || st.By != "alice" || st.ExpiresAt.Sub(st.OpenedAt) != 15*time.Minute {
		t.Fatalf("OpenHatch = %+v %v", st, err)
	}
	fi, err := os.Stat(filepath.Join(dir, HatchFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("hatch file: %v %v", fi.Mode(), err)
	}
	if got, err := ReadHatch(dir, time.Now()); err != nil || !sameHatch(got, st) {
		t.Fatalf("ReadHatch = %+v %v, want %+v", got, err, st)
	}
	// Open only while OpenedAt <= now < ExpiresAt; an expired window still says what it was.
	if got, err := ReadHatch(dir, st.ExpiresAt); err != nil || got.Open || got.By != "alice" || !got.ExpiresAt.Equal(st.ExpiresAt) {
		t.Fatalf("at expiry: %+v %v", got, err)
	}

	if had, err := SealHatch(dir); !had || err != nil {
		t.Fatalf("SealHatch = %v %v", had, err)
	}
	if had, err := SealHatch(dir); had || err != nil {
		t.Fatalf("SealHatch again = %v %v", had, err)
	}

	untrusted := []struct {
		name  string
		setup func()
		want  string
	}{
		{"window over an hour", func() { writeRecord(t, dir, hatchRecord{now.Add(-time.Minute), now.Add(2 * time.Hour), "x"}) }, "at most 1h"},
		{"opened in the future", func() { writeRecord(t, dir, hatchRecord{now.Add(time.Minute), now.Add(30 * time.Minute), "x"}) }, "future"},
		{"nobody opened it", func() { writeRecord(t, dir, hatchRecord{now.Add(-time.Minute), now.Add(time.Minute), ""}) }, "lacks"},
		{"malformed", func() { writeHatch(dir, []byte(`{"openedAt": "yesterday"}`)) }, "malformed"},
		{"unknown field", func() {
			writeHatch(dir, []byte(`{"openedAt":"`+now.Format(time.RFC3339)+`","expiresAt":"`+now.Add(time.Minute).Format(time.RFC3339)+`","by":"x","forever":true}`))
		}, "malformed"},
		{"writable by others", func() {
			writeRecord(t, dir, hatchRecord{now.Add(-time.Minute), now.Add(time.Minute), "x"})
			os.Chmod(filepath.Join(dir, HatchFile), 0o666)
		}, "writable by others"},
		{"symlink", func() {
			other := filepath.Join(t.TempDir(), "elsewhere")
			data, _ := json.Marshal(hatchRecord{now.Add(-time.Minute), now.Add(time.Minute), "x"})
			os.WriteFile(other, data, 0o600)
			os.Symlink(other, filepath.Join(dir, HatchFile))
		}, "not a regular file"},
	}
	for _, tc := range untrusted {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(filepath.Join(dir, HatchFile))
			tc.setup()
			st, err := ReadHatch(dir, now)
			if st.Open || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ReadHatch = %+v, %v; want closed with an error mentioning %q", st, err, tc.want)
			}
		})
	}

	for _, d := range []time.Duration{0, -time.Minute, time.Hour + time.Second} {
		if _, err := OpenHatch(dir, d, "alice"); err == nil {
			t.Errorf("OpenHatch for %s accepted", d)
		}
	}
	if _, err := OpenHatch(filepath.Join(dir, "missing"), time.Minute, "alice"); err == nil {
		t.Error("OpenHatch into a missing state directory accepted")
	}
}

// buildAgent builds the real pulse-agent binary, so the hatch is exercised the way an operator uses it.
func buildAgent(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pulse-agent")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/pulsehq/pulse/agent/cmd/pulse-agent").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// agentProcess runs `pulse-agent run` against the fake hub until stopped (also at cleanup).
func agentProcess(t *testing.T, bin string, h *fakeHub, dir, config string) (stop func()) {
	t.Helper()
	cmd := exec.Command(bin, "run", "--hub", h.srv.URL, "--enroll-token", h.token, "--state-dir", dir,
		"--config", config, "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = t.Output(), t.Output()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Error("the agent did not stop on SIGTERM")
		}
	}
	t.Cleanup(stop)
	return stop
}

// cli runs a pulse-agent subcommand with stdin and extra environment.
func cli(t *testing.T, bin, stdin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// hatchBeat waits for a heartbeat after the first `after` ones whose hatch is open or closed as wanted,
// returning it and how many heartbeats there are now.
func hatchBeat(t *testing.T, h *fakeHub, after int, open bool, within time.Duration) (wire.HatchStatus, int) {
	t.Helper()
	var got wire.HatchStatus
	var n int
	eventually(t, within, func() bool {
		found := false
		h.with(func() {
			n = len(h.heartbeats)
			for _, hb := range h.heartbeats[min(after, n):] {
				if hb.Hatch != nil && hb.Hatch.Open == open {
					got, found = *hb.Hatch, true
				}
			}
		})
		return found
	}, "a heartbeat reporting the hatch open="+map[bool]string{true: "true", false: "false"}[open])
	return got, n
}

func TestShellHatchEndToEnd(t *testing.T) {
	bin := buildAgent(t)
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	h := newFakeHub(t)
	dir := t.TempDir()
	config := filepath.Join(t.TempDir(), "agent.toml")
	// A heartbeat interval far beyond the test, so every heartbeat after the first is a prompt one.
	os.WriteFile(config, []byte("[agent]\nheartbeat = \"1h\"\n"), 0o600)
	stop := agentProcess(t, bin, h, dir, config)

	var agentID string
	eventually(t, 10*time.Second, func() bool {
		h.with(func() {
			for id := range h.agents {
				agentID = id
			}
		})
		return agentID != ""
	}, "enrollment")
	hatch, beats := hatchBeat(t, h, 0, false, 5*time.Second)
	if hatch != (wire.HatchStatus{}) {
		t.Fatalf("first heartbeat's hatch %+v, want sealed", hatch)
	}
	h.with(func() {
		var spec wire.CommandSpec
		for _, c := range h.heartbeats[0].Catalog {
			if c.Name == "shell_run" {
				spec = c
			}
		}
		if !spec.Dangerous || spec.Group != "shell" {
			t.Errorf("shell_run in the catalog: %+v", spec)
		}
	})

	side := filepath.Join(t.TempDir(), "side")
	script := map[string]string{"script": "echo ran >> '" + side + "'; echo hello from $(hostname)"}
	sealedRejected := func(when string) {
		t.Helper()
		before := lines(t, side)
		id := h.send(agentID, "shell_run", script)
		r := h.waitResult(id)
		if r.Status != wire.StatusRejected || r.Reason != integration.ErrSealed.Error() || !r.StartedAt.IsZero() {
			t.Fatalf("%s: shell_run = %+v, want rejected as sealed", when, r)
		}
		h.with(func() {
			if ev := strings.Join(h.events[id], ","); ev != "result" {
				t.Errorf("%s: a sealed command was announced as running: %s", when, ev)
			}
		})
		if lines(t, side) != before {
			t.Fatalf("%s: the sealed script ran", when)
		}
	}
	worked := func(when string) {
		t.Helper()
		before := lines(t, side)
		id := h.send(agentID, "shell_run", script)
		r := h.waitResult(id)
		if r.Status != wire.StatusSucceeded || r.ExitCode == nil || *r.ExitCode != 0 {
			t.Fatalf("%s: shell_run = %+v", when, r)
		}
		if got, want := string(h.output(id)), "hello from "+host+"\n"; got != want {
			t.Fatalf("%s: output %q, want %q", when, got, want)
		}
		if lines(t, side) != before+1 {
			t.Fatalf("%s: the script did not run exactly once", when)
		}
	}
	hatchFile := filepath.Join(dir, HatchFile)
	noHatchFile := func(when string) {
		t.Helper()
		if _, err := os.Lstat(hatchFile); !os.IsNotExist(err) {
			t.Fatalf("%s: hatch file exists (%v)", when, err)
		}
	}

	// Sealed as shipped.
	sealedRejected("as shipped")

	// A wrong hostname, an over-long window and a missing answer open nothing.
	code, _, stderr := cli(t, bin, "not-"+host+"\n", nil, "unseal", "--state-dir", dir)
	if code == 0 || !strings.Contains(stderr, "Type the hostname ("+host+") to open the shell hatch:") || !strings.Contains(stderr, "is not this host's name") {
		t.Fatalf("wrong hostname: exit %d, %q", code, stderr)
	}
	noHatchFile("wrong hostname")
	code, _, stderr = cli(t, bin, host+"\n", nil, "unseal", "--for", "2h", "--state-dir", dir)
	if code != 2 || !strings.Contains(stderr, "at most 1h") {
		t.Fatalf("--for 2h: exit %d, %q", code, stderr)
	}
	noHatchFile("--for 2h")
	code, _, stderr = cli(t, bin, "", nil, "unseal", "--state-dir", dir)
	if code == 0 || !strings.Contains(stderr, "no answer") {
		t.Fatalf("no answer: exit %d, %q", code, stderr)
	}
	noHatchFile("no answer")

	// Unseal with the hostname typed back: the agent reports it at once, and shell_run runs.
	opened := time.Now()
	code, stdout, stderr := cli(t, bin, host+"\n", []string{"SUDO_USER=alice"}, "unseal", "--state-dir", dir)
	if code != 0 || !strings.Contains(stdout, "is open until") {
		t.Fatalf("unseal: exit %d, %q %q", code, stdout, stderr)
	}
	if fi, err := os.Stat(hatchFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("hatch file: %v %v", fi, err)
	}
	hatch, beats = hatchBeat(t, h, beats, true, 5*time.Second)
	if d := time.Since(opened); d > 3*time.Second {
		t.Errorf("the open hatch was reported %s after unseal, want about 1s", d)
	}
	if !strings.HasSuffix(hatch.By, "(sudo from alice)") || hatch.ExpiresAt.Sub(hatch.OpenedAt) != 15*time.Minute {
		t.Fatalf("reported hatch %+v", hatch)
	}
	worked("unsealed")
	if code, stdout, _ := cli(t, bin, "", nil, "hatch", "--state-dir", dir); code != 0 || !strings.HasPrefix(stdout, "open until") || !strings.Contains(stdout, "alice") {
		t.Fatalf("hatch: exit %d, %q", code, stdout)
	}

	// seal closes it early.
	sealed := time.Now()
	if code, stdout, _ := cli(t, bin, "", nil, "seal", "--state-dir", dir); code != 0 || stdout != "The shell hatch is sealed.\n" {
		t.Fatalf("seal: exit %d, %q", code, stdout)
	}
	hatch, beats = hatchBeat(t, h, beats, false, 5*time.Second)
	if d := time.Since(sealed); d > 3*time.Second || hatch.Open {
		t.Errorf("sealing was reported %s later as %+v", d, hatch)
	}
	sealedRejected("after seal")

	// A short window works while it lasts and closes by itself.
	if code, _, stderr := cli(t, bin, host+"\n", nil, "unseal", "--for", "3s", "--state-dir", dir); code != 0 {
		t.Fatalf("unseal --for 3s: exit %d %q", code, stderr)
	}
	_, beats = hatchBeat(t, h, beats, true, 5*time.Second)
	worked("within a 3s window")
	hatch, beats = hatchBeat(t, h, beats, false, 6*time.Second)
	if hatch.ExpiresAt.IsZero() || time.Now().Before(hatch.ExpiresAt) {
		t.Fatalf("expiry reported as %+v", hatch)
	}
	sealedRejected("after expiry")
	if code, stdout, _ := cli(t, bin, "", nil, "hatch", "--state-dir", dir); code != 0 || !strings.Contains(stdout, "expired") {
		t.Fatalf("hatch after expiry: exit %d, %q", code, stdout)
	}

	// A restart re-seals, even with time left on the window.
	if code, _, stderr := cli(t, bin, host+"\n", nil, "unseal", "--state-dir", dir); code != 0 {
		t.Fatalf("unseal before restart: exit %d %q", code, stderr)
	}
	_, beats = hatchBeat(t, h, beats, true, 5*time.Second)
	stop()
	agentProcess(t, bin, h, dir, config)
	hatch, _ = hatchBeat(t, h, beats, false, 10*time.Second)
	if hatch != (wire.HatchStatus{}) {
		t.Fatalf("after restart the hatch is reported as %+v", hatch)
	}
	noHatchFile("after restart")
	sealedRejected("after restart")
}

// A hatch left open by a run that crashed (or was stopped) is closed by New, before any command can run.
func TestHatchResealedBeforeIntegrationsLoad(t *testing.T) {
	h := newFakeHub(t)
	dir := t.TempDir()
	ra := startAgent(t, testConfig(t, h, dir))
	ra.stop()
	if _, err := OpenHatch(dir, time.Hour, "bob"); err != nil {
		t.Fatal(err)
	}
	a, err := New(context.Background(), testConfig(t, h, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer a.st.Close()
	if err := a.hatchGate(); err != integration.ErrSealed {
		t.Fatalf("gate after start = %v, want ErrSealed", err)
	}
	if st := a.hatchStatus(); st.Open || st.By != "" {
		t.Fatalf("status after start %+v", st)
	}
}
