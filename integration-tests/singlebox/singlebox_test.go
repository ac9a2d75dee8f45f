// Package singlebox tests infra/single-box: its systemd units pass `systemd-analyze verify`, their
// sandboxes rate as promised by `systemd-analyze security --offline=true`, and install.sh takes a
// newcomer's bare machine to a working fleet: the test runs it as root on a scratch directory
// (--prefix) and then starts MinIO, the hub and the agent from the command lines and environment of
// the units it wrote, as systemd would (without the sandbox, which needs a running systemd).
package singlebox

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pulsehq/pulse/integration-tests/s3server"
)

// The highest exposure `systemd-analyze security --offline=true` may give each unit (issue 14: the
// agent 1.5, the hub 2.5; MinIO is held to the hub's).
var maxExposure = map[string]float64{"pulse-agent": 1.5, "pulse": 2.5, "minio": 2.5}

var units = []string{"minio", "pulse", "pulse-agent"}

const script = "../../infra/single-box/install.sh"

// systemdAnalyze finds systemd-analyze: $PULSE_SYSTEMD_ANALYZE (make test sets it, and then a missing
// one fails the test), else PATH, else the test is skipped.
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PULSE_SYSTEMD_ANALYZE"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("PULSE_SYSTEMD_ANALYZE=%s: %v", p, err)
		}
		return p
	}
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is missing: Debian's systemd package has it (integration-tests/tools/install.sh systemd installs it; make test sets PULSE_SYSTEMD_ANALYZE, which makes this test fail instead of skipping)")
	}
	return p
}

// overallRE is the verdict line of `systemd-analyze security`, one per unit:
// "→ Overall exposure level for pulse-agent.service: 1.3 OK 🙂".
var overallRE = regexp.MustCompile(`Overall exposure level for (\S+): (\S+) `)

// parseExposure returns the overall exposure of each unit `systemd-analyze security` rated.
func parseExposure(out string) (map[string]float64, error) {
	scores := map[string]float64{}
	for _, m := range overallRE.FindAllStringSubmatch(out, -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil || v < 0 || v > 10 {
			return nil, fmt.Errorf("exposure of %s is %q, not a number from 0 to 10", m[1], m[2])
		}
		if _, dup := scores[m[1]]; dup {
			return nil, fmt.Errorf("%s is rated twice", m[1])
		}
		scores[m[1]] = v
	}
	if len(scores) == 0 {
		return nil, fmt.Errorf("no \"Overall exposure level\" line in:\n%s", out)
	}
	return scores, nil
}

func TestParseExposure(t *testing.T) {
	table := []struct {
		name, out string
		want      map[string]float64
		err       string
	}{
		{"one unit", "✗ PrivateNetwork=    Service has access to the host's network    0.5\n" +
			"→ Overall exposure level for pulse-agent.service: 1.3 OK 🙂\n",
			map[string]float64{"pulse-agent.service": 1.3}, ""},
		{"two units", "→ Overall exposure level for a.service: 9.6 UNSAFE 😨\n→ Overall exposure level for b.service: 0.0 SAFE 😀\n",
			map[string]float64{"a.service": 9.6, "b.service": 0}, ""},
		{"a path", "→ Overall exposure level for /tmp/x/pulse.service: 2.5 MEDIUM 😐\n",
			map[string]float64{"/tmp/x/pulse.service": 2.5}, ""},
		{"no verdict", "Failed to load unit: No such file or directory\n", nil, "no \"Overall exposure level\""},
		{"not a number", "→ Overall exposure level for a.service: high OK\n", nil, "not a number"},
		{"out of range", "→ Overall exposure level for a.service: 11.0 UNSAFE\n", nil, "not a number from 0 to 10"},
		{"twice", "→ Overall exposure level for a.service: 1.0 OK\n→ Overall exposure level for a.service: 1.0 OK\n", nil, "rated twice"},
	}
	for _, c := range table {
		got, err := parseExposure(c.out)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want one containing %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: got %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}

// unit is a parsed unit file: section -> key -> the values of every assignment, in order.
type unit map[string]map[string][]string

func parseUnit(text string) (unit, error) {
	u := unit{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case strings.HasSuffix(line, "\\"):
			return nil, fmt.Errorf("line %d: a continued line, which this parser does not handle", n)
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		case section == "":
			return nil, fmt.Errorf("line %d: %q before any section", n, line)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				return nil, fmt.Errorf("line %d: %q is not KEY=VALUE", n, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u, sc.Err()
}

// words splits a value that must hold no quoting, escapes or variables (systemd would treat them
// specially; this test does not emulate that, so the units must not need it).
func words(what, v string) ([]string, error) {
	if strings.ContainsAny(v, "\"'\\$%;") {
		return nil, fmt.Errorf("%s %q uses quoting, escapes, variables or specifiers, which this test does not emulate", what, v)
	}
	return strings.Fields(v), nil
}

// envLines reads an EnvironmentFile: KEY=VALUE lines, comments and blank lines.
func envLines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if !regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=[^"'\\$ ]*$`).MatchString(line) {
			return nil, fmt.Errorf("%s: %q is not a plain KEY=VALUE line", path, line)
		}
		out = append(out, line)
	}
	return out, nil
}

// serviceCommand builds what systemd would run for the unit: ExecStart's command line, with
// Environment= and EnvironmentFile= (a leading "-": optional) and WorkingDirectory=, substituting
// nothing. Every absolute path in it must lie under prefix: install.sh wrote them so.
func serviceCommand(u unit, prefix string) (*exec.Cmd, error) {
	svc := u["Service"]
	if svc == nil || len(svc["ExecStart"]) != 1 {
		return nil, fmt.Errorf("want one ExecStart= in [Service], have %q", svc["ExecStart"])
	}
	argv, err := words("ExecStart", svc["ExecStart"][0])
	if err != nil {
		return nil, err
	}
	if len(argv) == 0 || !filepath.IsAbs(argv[0]) {
		return nil, fmt.Errorf("ExecStart %q does not start with an absolute path (prefixes like - or @ are not emulated)", svc["ExecStart"][0])
	}
	wd := "/"
	if w := svc["WorkingDirectory"]; len(w) > 0 {
		wd = w[len(w)-1]
	}
	paths := append([]string{wd}, argv...)
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + wd}
	for _, v := range svc["Environment"] {
		ws, err := words("Environment", v)
		if err != nil {
			return nil, err
		}
		env = append(env, ws...)
	}
	for _, f := range svc["EnvironmentFile"] {
		optional := strings.HasPrefix(f, "-")
		f = strings.TrimPrefix(f, "-")
		paths = append(paths, f)
		lines, err := envLines(f)
		if optional && os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		env = append(env, lines...)
	}
	for _, p := range paths {
		if filepath.IsAbs(p) && p != "/" && p != prefix && !strings.HasPrefix(p, prefix+"/") {
			return nil, fmt.Errorf("%s is not under the prefix %s", p, prefix)
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = wd, env
	return cmd, nil
}

func TestServiceCommand(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "env"), []byte("# secrets\nA=1\n\nB=two=2\n"), 0o600)
	u, err := parseUnit(fmt.Sprintf(`# comment
[Unit]
Description=x

[Service]
WorkingDirectory=%[1]s
Environment=C=3 D=4
EnvironmentFile=%[1]s/env
EnvironmentFile=-%[1]s/absent
ExecStart=%[1]s/bin/x serve --config %[1]s/x.toml --flag
`, dir))
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := serviceCommand(u, dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(cmd.Args, " "), dir+"/bin/x serve --config "+dir+"/x.toml --flag"; got != want {
		t.Errorf("args %q, want %q", got, want)
	}
	if got, want := strings.Join(cmd.Env[2:], " "), "C=3 D=4 A=1 B=two=2"; got != want || cmd.Dir != dir {
		t.Errorf("env %q in %s, want %q in %s", got, cmd.Dir, want, dir)
	}
	for text, want := range map[string]string{
		"[Service]\nExecStart=/x/bin/a\n":                                          "not under the prefix",
		"[Service]\nExecStart=-" + dir + "/bin/a\n":                                "absolute path",
		"[Service]\nExecStart=" + dir + "/bin/a $HOME\n":                           "variables",
		"[Service]\nExecStart=" + dir + "/a\nExecStart=" + dir + "/b\n":            "want one ExecStart",
		"[Service]\nExecStart=" + dir + "/a\nEnvironmentFile=" + dir + "/absent\n": "no such file",
	} {
		u, err := parseUnit(text)
		if err == nil {
			_, err = serviceCommand(u, dir)
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one containing %q", text, err, want)
		}
	}
}

// install runs install.sh and returns its output (stdout and stderr together) and exit code.
func install(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), "PULSE_MINIO_BIN=", "PULSE_PREFIX=", "PULSE_ENROLL_TOKEN=")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

func TestInstallRefuses(t *testing.T) {
	out, code := install(t, "--help")
	if code != 0 || !strings.Contains(out, "--prefix DIR") || !strings.Contains(out, "integration-tests/tools/install.sh minio") {
		t.Errorf("--help: exit %d:\n%s", code, out)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--bogus"}, 2, "unknown argument '--bogus'"},
		{[]string{"--prefix=/tmp/x"}, 2, "write --prefix VALUE"},
		{[]string{"--prefix"}, 2, "--prefix needs a value"},
		{[]string{"--prefix", "tmp/x", "--no-systemd"}, 2, "want an absolute path"},
		{[]string{"--prefix", "/tmp/a b", "--no-systemd"}, 2, "only letters, digits"},
		{[]string{"--prefix", "/tmp/x"}, 2, "add --no-systemd"},
		{[]string{"--hub-addr", "8080", "--no-systemd"}, 2, "--hub-addr '8080': want HOST:PORT"},
		{[]string{"--minio-addr", "127.0.0.1:99999", "--no-systemd"}, 2, "want HOST:PORT"},
		{[]string{"--hub-addr", "127.0.0.1:9000", "--no-systemd"}, 2, "different ports"},
		{[]string{"--bucket", "Pulse", "--no-systemd"}, 2, "--bucket 'Pulse'"},
		{[]string{"--agent-labels", "role", "--no-systemd"}, 2, "want k=v,k2=v2"},
		{[]string{"--enroll-token", "pet_x", "--no-systemd"}, 2, "--enroll-token is for --agent-only"},
		{[]string{"--agent-only", "--no-systemd"}, 2, "--agent-only needs --hub URL"},
		{[]string{"--agent-only", "--hub", "pulse.example.com", "--no-systemd"}, 2, "want an http:// or https:// URL"},
		{[]string{"--agent-only", "--hub", "https://pulse.example.com", "--agent-labels", "a=b", "--no-systemd"}, 2, "--agent-labels is not for --agent-only"},
		{[]string{"--hub", "https://pulse.example.com", "--no-systemd"}, 2, "--hub is for --agent-only"},
		{[]string{"--no-systemd", "--pulse-agent", missing}, 1, "--pulse-agent " + missing + ": no such file; build it with `make build`"},
	} {
		out, code := install(t, c.args...)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("install.sh %q: exit %d, want %d with %q:\n%s", c.args, code, c.code, c.want, out)
		}
	}
}

// build compiles pulse and pulse-agent for the test, as `make build` would (without the dashboard,
// which the hub then replaces with a page saying to run `make build`).
func build(t *testing.T) (pulse, agent string) {
	t.Helper()
	dir := t.TempDir()
	for bin, pkg := range map[string]string{"pulse": "./functions/cmd/pulse", "pulse-agent": "./agent/cmd/pulse-agent"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, bin), pkg)
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return filepath.Join(dir, "pulse"), filepath.Join(dir, "pulse-agent")
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// verifyProblems runs `systemd-analyze verify` on a unit file and returns what it said about the unit:
// any line naming it (it exits 0 on warnings such as an unknown key or a value it ignores). Lines about
// other units (the machine's own) are logged.
func verifyProblems(t *testing.T, analyze, path string) []string {
	t.Helper()
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	var problems []string
	if err != nil {
		problems = append(problems, err.Error())
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		switch {
		case line == "":
		case strings.Contains(line, path) || strings.Contains(line, filepath.Base(path)):
			problems = append(problems, line)
		default:
			t.Logf("systemd-analyze verify %s, about another unit: %s", path, line)
		}
	}
	return problems
}

// unprefixedRE finds a path of ours that install.sh should have moved under the prefix.
var unprefixedRE = regexp.MustCompile(`(^|[ =-])/(usr/local/bin|etc|var/lib)/(minio|pulse|pulse-agent)\b`)

func TestSingleBox(t *testing.T) {
	analyze := systemdAnalyze(t)
	if os.Geteuid() != 0 {
		t.Skip("install.sh runs as root (it makes users, writes /etc and chowns): run this test as root")
	}
	start := time.Now()
	minioBin, err := s3server.Binary(s3server.MinIO)
	if err != nil {
		t.Fatal(err)
	}
	pulseBin, agentBin := build(t)
	t.Logf("built pulse and pulse-agent in %s", time.Since(start).Round(time.Millisecond))

	prefix := t.TempDir()
	hubAddr, minioAddr := freeAddr(t), freeAddr(t)
	args := []string{"--prefix", prefix, "--no-systemd", "--no-users", "--pulse", pulseBin, "--pulse-agent", agentBin,
		"--minio", minioBin, "--hub-addr", hubAddr, "--minio-addr", minioAddr, "--agent-labels", "role=hub,env=test"}
	out, code := install(t, args...)
	if code != 0 {
		t.Fatalf("install.sh: exit %d:\n%s", code, out)
	}
	t.Logf("install.sh:\n%s", out)
	for _, want := range []string{
		"would run: useradd --system --user-group --home-dir /var/lib/pulse-agent --no-create-home --shell /usr/sbin/nologin pulse-agent",
		"created the bucket pulse", "the first admin token is in " + prefix + "/etc/pulse/admin.token",
		"made an enrollment token for the local agent (labels role=hub,env=test",
		"--no-systemd: stopped the pulse I had started", "--no-systemd: stopped the minio I had started",
		"would run: systemctl enable --now minio.service pulse.service pulse-agent.service",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("install.sh did not say %q", want)
		}
	}
	unitPath := func(name string) string { return filepath.Join(prefix, "etc/systemd/system", name+".service") }

	t.Run("verify", func(t *testing.T) {
		for _, name := range units {
			for _, p := range verifyProblems(t, analyze, unitPath(name)) {
				t.Errorf("systemd-analyze verify %s.service: %s", name, p)
			}
		}
		// The check itself: verify exits 0 on what it only warns about, which must fail all the same.
		bad := filepath.Join(t.TempDir(), "pulse.service")
		b, _ := os.ReadFile(unitPath("pulse"))
		os.WriteFile(bad, bytes.Replace(b, []byte("ProtectHome=yes"), []byte("ProtectHome=perhaps\nPrivateNetwok=yes"), 1), 0o644)
		if p := verifyProblems(t, analyze, bad); len(p) != 2 {
			t.Errorf("a unit with a bad value and an unknown key: problems %q, want two", p)
		}
	})

	t.Run("security", func(t *testing.T) {
		for _, name := range units {
			out, err := exec.Command(analyze, "security", "--offline=true", "--no-pager", unitPath(name)).CombinedOutput()
			if err != nil {
				t.Errorf("systemd-analyze security %s: %v\n%s", name, err, out)
				continue
			}
			scores, err := parseExposure(string(out))
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			score, ok := scores[name+".service"]
			if !ok || len(scores) != 1 {
				t.Errorf("%s: rated %v", name, scores)
			}
			t.Logf("%s.service: exposure %.1f (at most %.1f)", name, score, maxExposure[name])
			if score > maxExposure[name] {
				t.Errorf("%s.service: exposure %.1f, above %.1f:\n%s", name, score, maxExposure[name], out)
			}
		}
	})

	t.Run("files", func(t *testing.T) {
		for path, mode := range map[string]os.FileMode{
			"etc/minio/env": 0o600, "etc/pulse/env": 0o600, "etc/pulse/admin.token": 0o600,
			"etc/pulse-agent/env": 0o600, "var/lib/pulse/pulse-hub.key": 0o600,
			"etc/pulse/pulse.toml": 0o640, "etc/pulse-agent/agent.toml": 0o640,
			"etc/minio": 0o750 | os.ModeDir, "etc/pulse": 0o750 | os.ModeDir, "var/lib/minio": 0o700 | os.ModeDir,
			"var/lib/pulse": 0o700 | os.ModeDir, "var/lib/pulse-agent": 0o700 | os.ModeDir,
			"usr/local/bin/pulse": 0o755, "usr/local/bin/pulse-agent": 0o755, "usr/local/bin/minio": 0o755,
		} {
			fi, err := os.Stat(filepath.Join(prefix, path))
			if err != nil {
				t.Error(err)
			} else if fi.Mode() != mode {
				t.Errorf("%s: mode %v, want %v", path, fi.Mode(), mode)
			}
		}
		for _, name := range units {
			b, err := os.ReadFile(unitPath(name))
			if err != nil {
				t.Fatal(err)
			}
			for n, line := range strings.Split(string(b), "\n") {
				if unprefixedRE.MatchString(line) {
					t.Errorf("%s.service:%d still names a path outside the prefix: %s", name, n+1, line)
				}
			}
		}
		if b, _ := os.ReadFile(filepath.Join(prefix, "etc/pulse/env")); !strings.Contains(string(b), "AWS_SECRET_ACCESS_KEY=") {
			t.Errorf("etc/pulse/env has no store credentials:\n%s", b)
		}
	})

	// A second run before anything started: everything kept, the unused token checked and kept.
	before := digests(t, prefix)
	out, code = install(t, args...)
	if code != 0 {
		t.Fatalf("install.sh, again: exit %d:\n%s", code, out)
	}
	for _, want := range []string{"kept MinIO's credentials", "pulse init: kept the signing key", "kept the admin token",
		"kept the local agent's enrollment token", "kept " + prefix + "/usr/local/bin/pulse (same as"} {
		if !strings.Contains(out, want) {
			t.Errorf("install.sh, again, did not say %q:\n%s", want, out)
		}
	}
	sameFiles(t, "the second run", before, digests(t, prefix))

	t.Run("fleet", func(t *testing.T) { fleet(t, prefix, hubAddr, agentBin, args) })
	t.Logf("TestSingleBox took %s", time.Since(start).Round(time.Millisecond))
}

// fleet starts the three services from their units, as systemd would, and uses them.
func fleet(t *testing.T, prefix, hubAddr, agentBin string, args []string) {
	procs := map[string]*proc{}
	for _, name := range units {
		procs[name] = startUnit(t, filepath.Join(prefix, "etc/systemd/system", name+".service"), prefix)
		switch name {
		case "minio":
			b, _ := os.ReadFile(filepath.Join(prefix, "etc/minio/env"))
			addr := regexp.MustCompile(`(?m)^MINIO_ADDRESS=(.*)$`).FindSubmatch(b)
			if addr == nil {
				t.Fatalf("etc/minio/env has no MINIO_ADDRESS:\n%s", b)
			}
			waitHTTP(t, procs[name], "http://"+string(addr[1])+"/minio/health/live")
		case "pulse":
			waitHTTP(t, procs[name], "http://"+hubAddr+"/readyz")
		}
	}
	tok, err := os.ReadFile(filepath.Join(prefix, "etc/pulse/admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(filepath.Join(prefix, "usr/local/bin/pulse"), args...)
		cmd.Env = append(os.Environ(), "PULSE_HUB=http://"+hubAddr, "PULSE_TOKEN="+strings.TrimSpace(string(tok)))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out) + stderr.String(), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	online := func(want int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			out, code := cli("agents", "--json")
			var l struct {
				Agents []struct {
					ID     string `json:"id"`
					Online bool   `json:"online"`
				} `json:"agents"`
			}
			n := 0
			if code == 0 && json.Unmarshal([]byte(out), &l) == nil {
				for _, a := range l.Agents {
					if a.Online {
						n++
					}
				}
				if n == want && len(l.Agents) == want {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("want %d agents online; pulse agents (exit %d):\n%s", want, code, out)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	online(1)

	type status struct {
		ID     string         `json:"id"`
		Counts map[string]int `json:"counts"`
		Agents []struct {
			Agent string `json:"agent"`
		} `json:"agents"`
	}
	run := func(succeeded int, args ...string) status {
		t.Helper()
		out, code := cli(append(append([]string{"run"}, args...), "--wait", "--json")...)
		var st status
		if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || st.Counts["succeeded"] != succeeded {
			t.Fatalf("pulse run %q: exit %d, want %d succeeded:\n%s", args, code, succeeded, out)
		}
		return st
	}
	run(1, "host_uptime", "--target", "all")
	// The command and the labels come from the agent.toml and the token install.sh made.
	st := run(1, "disk_usage", "--target", "role=hub,env=test", "--param", "path=/")
	if out, code := cli("output", st.ID, "--agent", st.Agents[0].Agent); code != 0 || !strings.Contains(out, "Filesystem") {
		t.Errorf("pulse output of disk_usage: exit %d:\n%s", code, out)
	}

	resp, err := http.Get("http://" + hubAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GET / (the dashboard): %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	// A third run with everything up and the agent enrolled: it starts nothing and changes nothing.
	before := digests(t, prefix)
	out, code := install(t, args...)
	if code != 0 || strings.Contains(out, "started") || !strings.Contains(out, "the local agent has enrolled") {
		t.Errorf("install.sh with the services running: exit %d:\n%s", code, out)
	}
	sameFiles(t, "the third run", before, digests(t, prefix))

	// Another machine's agent: --agent-only with a token from the CLI, started from its own unit.
	other := t.TempDir()
	enroll, code := cli("enroll-token", "create", "--labels", "role=other")
	if code != 0 {
		t.Fatalf("pulse enroll-token create: exit %d: %s", code, enroll)
	}
	out, code = install(t, "--agent-only", "--prefix", other, "--no-systemd", "--no-users", "--pulse-agent", agentBin,
		"--hub", "http://"+hubAddr, "--enroll-token", strings.TrimSpace(enroll))
	if code != 0 {
		t.Fatalf("install.sh --agent-only: exit %d:\n%s", code, out)
	}
	for _, f := range []string{"etc/systemd/system/pulse.service", "etc/systemd/system/minio.service", "usr/local/bin/pulse", "etc/pulse"} {
		if _, err := os.Stat(filepath.Join(other, f)); err == nil {
			t.Errorf("install.sh --agent-only made %s", f)
		}
	}
	procs["other agent"] = startUnit(t, filepath.Join(other, "etc/systemd/system/pulse-agent.service"), other)
	online(2)
	run(1, "host_uptime", "--target", "role=other")
	run(2, "host_uptime", "--target", "all")

	// Stopped as systemd stops them (SIGTERM), last started first: the hub and agents exit cleanly.
	for _, name := range []string{"other agent", "pulse-agent", "pulse", "minio"} {
		err := procs[name].stop()
		if name != "minio" && err != nil {
			t.Errorf("%s on SIGTERM: %v\n%s", name, err, procs[name].logs.String())
		}
	}
}

// proc is a service started from its unit.
type proc struct {
	name string
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan error
}

func startUnit(t *testing.T, path, prefix string) *proc {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u, err := parseUnit(string(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	cmd, err := serviceCommand(u, prefix)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	p := &proc{name: filepath.Base(path), cmd: cmd, logs: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		err := <-p.done
		p.done <- err
		if t.Failed() {
			t.Logf("%s (%s) log:\n%s", p.name, strings.Join(cmd.Args, " "), p.logs.String())
		}
	})
	return p
}

// stop sends SIGTERM and returns how the process exited, killing it after 20 s.
func (p *proc) stop() error {
	select {
	case err := <-p.done:
		p.done <- err
		return fmt.Errorf("had exited already: %v", err)
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(20 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		err := <-p.done
		p.done <- err
		return fmt.Errorf("still running 20 s after SIGTERM (killed): %v", err)
	}
}

func waitHTTP(t *testing.T, p *proc, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		cancel()
		if err == nil && resp.StatusCode == 200 {
			return
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("%s exited during start-up (%v):\n%s", p.name, err, p.logs.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s did not answer 200 within 30 s (%v):\n%s", p.name, url, err, p.logs.String())
		}
	}
}

// digests hashes every regular file under dir but what the services write in /var/lib (MinIO's
// objects, the agent's state), bar the hub's key, to show a later install.sh run changed nothing.
func digests(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if !fi.Mode().IsRegular() || strings.HasPrefix(rel, "var/lib/") && rel != "var/lib/pulse/pulse-hub.key" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out[rel] = fmt.Sprintf("%x %v", sha256.Sum256(b), fi.Mode())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameFiles(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for f, d := range after {
		if before[f] != d {
			t.Errorf("%s changed or made %s", what, f)
		}
	}
	for f := range before {
		if _, ok := after[f]; !ok {
			t.Errorf("%s removed %s", what, f)
		}
	}
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
