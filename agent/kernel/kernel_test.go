package kernel

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/state"
	"github.com/pulsehq/pulse/agent/wire"
)

type runningAgent struct {
	a    *Agent
	stop func()
}

func testConfig(t *testing.T, h *fakeHub, dir string) Config {
	return Config{
		Hub:           h.srv.URL,
		StateDir:      dir,
		EnrollToken:   "good-token",
		Heartbeat:     200 * time.Millisecond,
		Version:       "test",
		Facts:         func(context.Context) map[string]string { return map[string]string{"os": "testos"} },
		Logger:        slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
		RetryMin:      10 * time.Millisecond,
		RetryMax:      100 * time.Millisecond,
		OutputFlush:   100 * time.Millisecond,
		ShutdownGrace: 3 * time.Second,
		FirstHold:     time.Second,
	}
}

// startAgent builds and runs an agent; the returned stop shuts it down and waits (also at cleanup).
func startAgent(t *testing.T, cfg Config) *runningAgent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a, err := New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("agent did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return &runningAgent{a: a, stop: stop}
}

func lines(t *testing.T, path string) int {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "\n")
}

func TestEnrollPollRunAndUpload(t *testing.T) {
	h := newFakeHub(t)
	dir := t.TempDir()
	ra := startAgent(t, testConfig(t, h, dir))
	agentID := ra.a.ID()

	// Enrollment sent the key from the state directory, the catalog and the facts, and stored the identity.
	var enr wire.EnrollRequest
	h.with(func() { enr = h.enrolls[0] })
	st, err := os.ReadFile(filepath.Join(dir, state.IdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	var id state.Identity
	json.Unmarshal(st, &id)
	if id.AgentID != agentID || id.Labels["env"] != "test" || len(id.HubKeys) != 1 || id.Hub != h.srv.URL {
		t.Fatalf("stored identity %+v", id)
	}
	if len(enr.PublicKey) != ed25519.PublicKeySize || enr.Version != "test" || enr.Facts["os"] != "testos" || enr.Hostname == "" {
		t.Fatalf("enroll request %+v", enr)
	}
	if !slices.ContainsFunc(enr.Catalog, func(c wire.CommandSpec) bool { return c.Name == "test_kernel_touch" }) {
		t.Fatalf("catalog sent at enrollment lacks the test command: %+v", enr.Catalog)
	}

	target := filepath.Join(t.TempDir(), "touched")
	cmdID := h.send(agentID, "test_kernel_touch", map[string]string{"path": target})
	r := h.waitResult(cmdID)
	// A short command's output travels inline in its result: no chunk, and no running notice.
	if r.Status != wire.StatusSucceeded || r.OutputChunks != 0 || len(r.Output) == 0 || r.StartedAt.IsZero() || r.FinishedAt.Before(r.StartedAt) {
		t.Fatalf("result %+v", r)
	}
	h.with(func() {
		if ev := strings.Join(h.events[cmdID], ","); ev != "result" {
			t.Errorf("uploads %s, want the result alone", ev)
		}
	})
	if got := string(h.output(cmdID)); got != "touched "+target+"\n" {
		t.Fatalf("output %q", got)
	}
	if r.OutputBytes != int64(len(h.output(cmdID))) {
		t.Fatalf("result says %d bytes, hub has %d", r.OutputBytes, len(h.output(cmdID)))
	}
	if n := lines(t, target); n != 1 {
		t.Fatalf("command ran %d times", n)
	}
	h.with(func() {
		if ev := strings.Join(h.events[cmdID], ","); ev != "result" {
			t.Errorf("upload order %s", ev)
		}
	})
	// The envelope is acknowledged by a later poll, and heartbeats carry the catalog.
	eventually(t, 5*time.Second, func() bool {
		var ok bool
		h.with(func() { ok = len(h.acks) == 1 && len(h.inbox) == 0 })
		return ok
	}, "the acknowledgement")
	h.with(func() {
		if len(h.heartbeats) == 0 || len(h.heartbeats[0].Catalog) == 0 || h.heartbeats[0].Version != "test" {
			t.Errorf("heartbeats %+v", h.heartbeats)
		}
		if len(h.badSigs) > 0 {
			t.Errorf("the hub refused signatures: %v", h.badSigs)
		}
	})
	eventually(t, 5*time.Second, func() bool { return ra.a.st.Outbox().Len() == 0 }, "an empty outbox")
}

func TestRefusedEnvelopesNeverRun(t *testing.T) {
	h := newFakeHub(t)
	ra := startAgent(t, testConfig(t, h, t.TempDir()))
	agentID := ra.a.ID()
	tmp := t.TempDir()

	// A genuine command first, to replay it later.
	genuineFile := filepath.Join(tmp, "genuine")
	genuine := h.sign(h.envelope(agentID, "cmd-genuine", "test_kernel_touch", map[string]string{"path": genuineFile}))
	h.put(genuine)
	h.waitResult("cmd-genuine")

	_, otherKey, _ := ed25519.GenerateKey(nil)
	forged, _ := wire.Sign(h.envelope(agentID, "cmd-forged", "test_kernel_touch", map[string]string{"path": filepath.Join(tmp, "forged")}), h.keyID, otherKey)
	unknown, _ := wire.Sign(h.envelope(agentID, "cmd-unknown", "test_kernel_touch", map[string]string{"path": filepath.Join(tmp, "unknown")}), "ed25519:0000000000000000", otherKey)
	tampered := h.sign(h.envelope(agentID, "cmd-tampered", "test_kernel_touch", map[string]string{"path": filepath.Join(tmp, "tampered")}))
	tampered.Payload = bytes.Replace(tampered.Payload, []byte("tampered"), []byte("tampere2"), 1)
	other := h.sign(h.envelope("agent-someone-else", "cmd-other", "test_kernel_touch", map[string]string{"path": filepath.Join(tmp, "other")}))
	expiredEnv := h.envelope(agentID, "cmd-expired", "test_kernel_touch", map[string]string{"path": filepath.Join(tmp, "expired")})
	expiredEnv.IssuedAt, expiredEnv.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(-time.Minute)
	expired := h.sign(expiredEnv)
	futureEnv := h.envelope(agentID, "cmd-future", "test_kernel_touch", map[string]string{"path": filepath.Join(tmp, "future")})
	futureEnv.IssuedAt, futureEnv.NotAfter = time.Now().Add(time.Hour), time.Now().Add(2*time.Hour)
	future := h.sign(futureEnv)
	badParams := h.sign(h.envelope(agentID, "cmd-badparams", "test_kernel_touch", map[string]string{"path": "relative; rm -rf /"}))
	notInCatalog := h.sign(h.envelope(agentID, "cmd-nocat", "test_kernel_nope", nil))
	genuineEnv, _ := genuine.Verify(h.hubKeys())
	reusedEnv := h.envelope(agentID, "cmd-reused", "test_kernel_touch", map[string]string{"path": genuineFile})
	reusedEnv.ID = genuineEnv.ID
	reused := h.sign(reusedEnv)

	keys := map[string]string{
		"forged":   h.put(forged),
		"unknown":  h.put(unknown),
		"tampered": h.put(tampered),
		"other":    h.put(other),
		"replay":   h.put(reused), // another envelope under an id the agent accepted
	}
	again := h.put(genuine) // the same signed bytes offered again: acknowledged, never run twice
	h.put(expired)
	h.put(future)
	h.put(badParams)
	h.put(notInCatalog)

	eventually(t, 10*time.Second, func() bool {
		var n int
		h.with(func() { n = len(h.rejections) })
		_, e := h.result("cmd-expired")
		_, f := h.result("cmd-future")
		_, b := h.result("cmd-badparams")
		_, c := h.result("cmd-nocat")
		return n >= 9 && e && f && b && c
	}, "nine rejections and four rejected results")
	eventually(t, 10*time.Second, func() bool {
		var acked bool
		h.with(func() { acked = slices.Contains(h.acks, again) })
		return acked
	}, "the envelope offered again to be acknowledged")

	reasons := map[string]string{}
	h.with(func() {
		for _, r := range h.rejections {
			if r.EnvelopeKey == again {
				t.Errorf("the same envelope offered again was reported: %+v", r)
			}
			for name, key := range keys {
				if r.EnvelopeKey == key {
					reasons[name] = r.Reason
				}
			}
		}
	})
	for name, want := range map[string]string{
		"forged": "bad signature", "unknown": "unknown hub key", "tampered": "bad signature",
		"other": "addressed to another agent", "replay": "replay",
	} {
		if !strings.Contains(reasons[name], want) {
			t.Errorf("%s envelope: rejection reason %q, want it to mention %q", name, reasons[name], want)
		}
	}
	// Refusals of genuine, current envelopes (whitelist, parameters, time) are rejections too, under the
	// command's id, besides the rejected result: the hub refuses a result for a command it does not know.
	byCommand := map[string]string{}
	h.with(func() {
		for _, r := range h.rejections {
			if r.CommandID != "" && r.EnvelopeKey != "" {
				byCommand[r.CommandID] = r.Reason
			}
		}
	})
	for cmd, want := range map[string]string{
		"cmd-expired": "expired", "cmd-future": "issued in the future",
		"cmd-badparams": "does not match", "cmd-nocat": "not in this agent's catalog",
	} {
		if !strings.Contains(byCommand[cmd], want) {
			t.Errorf("%s: rejection reason %q, want a rejection mentioning %q", cmd, byCommand[cmd], want)
		}
		r, _ := h.result(cmd)
		if r.Status != wire.StatusRejected || !strings.Contains(r.Reason, want) {
			t.Errorf("%s: result %s %q, want rejected mentioning %q", cmd, r.Status, r.Reason, want)
		}
		h.with(func() {
			if _, ran := h.running[cmd]; ran {
				t.Errorf("%s: a running notice was sent for a rejected command", cmd)
			}
		})
	}
	// The side effects prove it: only the genuine command ran, once.
	if n := lines(t, genuineFile); n != 1 {
		t.Errorf("genuine command ran %d times, want 1 (replay ran it again?)", n)
	}
	for _, f := range []string{"forged", "unknown", "tampered", "other", "expired", "future"} {
		if _, err := os.Stat(filepath.Join(tmp, f)); err == nil {
			t.Errorf("the %s envelope ran", f)
		}
	}
	// Every envelope, accepted or refused, is acknowledged.
	eventually(t, 5*time.Second, func() bool {
		var n int
		h.with(func() { n = len(h.inbox) })
		return n == 0
	}, "every envelope acknowledged")
}

func TestLargeOutputArrivesCompleteAndInOrder(t *testing.T) {
	h := newFakeHub(t)
	ra := startAgent(t, testConfig(t, h, t.TempDir()))
	size := 3*wire.MaxChunkBytes + wire.MaxChunkBytes/2 + 17
	cmdID := h.send(ra.a.ID(), "test_kernel_emit", map[string]string{"bytes": itoa(size)})
	r := h.waitResult(cmdID)
	if r.Status != wire.StatusSucceeded {
		t.Fatalf("result %+v", r)
	}
	got := h.output(cmdID)
	if !bytes.Equal(got, pattern(size)) {
		t.Fatalf("output: %d bytes, want %d identical bytes", len(got), size)
	}
	if r.OutputBytes != int64(size) || r.OutputChunks < 4 {
		t.Fatalf("result counts %d bytes in %d chunks", r.OutputBytes, r.OutputChunks)
	}
	h.with(func() {
		if len(h.chunks[cmdID]) != r.OutputChunks {
			t.Errorf("hub has %d chunks, result says %d", len(h.chunks[cmdID]), r.OutputChunks)
		}
		for seq, c := range h.chunks[cmdID] {
			if len(c) > wire.MaxChunkBytes || len(c) == 0 {
				t.Errorf("chunk %d is %d bytes", seq, len(c))
			}
		}
		ev := h.events[cmdID]
		var want []string // done within RunningAfter: no running notice
		for i := range r.OutputChunks {
			want = append(want, "output/"+itoa(i))
		}
		want = append(want, "result")
		if !slices.Equal(ev, want) {
			t.Errorf("arrival order %v, want %v", ev, want)
		}
	})
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestHubOutageLosesNothing(t *testing.T) {
	h := newFakeHub(t)
	dir := t.TempDir()
	ra := startAgent(t, testConfig(t, h, dir))
	agentID := ra.a.ID()
	h.with(func() { h.failUpload = true })
	target := filepath.Join(t.TempDir(), "f")
	cmdID := h.send(agentID, "test_kernel_touch", map[string]string{"path": target})
	eventually(t, 5*time.Second, func() bool { return lines(t, target) == 1 }, "the command to run")
	eventually(t, 5*time.Second, func() bool {
		var n int
		h.with(func() { n = h.refused })
		return n >= 5
	}, "uploads refused with 503")
	if _, ok := h.result(cmdID); ok {
		t.Fatal("result stored while the hub refused it")
	}
	if ra.a.st.Outbox().Len() == 0 {
		t.Fatal("nothing waits in the outbox during the outage")
	}
	h.with(func() { h.failUpload = false })
	r := h.waitResult(cmdID)
	if r.Status != wire.StatusSucceeded || string(h.output(cmdID)) != "touched "+target+"\n" {
		t.Fatalf("after recovery: %+v output %q", r, h.output(cmdID))
	}
	h.with(func() {
		if ev := strings.Join(h.events[cmdID], ","); ev != "result" {
			t.Errorf("upload order after outage %s", ev)
		}
	})
	eventually(t, 5*time.Second, func() bool { return ra.a.st.Outbox().Len() == 0 }, "the outbox to drain")
	if n := lines(t, target); n != 1 {
		t.Fatalf("command ran %d times", n)
	}
}

func TestRestartReusesIdentityAndOutbox(t *testing.T) {
	h := newFakeHub(t)
	dir := t.TempDir()
	ra := startAgent(t, testConfig(t, h, dir))
	agentID := ra.a.ID()

	// The whole hub fails after the command is delivered; the agent stops with its result unsent.
	h.with(func() { h.failUpload = true })
	target := filepath.Join(t.TempDir(), "f")
	cmdID := h.send(agentID, "test_kernel_touch", map[string]string{"path": target})
	eventually(t, 5*time.Second, func() bool { return lines(t, target) == 1 }, "the command to run")
	eventually(t, 5*time.Second, func() bool {
		var n int
		h.with(func() { n = len(h.acks) })
		return n == 1
	}, "the acknowledgement")
	h.with(func() { h.failAll = true })
	ra.stop()
	if _, ok := h.result(cmdID); ok {
		t.Fatal("result stored while the hub refused it")
	}
	ob, _ := os.ReadDir(filepath.Join(dir, "outbox"))
	if len(ob) < 1 { // the result, its output inline (+ parked/)
		t.Fatalf("outbox after shutdown: %d entries", len(ob))
	}

	// Restart without a token: same identity, and the leftovers are uploaded.
	h.with(func() { h.failAll, h.failUpload = false, false })
	cfg := testConfig(t, h, dir)
	cfg.EnrollToken = ""
	ra2 := startAgent(t, cfg)
	if ra2.a.ID() != agentID {
		t.Fatalf("restart changed the agent id: %s -> %s", agentID, ra2.a.ID())
	}
	r := h.waitResult(cmdID)
	if r.Status != wire.StatusSucceeded || string(h.output(cmdID)) != "touched "+target+"\n" {
		t.Fatalf("result after restart %+v", r)
	}
	ra2.stop()

	// A token given again is ignored: no second enrollment.
	cfg = testConfig(t, h, dir)
	ra3 := startAgent(t, cfg)
	if ra3.a.ID() != agentID {
		t.Fatal("a second token re-enrolled the agent")
	}
	h.with(func() {
		if len(h.enrolls) != 1 {
			t.Errorf("%d enrollments, want 1", len(h.enrolls))
		}
	})
	if n := lines(t, target); n != 1 {
		t.Fatalf("command ran %d times across restarts", n)
	}
}

func TestCancelStopsRunningCommand(t *testing.T) {
	h := newFakeHub(t)
	ra := startAgent(t, testConfig(t, h, t.TempDir()))
	agentID := ra.a.ID()
	cmdID := h.send(agentID, "test_kernel_block", nil)
	// Live output: the first line arrives while the command still runs.
	eventually(t, 5*time.Second, func() bool { return string(h.output(cmdID)) == "started\n" }, "live output")
	if _, ok := h.result(cmdID); ok {
		t.Fatal("blocking command already has a result")
	}
	// Still running after RunningAfter: the agent says so.
	eventually(t, 5*time.Second, func() bool {
		var ok bool
		h.with(func() { _, ok = h.running[cmdID] })
		return ok
	}, "the running notice of a command still running after a second")
	body, _ := json.Marshal(wire.Cancel{CommandID: cmdID})
	now := time.Now()
	h.put(h.sign(wire.Envelope{ID: "cancel-1", Agent: agentID, IssuedAt: now, NotAfter: now.Add(time.Minute),
		Issuer: "bob", Kind: wire.KindCancel, Body: body}))
	r := h.waitResult(cmdID)
	if r.Status != wire.StatusCancelled || !strings.Contains(r.Reason, "bob") {
		t.Fatalf("result %+v, want cancelled by bob", r)
	}
	if r.OutputChunks != 1 || r.OutputBytes != int64(len("started\n")) {
		t.Fatalf("output counts %+v", r)
	}

	// A cancel that overtakes its command makes the command end cancelled without running.
	body, _ = json.Marshal(wire.Cancel{CommandID: "cmd-early"})
	h.put(h.sign(wire.Envelope{ID: "cancel-2", Agent: agentID, IssuedAt: now, NotAfter: now.Add(time.Minute),
		Issuer: "bob", Kind: wire.KindCancel, Body: body}))
	eventually(t, 5*time.Second, func() bool {
		var n int
		h.with(func() { n = len(h.inbox) })
		return n == 0
	}, "the cancel to be acknowledged")
	target := filepath.Join(t.TempDir(), "early")
	h.put(h.sign(h.envelope(agentID, "cmd-early", "test_kernel_touch", map[string]string{"path": target})))
	r = h.waitResult("cmd-early")
	if r.Status != wire.StatusCancelled || lines(t, target) != 0 {
		t.Fatalf("early-cancelled command: %+v, ran %d times", r, lines(t, target))
	}
}

func TestShutdownCancelsAndFlushes(t *testing.T) {
	h := newFakeHub(t)
	ra := startAgent(t, testConfig(t, h, t.TempDir()))
	cmdID := h.send(ra.a.ID(), "test_kernel_block", nil)
	eventually(t, 5*time.Second, func() bool { return len(h.output(cmdID)) > 0 }, "the command to start")
	ra.stop()
	r, ok := h.result(cmdID)
	if !ok || r.Status != wire.StatusCancelled || !strings.Contains(r.Reason, "shutting down") {
		t.Fatalf("after shutdown: result %+v (stored %v)", r, ok)
	}
}

func TestUnfinishedCommandReportedAfterCrash(t *testing.T) {
	h := newFakeHub(t)
	dir := t.TempDir()
	ra := startAgent(t, testConfig(t, h, dir))
	ra.stop()
	// Simulate a crash mid-command: the job marker was left behind.
	st, err := state.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	st.SaveJob(state.Job{CommandID: "cmd-crashed", EnvelopeID: "env-crashed", StartedAt: time.Now().Add(-time.Minute), OutputChunks: 2, OutputBytes: 10})
	st.Close()
	startAgent(t, testConfig(t, h, dir))
	r := h.waitResult("cmd-crashed")
	if r.Status != wire.StatusFailed || !strings.Contains(r.Reason, "stopped while the command was running") || r.OutputChunks != 2 {
		t.Fatalf("result %+v", r)
	}
}

func TestHubKeyRotation(t *testing.T) {
	h := newFakeHub(t)
	dir := t.TempDir()
	ra := startAgent(t, testConfig(t, h, dir))
	_, newPriv, _ := ed25519.GenerateKey(nil)
	newID := wire.KeyIDFor(newPriv.Public().(ed25519.PublicKey))
	target := filepath.Join(t.TempDir(), "f")

	// A key set endorsed only by keys the agent does not trust (a man in the middle) is ignored, and
	// envelopes signed with the offered key are refused.
	_, strangerPriv, _ := ed25519.GenerateKey(nil)
	h.with(func() {
		h.extraKeys = []wire.HubKey{{KeyID: newID, PublicKey: newPriv.Public().(ed25519.PublicKey)}}
		h.endorsers = []ed25519.PrivateKey{newPriv, strangerPriv}
	})
	se, _ := wire.Sign(h.envelope(ra.a.ID(), "cmd-sneaky", "test_kernel_touch", map[string]string{"path": target}), newID, newPriv)
	h.put(se)
	eventually(t, 5*time.Second, func() bool {
		var n int
		h.with(func() { n = len(h.rejections) })
		return n == 1
	}, "the envelope signed with an unendorsed key to be rejected")
	if id, _ := readIdentity(dir); len(id.HubKeys) != 1 || lines(t, target) != 0 {
		t.Fatalf("unendorsed key set adopted: %+v", id.HubKeys)
	}

	// Endorsed by the current key: adopted, stored, and envelopes signed with the new key run.
	h.with(func() { h.endorsers = []ed25519.PrivateKey{h.priv, newPriv} })
	eventually(t, 5*time.Second, func() bool {
		id, err := readIdentity(dir)
		return err == nil && len(id.HubKeys) == 2
	}, "the rotated keys to be stored")
	se, _ = wire.Sign(h.envelope(ra.a.ID(), "cmd-newkey", "test_kernel_touch", map[string]string{"path": target}), newID, newPriv)
	h.put(se)
	if r := h.waitResult("cmd-newkey"); r.Status != wire.StatusSucceeded || lines(t, target) != 1 {
		t.Fatalf("envelope signed with the new key: %+v", r)
	}
}

func readIdentity(dir string) (state.Identity, error) {
	var id state.Identity
	data, err := os.ReadFile(filepath.Join(dir, state.IdentityFile))
	if err != nil {
		return id, err
	}
	return id, json.Unmarshal(data, &id)
}

func TestFatalStartErrors(t *testing.T) {
	h := newFakeHub(t)
	ctx := context.Background()

	cfg := testConfig(t, h, t.TempDir())
	cfg.EnrollToken = ""
	if _, err := New(ctx, cfg); err == nil || !strings.Contains(err.Error(), "--enroll-token") {
		t.Errorf("no identity, no token: %v", err)
	}
	cfg = testConfig(t, h, t.TempDir())
	cfg.Hub = ""
	if _, err := New(ctx, cfg); err == nil || !strings.Contains(err.Error(), "no hub URL") {
		t.Errorf("no hub: %v", err)
	}
	cfg = testConfig(t, h, t.TempDir())
	cfg.EnrollToken = "stolen"
	if _, err := New(ctx, cfg); err == nil || !strings.Contains(err.Error(), "enrollment refused") || !strings.Contains(err.Error(), "unknown or expired") {
		t.Errorf("bad token: %v", err)
	}
	dir := t.TempDir()
	cfg = testConfig(t, h, dir)
	a, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.st.Close()
	os.Chmod(filepath.Join(dir, state.KeyFile), 0o640)
	if _, err := New(ctx, cfg); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("group-readable key: %v", err)
	}
}

func TestEnrollmentRetriesWhileHubIsDown(t *testing.T) {
	h := newFakeHub(t)
	cfg := testConfig(t, h, t.TempDir())
	cfg.Hub = "http://127.0.0.1:1" // nothing listens: New keeps retrying until its context ends
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := New(ctx, cfg); err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("unreachable hub: %v", err)
	}
}

func TestConfigProblemsReportedAsPseudoIntegration(t *testing.T) {
	h := newFakeHub(t)
	cfg := testConfig(t, h, t.TempDir())
	parsed := ParseConfig([]byte("[agent]\nheartbeat = \"soon\"\n[nosuchintegration]\nx = 1\n"))
	cfg.Problems = parsed.Problems
	cfg.Integrations = parsed.Integrations
	startAgent(t, cfg)
	eventually(t, 5*time.Second, func() bool {
		var n int
		h.with(func() { n = len(h.heartbeats) })
		return n > 0
	}, "a heartbeat")
	var hb wire.Heartbeat
	h.with(func() { hb = h.heartbeats[0] })
	i := slices.IndexFunc(hb.Integrations, func(s wire.IntegrationStatus) bool { return s.ID == ConfigStatusID })
	if i < 0 {
		t.Fatalf("no config status in %+v", hb.Integrations)
	}
	st := hb.Integrations[i]
	if st.Enabled || !strings.Contains(st.Reason, "heartbeat") || !strings.Contains(st.Reason, "nosuchintegration") {
		t.Fatalf("config status %+v", st)
	}
}

func TestParseConfig(t *testing.T) {
	c := ParseConfig([]byte(`
[agent]
hub = "https://hub.example"
state_dir = "/tmp/x"
heartbeat = "10s"
log_level = "debug"

[exec.commands.df]
binary = "/bin/df"
`))
	if len(c.Problems) != 0 || c.Hub != "https://hub.example" || c.StateDir != "/tmp/x" || c.Heartbeat != 10*time.Second || c.LogLevel != "debug" {
		t.Fatalf("good config: %+v", c)
	}
	if _, ok := c.Integrations["exec"].(map[string]any); !ok || c.Integrations["agent"] != nil {
		t.Fatalf("integration tables %+v", c.Integrations)
	}

	c = ParseConfig([]byte("[agent]\nhub = \"https://hub.example\"\nheartbeat = 5\nlog_level = \"loud\"\ncolour = \"blue\"\n"))
	if c.Hub != "https://hub.example" || len(c.Problems) != 3 {
		t.Fatalf("bad values must cost only themselves: %+v", c)
	}
	for _, tc := range []struct {
		value   string
		want    time.Duration
		problem string
	}{
		{`"90s"`, 90 * time.Second, ""},
		{`"500ms"`, 0, "at least a second"},
		{`"soon"`, 0, "at least a second"},
		{`60`, 0, "want a string"},
	} {
		c := ParseConfig([]byte("[agent]\nplan_period = " + tc.value + "\n"))
		if c.PlanPeriod != tc.want || (tc.problem == "") != (len(c.Problems) == 0) || (tc.problem != "" && !strings.Contains(c.Problems[0], tc.problem)) {
			t.Errorf("plan_period = %s: period %v, problems %v", tc.value, c.PlanPeriod, c.Problems)
		}
	}
	c = ParseConfig([]byte("[agent]\nhub = \"ftp://x\"\n"))
	if c.Hub != "" || len(c.Problems) != 1 {
		t.Fatalf("bad hub URL: %+v", c)
	}
	c = ParseConfig([]byte("[agent\nhub = 1"))
	if len(c.Problems) != 1 || !strings.Contains(c.Problems[0], "syntax error") || !strings.Contains(c.Problems[0], "line 1") {
		t.Fatalf("syntax error: %+v", c.Problems)
	}
	c = LoadConfig(filepath.Join(t.TempDir(), "missing.toml"), false)
	if len(c.Problems) != 0 {
		t.Fatalf("missing default config is fine: %v", c.Problems)
	}
	c = LoadConfig(filepath.Join(t.TempDir(), "missing.toml"), true)
	if len(c.Problems) != 1 {
		t.Fatalf("missing explicit config is a problem: %v", c.Problems)
	}
}

func TestBackoffFullJitter(t *testing.T) {
	b := backoff{min: time.Second, max: time.Minute}
	for i := range 20 {
		d := b.next()
		ceil := min(time.Minute, time.Second<<i)
		if d <= 0 || d > ceil+time.Millisecond {
			t.Fatalf("attempt %d: %s outside (0, %s]", i, d, ceil)
		}
	}
	b.reset()
	if d := b.next(); d > time.Second+time.Millisecond {
		t.Fatalf("after reset: %s", d)
	}
}

func TestRedeliveryBeforeAckIsNotAReplay(t *testing.T) {
	h := newFakeHub(t)
	ra := startAgent(t, testConfig(t, h, t.TempDir()))
	target := filepath.Join(t.TempDir(), "f")
	se := h.sign(h.envelope(ra.a.ID(), "cmd-twice", "test_kernel_touch", map[string]string{"path": target}))
	se.InboxKey = "inbox/not-yet-acked"
	// Hold the acknowledgement back (as if the poll carrying it were still in flight) and deliver twice.
	ra.a.handle(se)
	ra.a.handle(se)
	if r := h.waitResult("cmd-twice"); r.Status != wire.StatusSucceeded {
		t.Fatalf("result %+v", r)
	}
	h.with(func() {
		if len(h.rejections) != 0 {
			t.Errorf("a redelivery of an unacknowledged envelope was reported as a replay: %+v", h.rejections)
		}
	})
	if n := lines(t, target); n != 1 {
		t.Fatalf("ran %d times", n)
	}
}

func TestReportTheHubRefusesIsParkedNotBlocking(t *testing.T) {
	h := newFakeHub(t)
	dir := t.TempDir()
	ra := startAgent(t, testConfig(t, h, dir))
	ra.stop()
	// A command the hub no longer knows left a marker; its result will get a 404.
	st, err := state.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	st.SaveJob(state.Job{CommandID: "cmd-gone", EnvelopeID: "env-gone", StartedAt: time.Now()})
	st.Close()
	h.with(func() { h.gone = map[string]bool{"cmd-gone": true} })

	ra = startAgent(t, testConfig(t, h, dir))
	cmdID := h.send(ra.a.ID(), "test_kernel_touch", map[string]string{"path": filepath.Join(t.TempDir(), "f")})
	if r := h.waitResult(cmdID); r.Status != wire.StatusSucceeded {
		t.Fatalf("result behind a refused one: %+v", r)
	}
	parked, _ := os.ReadDir(filepath.Join(dir, "outbox", "parked"))
	if len(parked) != 1 {
		t.Fatalf("%d parked items, want the refused result kept on disk", len(parked))
	}
}

// TestUnchangedHeartbeatsWaitForLiveness: an idle agent looks for changes every Heartbeat interval but
// sends an unchanged heartbeat only every Liveness interval; a change (the hatch opening) goes at once.
func TestUnchangedHeartbeatsWaitForLiveness(t *testing.T) {
	h := newFakeHub(t)
	dir := t.TempDir()
	cfg := testConfig(t, h, dir)
	cfg.Heartbeat, cfg.Liveness = 20*time.Millisecond, time.Hour
	startAgent(t, cfg)
	count := func() (n int) { h.with(func() { n = len(h.heartbeats) }); return n }
	eventually(t, 5*time.Second, func() bool { return count() >= 1 }, "the first heartbeat")
	time.Sleep(300 * time.Millisecond) // fifteen looks, nothing changed
	if n := count(); n != 1 {
		t.Fatalf("%d heartbeats while nothing changed, want 1", n)
	}
	if _, err := OpenHatch(dir, time.Minute, "test"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return count() >= 2 }, "a heartbeat saying the hatch opened")
	h.with(func() {
		if last := h.heartbeats[len(h.heartbeats)-1]; last.Hatch == nil || !last.Hatch.Open {
			t.Errorf("the heartbeat after the change: %+v", last.Hatch)
		}
	})
}

// TestRestartBeforeAcknowledgement: acknowledgements live in memory, so an agent that restarts after
// running a command and before its acknowledgement reached the hub is offered the envelope again. It
// acknowledges it and runs nothing twice: its replay record knows the envelope.
func TestRestartBeforeAcknowledgement(t *testing.T) {
	h := newFakeHub(t)
	dir := t.TempDir()
	ra := startAgent(t, testConfig(t, h, dir))
	agentID := ra.a.ID()
	ran := filepath.Join(t.TempDir(), "ran")
	h.with(func() { h.failAcks = true })
	key := h.put(h.sign(h.envelope(agentID, "cmd-once", "test_kernel_touch", map[string]string{"path": ran})))
	h.waitResult("cmd-once")
	eventually(t, 10*time.Second, func() bool {
		var refused int
		h.with(func() { refused = h.refused })
		return refused > 0
	}, "a poll carrying the acknowledgement")
	ra.stop()

	h.with(func() { h.failAcks = false })
	startAgent(t, testConfig(t, h, dir))
	eventually(t, 10*time.Second, func() bool {
		var acked bool
		h.with(func() { acked = slices.Contains(h.acks, key) })
		return acked
	}, "the envelope offered again after the restart to be acknowledged")
	if n := lines(t, ran); n != 1 {
		t.Errorf("the command ran %d times, want once", n)
	}
	h.with(func() {
		for _, r := range h.rejections {
			if r.EnvelopeKey == key {
				t.Errorf("the envelope offered again was reported: %+v", r)
			}
		}
	})
}
