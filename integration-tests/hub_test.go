// Package integration holds the end-to-end tests: they build the real `pulse` binary, start real S3
// servers and drive the processes from outside, as an operator would.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pulsehq/pulse/integration-tests/s3server"
)

var (
	pulseBin string
	agentBin string
	minio    *s3server.Server
)

const bucket = "pulse-e2e"

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "pulse-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	pulseBin = filepath.Join(tmp, "pulse")
	agentBin = filepath.Join(tmp, "pulse-agent")
	for bin, pkg := range map[string]string{pulseBin: "./functions/cmd/pulse", agentBin: "./agent/cmd/pulse-agent"} {
		build := exec.Command("go", "build", "-o", bin, pkg)
		build.Dir = ".."
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build", pkg+":", err)
			return 1
		}
	}
	ctx := context.Background()
	minio, err = s3server.Start(ctx, s3server.MinIO, s3server.Options{Dir: filepath.Join(tmp, "minio")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer minio.Stop()
	if err := minio.CreateBucket(ctx, bucket); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// hubProc is a running `pulse serve`.
type hubProc struct {
	t    testing.TB
	cmd  *exec.Cmd
	url  string
	logs *syncBuffer
	done chan error
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startHub runs `pulse serve args...` in dir with extra environment, listening on a free port given
// through PULSE_ADDR (so args can stay empty), and waits until /healthz answers.
func startHub(t testing.TB, dir string, env []string, args ...string) *hubProc {
	t.Helper()
	return startHubAt(t, dir, freeAddr(t), env, args...)
}

// startHubAt is startHub on a given address, to restart a hub where its agents expect it.
func startHubAt(t testing.TB, dir, addr string, env []string, args ...string) *hubProc {
	t.Helper()
	return startHubBin(t, pulseBin, dir, addr, env, args...)
}

// startHubBin is startHubAt with another pulse binary (one built with the dashboard, say).
func startHubBin(t testing.TB, bin, dir, addr string, env []string, args ...string) *hubProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "PULSE_ADDR="+addr, "PULSE_LOG_LEVEL=debug"), env...)
	h := &hubProc{t: t, cmd: cmd, url: "http://" + addr, logs: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = h.logs, h.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { h.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-h.done
		if t.Failed() {
			t.Logf("hub log:\n%s", h.logs.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := http.Get(h.url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return h
			}
		}
		select {
		case err := <-h.done:
			h.done <- err
			t.Fatalf("pulse serve exited during start-up (%v):\n%s", err, h.logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("pulse serve did not answer /healthz:\n%s", h.logs.String())
		}
	}
}

// syncBuffer collects a process's output; the process writes while the test reads.
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

// waitLog waits until the hub has logged a line containing s; output reaches the test asynchronously.
func (h *hubProc) waitLog(s string) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(h.logs.String(), s) {
		if time.Now().After(deadline) {
			h.t.Fatalf("hub never logged %q:\n%s", s, h.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type problem struct {
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// readyz returns the status code and either the ready body or the problem detail.
func (h *hubProc) readyz() (int, map[string]any, string) {
	h.t.Helper()
	resp, err := http.Get(h.url + "/readyz")
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 {
		var body map[string]any
		json.Unmarshal(b, &body)
		return 200, body, ""
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		h.t.Fatalf("readyz %d with Content-Type %q, want application/problem+json: %s", resp.StatusCode, ct, b)
	}
	var p problem
	if err := json.Unmarshal(b, &p); err != nil {
		h.t.Fatalf("readyz problem body %q: %v", b, err)
	}
	return resp.StatusCode, nil, p.Detail
}

// waitReadyz polls /readyz until want(status, detail) holds or the time runs out. The hub re-checks its
// store at most once a second, so a change shows within a few seconds.
func (h *hubProc) waitReadyz(what string, want func(int, map[string]any, string) bool) (int, map[string]any, string) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body, detail := h.readyz()
		if want(code, body, detail) {
			return code, body, detail
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("readyz never showed %s; last: %d %v %q", what, code, body, detail)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestServeWithNoArguments(t *testing.T) {
	dir := t.TempDir()
	h := startHub(t, dir, nil)
	code, body, detail := h.waitReadyz("ready", func(c int, _ map[string]any, _ string) bool { return c == 200 })
	if body["mode"] != "conditional" || body["store"] != "file:pulse-data" {
		t.Fatalf("readyz %d %v %q; want ready on file:pulse-data in conditional mode", code, body, detail)
	}
	if st, err := os.Stat(filepath.Join(dir, "pulse-data")); err != nil || !st.IsDir() {
		t.Fatalf("no ./pulse-data created: %v", err)
	}
	h.waitLog("mode=conditional")
}

func TestProblemDetailsForUnknownRoutes(t *testing.T) {
	h := startHub(t, t.TempDir(), nil)
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/v1/no/such/thing", 404},
		{"POST", "/no/such/thing", 404},
		{"DELETE", "/healthz", 405},
	} {
		req, _ := http.NewRequest(c.method, h.url+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var p problem
		json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != "application/problem+json" || p.Status != c.status || p.Detail == "" {
			t.Errorf("%s %s: %d %q %+v; want %d problem with a detail", c.method, c.path, resp.StatusCode, resp.Header.Get("Content-Type"), p, c.status)
		}
	}
	// Outside the API a GET is the dashboard's (a deep link into it), not a problem.
	if resp, err := http.Get(h.url + "/no/such/thing"); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("GET /no/such/thing: %d %q; want the dashboard's page", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	for _, path := range []string{"/openapi.json", "/openapi.yaml", "/docs"} {
		resp, err := http.Get(h.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
	}
}

// TestStoreComesBack: a hub pointed at an S3 endpoint where nothing listens starts anyway and says why it
// is not ready; when MinIO starts there it says the bucket is missing; once the bucket exists it is
// ready — all without a restart.
func TestStoreComesBack(t *testing.T) {
	port := freeAddr(t)[len("127.0.0.1:"):]
	storeURL := "s3://late-bucket?endpoint=http://127.0.0.1:" + port + "&region=us-east-1"
	h := startHub(t, t.TempDir(), s3server.Env(), "--store", storeURL)

	_, _, detail := h.waitReadyz("unreachable", func(c int, _ map[string]any, d string) bool { return c == 503 })
	if !strings.Contains(detail, "cannot reach S3 endpoint http://127.0.0.1:"+port) {
		t.Fatalf("readyz detail %q does not say the endpoint is unreachable", detail)
	}

	var p int
	fmt.Sscan(port, &p)
	srv, err := s3server.Start(context.Background(), s3server.MinIO, s3server.Options{Port: p, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	h.waitReadyz("missing bucket", func(c int, _ map[string]any, d string) bool {
		return c == 503 && strings.Contains(d, `bucket "late-bucket" does not exist`)
	})
	if err := srv.CreateBucket(context.Background(), "late-bucket"); err != nil {
		t.Fatal(err)
	}
	_, body, _ := h.waitReadyz("ready", func(c int, _ map[string]any, _ string) bool { return c == 200 })
	if body["mode"] != "conditional" {
		t.Fatalf("ready on MinIO in mode %v, want conditional", body["mode"])
	}
	h.waitLog("store ready again")
}

func TestRefusedCredentialsKeepHubUp(t *testing.T) {
	h := startHub(t, t.TempDir(), []string{"AWS_ACCESS_KEY_ID=intruder", "AWS_SECRET_ACCESS_KEY=notthepassword"},
		"--store", minio.URL(bucket, ""))
	_, _, detail := h.waitReadyz("refused credentials", func(c int, _ map[string]any, d string) bool { return c == 503 })
	if !strings.Contains(detail, "refused the credentials") {
		t.Fatalf("readyz detail %q does not name the credentials", detail)
	}
	if resp, err := http.Get(h.url + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("hub not alive with refused credentials: %v", err)
	}
}

func TestGarageModeIsReported(t *testing.T) {
	u := minio.URL(bucket, "garage-mode")
	if !s3server.Unconditional() {
		u = "unconditional+" + u
	}
	h := startHub(t, t.TempDir(), s3server.Env(), "--store", u)
	_, body, _ := h.waitReadyz("ready", func(c int, _ map[string]any, _ string) bool { return c == 200 })
	if body["mode"] != "last-writer-wins" {
		t.Fatalf("mode %v, want last-writer-wins", body["mode"])
	}
	h.waitLog("ignores conditional writes")
}

// TestBadStartupInputExitsWithOneLine: what needs a restart to fix (URL, config) makes `pulse serve` exit
// at once with one clear line and status 2, never a stack trace.
func TestBadStartupInputExitsWithOneLine(t *testing.T) {
	dir := t.TempDir()
	badCfg := filepath.Join(dir, "bad.toml")
	os.WriteFile(badCfg, []byte("addr = \"127.0.0.1:0\"\nstroe = \"file:x\"\n"), 0o600)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--store", "ftp://x"}, `unknown scheme "ftp"`},
		{[]string{"--store", "s3://"}, "no bucket"},
		{[]string{"--store", "s3://bkt?endpoint=127.0.0.1:9000"}, "must be an http:// or https:// URL"},
		{[]string{"--store", "s3://bkt?regoin=us"}, `unknown parameter "regoin"`},
		{[]string{"--store", "/var/lib/pulse"}, "no scheme"},
		{[]string{"--config", badCfg}, `unknown key "stroe" (line 2)`},
		{[]string{"--config", filepath.Join(dir, "missing.toml")}, "no such file"},
		{[]string{"--log-format", "xml"}, "want text or json"},
		{[]string{"--bogus"}, "flag provided but not defined: -bogus"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, pulseBin, append([]string{"serve"}, c.args...)...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "PULSE_ADDR="+freeAddr(t))
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			exit, ok := err.(*exec.ExitError)
			if !ok || exit.ExitCode() != 2 {
				t.Fatalf("exit: %v, want status 2; stderr:\n%s", err, stderr.String())
			}
			lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], c.want) || !strings.HasPrefix(lines[0], "pulse serve: ") {
				t.Fatalf("stderr %q; want one line starting \"pulse serve: \" containing %q", stderr.String(), c.want)
			}
		})
	}
}

func TestGracefulShutdown(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			h := startHub(t, t.TempDir(), nil)
			h.cmd.Process.Signal(sig)
			select {
			case err := <-h.done:
				h.done <- err
				if err != nil {
					t.Fatalf("exit after %s: %v\n%s", sig, err, h.logs)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("still running 15s after %s", sig)
			}
			sc := bufio.NewScanner(strings.NewReader(h.logs.String()))
			var last string
			for sc.Scan() {
				last = sc.Text()
			}
			if !strings.Contains(last, "pulse hub stopped") {
				t.Fatalf("last log line %q, want the stop message", last)
			}
		})
	}
}
