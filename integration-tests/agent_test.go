package integration

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/functions/store/s3"
	"github.com/pulsehq/pulse/integration-tests/s3server"
)

// agentConfig is the test agents' configuration: fast heartbeats and three exec commands whose side
// effects the tests can count (make_file creates a new file per run), measure (count_to prints a known
// byte stream) and outlive (nap).
const agentConfig = `
[agent]
heartbeat = "1s"

[exec.commands.make_file]
binary = "/usr/bin/mktemp"
args = ["{{template}}"]
timeout = "10s"
[exec.commands.make_file.params.template]
pattern = "/[a-zA-Z0-9/._-]*XXXXXX"
max_bytes = 512
required = true

[exec.commands.count_to]
binary = "/usr/bin/seq"
args = ["1", "{{n}}"]
timeout = "120s"
[exec.commands.count_to.params.n]
pattern = "[0-9]{1,8}"
required = true

[exec.commands.nap]
binary = "/usr/bin/sleep"
args = ["{{seconds}}"]
timeout = "600s"
[exec.commands.nap.params.seconds]
pattern = "[0-9]{1,4}"
required = true
`

// agentProc is a running pulse-agent.
type agentProc struct {
	t        testing.TB
	cmd      *exec.Cmd
	stateDir string
	logs     *syncBuffer
	done     chan error
}

func startAgent(t testing.TB, hubURL, stateDir, config string, args ...string) *agentProc {
	t.Helper()
	cfgPath := filepath.Join(t.TempDir(), "agent.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(agentBin, append([]string{"run", "--hub", hubURL, "--state-dir", stateDir, "--config", cfgPath}, args...)...)
	a := &agentProc{t: t, cmd: cmd, stateDir: stateDir, logs: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = a.logs, a.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.done <- cmd.Wait() }()
	t.Cleanup(func() {
		a.stop()
		if t.Failed() {
			t.Logf("agent %s log:\n%s", stateDir, a.logs)
		}
	})
	return a
}

// stop ends the agent gracefully (SIGTERM), killing it if it does not exit within 20s.
func (a *agentProc) stop() {
	select {
	case err := <-a.done:
		a.done <- err
		return
	default:
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-a.done:
		a.done <- err
	case <-time.After(20 * time.Second):
		a.cmd.Process.Kill()
		a.done <- <-a.done
	}
}

// id reads the agent id from its state directory.
func (a *agentProc) id() string {
	a.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(a.stateDir, "identity.json"))
		var ident struct {
			AgentID string `json:"agentId"`
		}
		if err == nil && json.Unmarshal(b, &ident) == nil && ident.AgentID != "" {
			return ident.AgentID
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("agent in %s never enrolled:\n%s", a.stateDir, a.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pulseCLI runs the pulse CLI against a hub and returns stdout, stderr and the exit code.
func pulseCLI(t testing.TB, hubURL, token string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return pulseCLIContext(ctx, t, hubURL, token, args...)
}

// pulseCLIContext is pulseCLI until ctx ends, when the command is killed (a --watch that never
// returns by itself): what it printed until then is returned, with exit code -1.
func pulseCLIContext(ctx context.Context, t testing.TB, hubURL, token string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.CommandContext(ctx, pulseBin, args...)
	cmd.Env = append(os.Environ(), "PULSE_HUB="+hubURL, "PULSE_TOKEN="+token)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

type agentList struct {
	Agents []struct {
		ID       string `json:"id"`
		Online   bool   `json:"online"`
		Disabled []struct {
			ID     string `json:"id"`
			Reason string `json:"reason"`
		} `json:"disabled"`
	} `json:"agents"`
}

func listAgents(t testing.TB, hubURL, token string) agentList {
	t.Helper()
	out, errOut, code := pulseCLI(t, hubURL, token, "agents", "--json")
	if code != 0 {
		t.Fatalf("pulse agents: %d %s", code, errOut)
	}
	var l agentList
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("pulse agents --json: %v\n%s", err, out)
	}
	return l
}

func waitFor(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// runJSON runs `pulse run ... --json` and decodes the status.
func runJSON(t *testing.T, hubURL, token string, args ...string) (commandStatus, string, int) {
	t.Helper()
	out, errOut, code := pulseCLI(t, hubURL, token, append([]string{"run"}, append(args, "--json")...)...)
	var st commandStatus
	json.Unmarshal([]byte(out), &st)
	return st, errOut, code
}

// processesMatching counts live processes whose command line is exactly argv.
func processesMatching(argv ...string) int {
	want := strings.Join(argv, "\x00") + "\x00"
	n := 0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && string(b) == want {
			n++
		}
	}
	return n
}

// scratch makes a directory with a plain path (subtest temp dirs carry commas that parameter patterns
// rightly refuse).
func scratch(t *testing.T, parent string) string {
	t.Helper()
	d, err := os.MkdirTemp(parent, "scratch")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestCoreLoopEndToEnd is the core loop with real processes: a dedicated MinIO, `pulse serve`, and
// pulse-agent processes, each with its own state directory.
func TestCoreLoopEndToEnd(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv, err := s3server.Start(ctx, s3server.MinIO, s3server.Options{Dir: filepath.Join(dir, "minio")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Stop() }()
	if err := srv.CreateBucket(ctx, "core"); err != nil {
		t.Fatal(err)
	}
	storeURL := srv.URL("core", "")
	token := initAt(t, dir, storeURL)
	hubArgs := []string{"--store", storeURL, "--poll-hold", "5s"}
	h := startHub(t, dir, s3server.Env(), hubArgs...)
	hubAddr := strings.TrimPrefix(h.url, "http://")

	tokOut, tokErr, code := pulseCLI(t, h.url, token, "enroll-token", "create", "--uses", "3", "--labels", "env=prod")
	if code != 0 {
		t.Fatalf("enroll-token create: %s", tokErr)
	}
	enrollToken := strings.TrimSpace(tokOut)
	var agents []*agentProc
	for i := range 3 {
		agents = append(agents, startAgent(t, h.url, filepath.Join(dir, fmt.Sprintf("agent-%d", i)), agentConfig, "--enroll-token", enrollToken))
		if s3server.Unconditional() {
			// Without conditional writes two enrollments at the same moment can claim one use slot
			// (docs/garage.md); one after another, the uses still count.
			agents[i].id()
		}
	}
	ids := make([]string, 3)
	for i, a := range agents {
		ids[i] = a.id()
	}

	t.Run("fourth use of the token is refused", func(t *testing.T) {
		a := startAgent(t, h.url, filepath.Join(dir, "agent-x"), agentConfig, "--enroll-token", enrollToken)
		select {
		case err := <-a.done:
			a.done <- err
			if err == nil || !strings.Contains(a.logs.String(), "used up") {
				t.Fatalf("fourth agent: exit %v, log:\n%s", err, a.logs)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("fourth agent still running:\n%s", a.logs)
		}
	})

	dbTok, _, _ := pulseCLI(t, h.url, token, "enroll-token", "create", "--labels", "role=db")
	db := startAgent(t, h.url, filepath.Join(dir, "agent-db"), agentConfig, "--enroll-token", strings.TrimSpace(dbTok))
	dbID := db.id()

	waitFor(t, "four agents online", 30*time.Second, func() bool {
		l := listAgents(t, h.url, token)
		online := 0
		for _, a := range l.Agents {
			if a.Online {
				online++
			}
		}
		return online == 4
	})

	t.Run("host_uptime on every prod agent", func(t *testing.T) {
		st, errOut, code := runJSON(t, h.url, token, "host_uptime", "--target", "env=prod", "--wait")
		if code != 0 || st.Counts["succeeded"] != 3 || len(st.Agents) != 3 {
			t.Fatalf("exit %d %s: %+v", code, errOut, st)
		}
	})

	t.Run("a label selector reaches only the matching agent", func(t *testing.T) {
		st, errOut, code := runJSON(t, h.url, token, "host_uptime", "--target", "role=db", "--wait")
		if code != 0 || len(st.Agents) != 1 || st.Agents[0].Agent != dbID || st.Agents[0].State != "succeeded" {
			t.Fatalf("exit %d %s: %+v", code, errOut, st)
		}
	})

	s3store, err := s3.New(s3.Config{Bucket: "core", Endpoint: srv.Endpoint, Region: "us-east-1", Creds: credentials.NewStaticV4(s3server.AccessKey, s3server.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	countCommands := func() int {
		n := 0
		store.Walk(ctx, s3store, "v1/commands/", "", 0, func(store.ObjectInfo) error { n++; return nil })
		return n
	}

	t.Run("refused before anything is enqueued", func(t *testing.T) {
		before := countCommands()
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"format_disk", "--target", "all"}, `no command "format_disk"`},
			{[]string{"count_to", "--param", "n=12; reboot", "--target", "all"}, "does not match"},
			{[]string{"count_to", "--target", "all"}, "n is required"},
		} {
			_, errOut, code := pulseCLI(t, h.url, token, append([]string{"run"}, c.args...)...)
			if code == 0 || !strings.Contains(errOut, c.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("pulse run %v: exit %d, stderr %q; want one line containing %q", c.args, code, errOut, c.want)
			}
		}
		if after := countCommands(); after != before {
			t.Fatalf("%d commands recorded by refused requests", after-before)
		}
	})

	t.Run("50 MiB of output arrives whole", func(t *testing.T) {
		const n = 6700000
		var want bytes.Buffer
		for i := 1; i <= n; i++ {
			want.WriteString(strconv.Itoa(i))
			want.WriteByte('\n')
		}
		if want.Len() < 50<<20 {
			t.Fatalf("test output only %d bytes", want.Len())
		}
		st, errOut, code := runJSON(t, h.url, token, "count_to", "--param", "n="+strconv.Itoa(n), "--target", ids[0], "--wait")
		if code != 0 {
			t.Fatalf("exit %d %s %+v", code, errOut, st)
		}
		got, errOut, code := pulseCLI(t, h.url, token, "output", st.ID, "--agent", ids[0])
		if code != 0 || len(got) != want.Len() || sha256.Sum256([]byte(got)) != sha256.Sum256(want.Bytes()) {
			t.Fatalf("output: exit %d (%s), %d bytes, want %d identical bytes", code, errOut, len(got), want.Len())
		}
	})

	t.Run("timeout kills the process group", func(t *testing.T) {
		st, _, _ := runJSON(t, h.url, token, "nap", "--param", "seconds=313", "--timeout", "2s", "--target", ids[1], "--wait")
		if len(st.Agents) != 1 || st.Agents[0].State != "timed_out" {
			t.Fatalf("%+v", st)
		}
		if n := processesMatching("/usr/bin/sleep", "313"); n != 0 {
			t.Fatalf("%d sleep processes survived the timeout", n)
		}
	})

	t.Run("cancel stops a running command", func(t *testing.T) {
		out, errOut, code := pulseCLI(t, h.url, token, "run", "nap", "--param", "seconds=317", "--target", ids[2])
		if code != 0 {
			t.Fatalf("run: %s", errOut)
		}
		id := strings.TrimSpace(out)
		waitFor(t, "nap running", 30*time.Second, func() bool { return processesMatching("/usr/bin/sleep", "317") == 1 })
		if _, errOut, code := pulseCLI(t, h.url, token, "cancel", id); code != 0 {
			t.Fatalf("cancel: %s", errOut)
		}
		st := waitDone(t, h, token, id)
		if st.Agents[0].State != "cancelled" {
			t.Fatalf("after cancel: %+v", st)
		}
		if n := processesMatching("/usr/bin/sleep", "317"); n != 0 {
			t.Fatalf("%d sleep processes survived the cancel", n)
		}
	})

	t.Run("forged, misdirected, replayed and expired envelopes never run", func(t *testing.T) {
		keys, err := hubkey.Load(filepath.Join(dir, hubkey.DefaultFile))
		if err != nil {
			t.Fatal(err)
		}
		ran, planted := scratch(t, dir), scratch(t, dir)
		target := ids[0]
		// The original: a real command that runs once.
		st, errOut, code := runJSON(t, h.url, token, "make_file", "--param", "template="+ran+"/run.XXXXXX", "--target", target, "--wait")
		if code != 0 || countFiles(t, ran) != 1 {
			t.Fatalf("original: exit %d %s, %d files", code, errOut, countFiles(t, ran))
		}
		body := func(cmdID string) []byte {
			b, _ := json.Marshal(wire.Command{CommandID: cmdID, Name: "make_file", Params: map[string]string{"template": planted + "/x.XXXXXX"}, TimeoutSeconds: 10})
			return b
		}
		now := time.Now().UTC()
		fresh := func(id, agent string) wire.Envelope {
			return wire.Envelope{ID: id, Agent: agent, IssuedAt: now, NotAfter: now.Add(time.Hour), Issuer: "mallory", Kind: wire.KindCommand, Body: body(id)}
		}
		_, evil, _ := ed25519.GenerateKey(rand.Reader)
		forged, _ := wire.Sign(fresh(uuid.NewString(), target), keys.CurrentID(), evil)
		misdirected, _ := keys.Sign(fresh(uuid.NewString(), ids[1]))
		replayEnv := fresh(st.ID, target) // the id the agent already ran
		replayEnv.Body, _ = json.Marshal(wire.Command{CommandID: st.ID, Name: "make_file", Params: map[string]string{"template": planted + "/r.XXXXXX"}, TimeoutSeconds: 10})
		replayed, _ := keys.Sign(replayEnv)
		old := fresh(uuid.NewString(), target)
		old.IssuedAt, old.NotAfter = now.Add(-2*time.Hour), now.Add(-time.Hour)
		expired, _ := keys.Sign(old)
		// Genuinely signed, but for a command outside the agent's whitelist and unknown to the hub: its
		// result is refused, so the rejection is the only trace.
		unlisted := fresh(uuid.NewString(), target)
		unlisted.Body, _ = json.Marshal(wire.Command{CommandID: unlisted.ID, Name: "format_disk", TimeoutSeconds: 10})
		notWhitelisted, _ := keys.Sign(unlisted)
		// Planted where the hub keeps deliveries, in the delivery format, addressed to the target. None
		// carries the hub's MAC, so the hub never offers one (the agent would refuse each anyway: that
		// side is TestRefusedEnvelopesNeverRun's); each shows in the integrity view instead.
		var plantedKeys []string
		for name, se := range map[string]wire.SignedEnvelope{"forged": forged, "misdirected": misdirected, "replayed": replayed, "expired": expired,
			"unlisted": notWhitelisted} {
			b, _ := json.Marshal(map[string]any{"ref": "plant-" + name, "notAfter": now.Add(time.Hour),
				"batches": []map[string]any{{"agents": []string{target}, "envelope": se}}})
			key := layout.Delivery(now.Add(time.Hour), "plant-"+name)
			if _, err := store.PutBytes(ctx, s3store, key, b, store.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			plantedKeys = append(plantedKeys, key)
		}
		// Another real command, so the hub resyncs and the agent polls meanwhile.
		runJSON(t, h.url, token, "host_uptime", "--target", target, "--wait")
		var integrity struct {
			ScanRefused []struct{ Key string } `json:"scanRefused"`
		}
		op(t, h, token, "GET", "/v1/integrity", nil, &integrity) // with a scan of the bucket
		refused := map[string]bool{}
		for _, o := range integrity.ScanRefused {
			refused[o.Key] = true
		}
		for _, k := range plantedKeys {
			if !refused[k] {
				t.Errorf("the integrity scan does not list the planted delivery %s (%+v)", k, integrity.ScanRefused)
			}
		}
		if n := countFiles(t, planted); n != 0 {
			t.Fatalf("%d planted envelopes ran", n)
		}
		if n := countFiles(t, ran); n != 1 {
			t.Fatalf("the original ran %d times", n)
		}
		for _, k := range plantedKeys { // leave the bucket clean for the subtests that follow
			s3store.Delete(ctx, k)
		}
	})

	parent := t
	t.Run("hub killed mid-flight: every command ends once", func(t *testing.T) {
		ran := scratch(t, dir)
		out, errOut, code := pulseCLI(t, h.url, token, "run", "make_file", "--param", "template="+ran+"/k.XXXXXX", "--target", "env=prod")
		if code != 0 {
			t.Fatalf("run: %s", errOut)
		}
		id := strings.TrimSpace(out)
		h.cmd.Process.Kill() // while agents wait and results upload
		<-h.done
		h.done <- nil
		time.Sleep(2 * time.Second)
		h2 := startHubAt(parent, dir, hubAddr, s3server.Env(), hubArgs...) // outlives this subtest
		st := waitDone(t, h2, token, id)
		if st.Counts["succeeded"] != 3 {
			t.Fatalf("after hub restart: %+v", st)
		}
		if n := countFiles(t, ran); n != 3 {
			t.Fatalf("make_file ran %d times on 3 agents", n)
		}
		h = h2
	})

	t.Run("store down for 30s mid-flight: every command ends once", func(t *testing.T) {
		ran := scratch(t, dir)
		out, errOut, code := pulseCLI(t, h.url, token, "run", "make_file", "--param", "template="+ran+"/s.XXXXXX", "--target", "env=prod")
		if code != 0 {
			t.Fatalf("run: %s", errOut)
		}
		id := strings.TrimSpace(out)
		srv.Stop()
		time.Sleep(30 * time.Second)
		srv2, err := s3server.Start(ctx, s3server.MinIO, s3server.Options{Port: srv.Port, Dir: srv.Dir})
		if err != nil {
			t.Fatal(err)
		}
		srv = srv2
		st := waitDone(t, h, token, id)
		if st.Counts["succeeded"] != 3 {
			t.Fatalf("after store outage: %+v", st)
		}
		if n := countFiles(t, ran); n != 3 {
			t.Fatalf("make_file ran %d times on 3 agents", n)
		}
	})

	t.Run("key rotation: agents follow the hub's new key", func(t *testing.T) {
		rot := exec.Command(pulseBin, "key", "rotate", "--json", "--store", storeURL) // the store gets the audit record
		rot.Dir, rot.Env = dir, append(os.Environ(), s3server.Env()...)
		if out, err := rot.CombinedOutput(); err != nil {
			t.Fatalf("pulse key rotate: %v\n%s", err, out)
		}
		h.cmd.Process.Signal(syscall.SIGTERM)
		<-h.done
		h.done <- nil
		h = startHubAt(parent, dir, hubAddr, s3server.Env(), hubArgs...)
		// The first command after the restart is signed with the new key; each agent adopts the
		// endorsed key set from the poll that carries it, before verifying the envelope.
		st, errOut, code := runJSON(t, h.url, token, "host_uptime", "--target", "env=prod", "--wait")
		if code != 0 || st.Counts["succeeded"] != 3 {
			t.Fatalf("after rotation: exit %d %s %+v", code, errOut, st)
		}
	})

	t.Run("restart from the state dir, and soft-disabled parts", func(t *testing.T) {
		agents[2].stop()
		broken := agentConfig + "\n[exec.commands.bad_cmd]\nbinary = \"relative/tool\"\n"
		agents[2] = startAgent(t, h.url, agents[2].stateDir, broken) // no token
		agents[1].stop()
		agents[1] = startAgent(t, h.url, agents[1].stateDir, "[agent]\nheartbeat = \"1s\"\nthis is not toml\n")
		waitFor(t, "disabled parts shown", 30*time.Second, func() bool {
			reasons := map[string]string{}
			for _, a := range listAgents(t, h.url, token).Agents {
				for _, d := range a.Disabled {
					reasons[a.ID+"/"+d.ID] = d.Reason
				}
			}
			return strings.Contains(reasons[ids[2]+"/exec"], "bad_cmd") && reasons[ids[1]+"/config"] != ""
		})
		st, errOut, code := runJSON(t, h.url, token, "host_uptime", "--target", ids[1], "--target", ids[2], "--wait")
		if code != 0 || st.Counts["succeeded"] != 2 {
			t.Fatalf("restarted agents: exit %d %s %+v", code, errOut, st)
		}
	})
}
