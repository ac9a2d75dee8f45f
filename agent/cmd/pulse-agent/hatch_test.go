package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/kernel"
)

func runWithStdin(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func hostname(t *testing.T) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestUnsealHatchSeal(t *testing.T) {
	t.Setenv("SUDO_USER", "alice")
	dir := t.TempDir()
	host := hostname(t)

	if code, out, _ := runCLI(t, "hatch", "--state-dir", dir); code != 0 || out != "sealed\n" {
		t.Fatalf("hatch before unseal: %d %q", code, out)
	}
	code, out, errOut := runWithStdin(t, "  "+strings.ToUpper(host)+"  \n", "unseal", "--for", "20m", "--state-dir", dir)
	if code != 0 || !strings.Contains(errOut, "Type the hostname ("+host+") to open the shell hatch: ") || !strings.Contains(out, "(20m0s), opened by") {
		t.Fatalf("unseal: %d %q %q", code, out, errOut)
	}
	st, err := kernel.ReadHatch(dir, time.Now())
	if err != nil || !st.Open || st.ExpiresAt.Sub(st.OpenedAt) != 20*time.Minute || !strings.HasSuffix(st.By, " (sudo from alice)") {
		t.Fatalf("hatch after unseal: %+v %v", st, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, kernel.HatchFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("hatch file mode: %v %v", fi, err)
	}
	if code, out, _ := runCLI(t, "hatch", "--state-dir", dir); code != 0 || !strings.HasPrefix(out, "open until") || !strings.Contains(out, "alice") {
		t.Fatalf("hatch: %d %q", code, out)
	}
	if code, out, _ := runCLI(t, "seal", "--state-dir", dir); code != 0 || out != "The shell hatch is sealed.\n" {
		t.Fatalf("seal: %d %q", code, out)
	}
	if code, out, _ := runCLI(t, "seal", "--state-dir", dir); code != 0 || out != "The shell hatch was already sealed.\n" {
		t.Fatalf("seal again: %d %q", code, out)
	}
	if code, out, _ := runCLI(t, "hatch", "--state-dir", dir); code != 0 || out != "sealed\n" {
		t.Fatalf("hatch after seal: %d %q", code, out)
	}
}

func TestUnsealRefuses(t *testing.T) {
	dir := t.TempDir()
	host := hostname(t)
	cases := []struct {
		name, stdin string
		args        []string
		code        int
		want        string
	}{
		{"wrong hostname", "not-" + host + "\n", nil, exitFailure, "is not this host's name"},
		{"empty answer", "\n", nil, exitFailure, "is not this host's name"},
		{"no answer", "", nil, exitFailure, "no answer"},
		{"over an hour", host + "\n", []string{"--for", "2h"}, exitUsage, "--for 2h0m0s: the hatch opens for at most 1h"},
		{"just over an hour", host + "\n", []string{"--for", "61m"}, exitUsage, "at most 1h"},
		{"zero", host + "\n", []string{"--for", "0s"}, exitUsage, "positive duration"},
		{"not a duration", host + "\n", []string{"--for", "a while"}, exitUsage, "invalid value"},
		{"extra argument", host + "\n", []string{"now"}, exitUsage, "unexpected argument"},
		{"no state directory", host + "\n", []string{"--state-dir", filepath.Join(dir, "missing")}, exitFailure, "no agent state directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"unseal", "--state-dir", dir}, tc.args...)
			code, _, errOut := runWithStdin(t, tc.stdin, args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d mentioning %q", code, errOut, tc.code, tc.want)
			}
			if tc.code == exitFailure && !strings.HasSuffix(errOut, "the hatch stays sealed\n") {
				t.Errorf("stderr does not end by saying the hatch stays sealed: %q", errOut)
			}
			if _, err := os.Stat(filepath.Join(dir, kernel.HatchFile)); !os.IsNotExist(err) {
				t.Fatalf("a hatch file was written: %v", err)
			}
		})
	}
	// An hour exactly is allowed.
	if code, _, errOut := runWithStdin(t, host+"\n", "unseal", "--for", "1h", "--state-dir", dir); code != 0 {
		t.Fatalf("--for 1h: %d %q", code, errOut)
	}
}

func TestHatchCommandsFindTheStateDirInTheConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "agent.toml")
	os.WriteFile(cfg, []byte("[agent]\nstate_dir = \""+dir+"\"\n"), 0o600)
	if code, _, errOut := runWithStdin(t, hostname(t)+"\n", "unseal", "--config", cfg); code != 0 {
		t.Fatalf("unseal --config: %d %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, kernel.HatchFile)); err != nil {
		t.Fatalf("no hatch in the configured state directory: %v", err)
	}
	if code, out, _ := runCLI(t, "seal", "--config", cfg); code != 0 || !strings.Contains(out, "is sealed") {
		t.Fatalf("seal --config: %d %q", code, out)
	}
}

func TestHatchHelp(t *testing.T) {
	_, top, _ := runCLI(t, "help")
	for _, sub := range []string{"pulse-agent unseal", "pulse-agent seal", "pulse-agent hatch"} {
		if !strings.Contains(top, sub) {
			t.Errorf("help does not mention %s", sub)
		}
	}
	for _, args := range [][]string{{"unseal", "--help"}, {"help", "unseal"}} {
		code, out, _ := runCLI(t, args...)
		if code != 0 || !strings.Contains(out, "-for") || !strings.Contains(out, "-state-dir") || !strings.Contains(out, "at most 1h") {
			t.Errorf("%v: %d %q", args, code, out)
		}
	}
	for _, sub := range []string{"seal", "hatch"} {
		if code, out, _ := runCLI(t, sub, "--help"); code != 0 || !strings.Contains(out, "-state-dir") || strings.Contains(out, "-for") {
			t.Errorf("%s --help: %d %q", sub, code, out)
		}
	}
}
