package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersionAndHelp(t *testing.T) {
	if code, out, _ := runCLI(t, "version"); code != 0 || !strings.HasPrefix(out, "pulse-agent ") {
		t.Errorf("version: %d %q", code, out)
	}
	if code, out, _ := runCLI(t, "help"); code != 0 || !strings.Contains(out, "pulse-agent run") {
		t.Errorf("help: %d %q", code, out)
	}
	code, out, _ := runCLI(t, "run", "--help")
	if code != 0 {
		t.Errorf("run --help exit %d", code)
	}
	for _, flag := range []string{"-hub", "-enroll-token", "-state-dir", "-config", "-log-format", "-log-level", "PULSE_ENROLL_TOKEN"} {
		if !strings.Contains(out, flag) {
			t.Errorf("run --help does not explain %s:\n%s", flag, out)
		}
	}
}

func oneLineError(t *testing.T, stderr string) {
	t.Helper()
	if strings.Count(stderr, "\n") != 1 || strings.Contains(stderr, "goroutine") {
		t.Errorf("want exactly one line on stderr, got:\n%s", stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"run", "--bogus"}, {"run", "--log-format", "xml"}, {"run", "--hub", "ftp://x"}, {"run", "extra"}} {
		code, _, stderr := runCLI(t, args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
		if len(args) > 0 {
			oneLineError(t, stderr)
		}
	}
}

func TestFatalStartIsOneLine(t *testing.T) {
	t.Setenv(tokenEnv, "")
	dir := t.TempDir()

	// Not enrolled and no token.
	code, _, stderr := runCLI(t, "run", "--state-dir", dir, "--hub", "http://127.0.0.1:1", "--log-level", "error")
	if code != exitFailure || !strings.Contains(stderr, "--enroll-token") {
		t.Errorf("no token: exit %d, %q", code, stderr)
	}
	oneLineError(t, stderr)

	// A corrupt config that also leaves no hub URL is fatal, naming what is missing.
	cfg := filepath.Join(t.TempDir(), "agent.toml")
	os.WriteFile(cfg, []byte("[agent\nhub="), 0o600)
	code, _, stderr = runCLI(t, "run", "--state-dir", dir, "--config", cfg, "--log-level", "error")
	if code != exitFailure || !strings.Contains(stderr, "no hub URL") {
		t.Errorf("corrupt config, no hub: exit %d, %q", code, stderr)
	}
	oneLineError(t, stderr)

	// A key others can read is refused with the fix in the message.
	os.Chmod(filepath.Join(dir, "agent.key"), 0o644)
	code, _, stderr = runCLI(t, "run", "--state-dir", dir, "--hub", "http://127.0.0.1:1", "--log-level", "error")
	if code != exitFailure || !strings.Contains(stderr, "chmod 600") {
		t.Errorf("0644 key: exit %d, %q", code, stderr)
	}
	oneLineError(t, stderr)
}
