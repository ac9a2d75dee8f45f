package state

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
)

func open(t *testing.T, dir string) *State {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestDirectoryModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s := open(t, dir)
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %04o, want 0700", fi.Mode().Perm())
	}
	if err := s.SaveIdentity(Identity{AgentID: "a1"}); err != nil {
		t.Fatal(err)
	}
	fi, err = os.Stat(filepath.Join(dir, IdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("identity mode %04o, want 0600", fi.Mode().Perm())
	}
}

func TestSecondOpenRefused(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open on a locked dir: %v, want 'in use'", err)
	}
	s.Close()
	s2 := open(t, dir)
	s2.Close()
}

func TestKeyGeneratedOnceAndReused(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	k1, err := s.Key()
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) != ed25519.PrivateKeySize {
		t.Fatalf("key is %d bytes", len(k1))
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %04o, want 0600", fi.Mode().Perm())
	}
	pem, _ := os.ReadFile(filepath.Join(dir, KeyFile))
	if !bytes.HasPrefix(pem, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Errorf("key file is not PEM PKCS#8:\n%s", pem)
	}
	s.Close()

	s2 := open(t, dir)
	k2, err := s2.Key()
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equal(k2) {
		t.Fatal("a restart generated a new key; the agent would lose its identity")
	}
}

func TestKeyWithLooseModeRefused(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if _, err := s.Key(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, KeyFile)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := s.Key()
	if !errors.Is(err, ErrKeyPermissions) {
		t.Fatalf("0644 key: err = %v, want ErrKeyPermissions", err)
	}
	if !strings.Contains(err.Error(), "chmod 600") || !strings.Contains(err.Error(), "0644") {
		t.Errorf("error does not tell the operator what to do: %v", err)
	}
	// The key was not replaced behind the operator's back.
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode changed to %04o", fi.Mode().Perm())
	}
}

func TestIdentityRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if _, err := s.Identity(); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("fresh dir: %v, want ErrNoIdentity", err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	want := Identity{
		AgentID:    "agent-1",
		Hub:        "https://hub.example",
		HubKeys:    []wire.HubKey{{KeyID: wire.KeyIDFor(pub), PublicKey: pub}},
		Labels:     map[string]string{"env": "prod"},
		EnrolledAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	if err := s.SaveIdentity(want); err != nil {
		t.Fatal(err)
	}
	s.Close()
	got, err := open(t, dir).Identity()
	if err != nil {
		t.Fatal(err)
	}
	if got.AgentID != want.AgentID || got.Hub != want.Hub || !got.EnrolledAt.Equal(want.EnrolledAt) ||
		got.Labels["env"] != "prod" || !SameKeys(got.HubKeys, want.HubKeys) {
		t.Fatalf("round trip: got %+v, want %+v", got, want)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".tmp-*"))
	if len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

func TestCorruptIdentityIsAnError(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	os.WriteFile(filepath.Join(dir, IdentityFile), []byte("{not json"), 0o600)
	if _, err := s.Identity(); err == nil || errors.Is(err, ErrNoIdentity) || !strings.Contains(err.Error(), "enroll again") {
		t.Fatalf("corrupt identity: %v", err)
	}
}

func TestReplaySeenRecordPurge(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	now := time.Now()
	seen := func(id string) bool { _, ok := s.Seen(id); return ok }
	if seen("e1") {
		t.Fatal("fresh state has seen e1")
	}
	if err := s.Record("e1", now.Add(time.Minute), "d1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Record("../../evil/../id", now.Add(-time.Minute), ""); err != nil {
		t.Fatal(err)
	}
	if !seen("e1") || !seen("../../evil/../id") {
		t.Fatal("recorded ids not seen")
	}
	s.Close()
	s = open(t, dir) // the record survives a restart, digest included
	if d, ok := s.Seen("e1"); !ok || d != "d1" {
		t.Fatalf("replay record after a restart: seen=%v digest=%q, want the digest d1", ok, d)
	}
	n, err := s.PurgeReplay(now)
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || seen("../../evil/../id") || !seen("e1") {
		t.Fatalf("purge removed %d; expired seen=%v, live seen=%v", n, seen("../../evil/../id"), seen("e1"))
	}
	if n, _ := s.PurgeReplay(now.Add(2 * time.Minute)); n != 1 || seen("e1") {
		t.Fatalf("second purge removed %d", n)
	}
	// An unreadable record counts as seen, with no digest: the envelope is refused, never run twice.
	os.WriteFile(filepath.Join(dir, replayDir, hashName("e2")), []byte("{garbage"), 0o600)
	if d, ok := s.Seen("e2"); !ok || d != "" {
		t.Fatalf("unreadable record: seen=%v digest=%q", ok, d)
	}
}

func TestOutboxSurvivesRestartAndDeletesOnlyOnSuccess(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ob := s.Outbox()
	chunk := bytes.Repeat([]byte{0, '\n', 0xff}, 1000)
	for i, it := range []Item{
		{Kind: "running", CommandID: "c1", Method: "POST", Path: "commands/c1/running", ContentType: "application/json", Body: []byte(`{}`)},
		{Kind: "output", CommandID: "c1", Method: "PUT", Path: "commands/c1/output/0", ContentType: "application/octet-stream", Body: chunk},
		{Kind: "result", CommandID: "c1", Method: "POST", Path: "results", ContentType: "application/json", Body: []byte(`{"status":"succeeded"}`)},
	} {
		if _, err := ob.Put(it); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	s.Close()

	// "Restart": a new State on the same directory sees everything, in order.
	s = open(t, dir)
	ob = s.Outbox()
	names, err := ob.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 3 {
		t.Fatalf("after restart %d items, want 3", len(names))
	}
	var kinds []string
	for _, n := range names {
		it, err := ob.Read(n)
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, it.Kind)
		if it.Kind == "output" && !bytes.Equal(it.Body, chunk) {
			t.Error("chunk body changed on disk")
		}
	}
	if strings.Join(kinds, ",") != "running,output,result" {
		t.Fatalf("order %v", kinds)
	}
	// A new item after restart sorts after the old ones.
	if _, err := ob.Put(Item{Kind: "rejection", Method: "POST", Path: "rejections", Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	names, _ = ob.List()
	if it, _ := ob.Read(names[len(names)-1]); it.Kind != "rejection" {
		t.Fatalf("item put after restart is not last: %v", it.Kind)
	}
	// Only an explicit Delete (after the hub confirmed) removes an item.
	if err := ob.Delete(names[0]); err != nil {
		t.Fatal(err)
	}
	if err := ob.Park(names[1]); err != nil {
		t.Fatal(err)
	}
	if ob.Len() != 2 {
		t.Fatalf("len %d after delete+park, want 2", ob.Len())
	}
	if _, err := os.Stat(filepath.Join(dir, "outbox", "parked", names[1])); err != nil {
		t.Errorf("parked item not kept for the operator: %v", err)
	}
}

func TestJobsMarkers(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	t0 := time.Now().UTC()
	s.SaveJob(Job{CommandID: "c2", EnvelopeID: "e2", StartedAt: t0.Add(time.Second)})
	s.SaveJob(Job{CommandID: "c1", EnvelopeID: "e1", StartedAt: t0})
	s.SaveJob(Job{CommandID: "c1", EnvelopeID: "e1", StartedAt: t0, OutputChunks: 3, OutputBytes: 10})
	s.Close()
	s = open(t, dir)
	jobs, err := s.Jobs()
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || jobs[0].CommandID != "c1" || jobs[0].OutputChunks != 3 {
		t.Fatalf("jobs %+v", jobs)
	}
	s.EndJob("c1")
	s.EndJob("c1")
	if jobs, _ := s.Jobs(); len(jobs) != 1 {
		t.Fatalf("after EndJob: %+v", jobs)
	}
}

func TestPlanCache(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	v1 := wire.SignedEnvelope{Payload: []byte(`{"v":1}`), KeyID: "k", Signature: []byte("s1"), InboxKey: "delivery/1"}
	v2 := wire.SignedEnvelope{Payload: []byte(`{"v":2}`), KeyID: "k", Signature: []byte("s2")}
	for _, step := range []struct {
		name string
		se   wire.SignedEnvelope
	}{{"web", v1}, {"web", v2}, {"db", v1}} {
		if err := s.SavePlan(step.name, step.se); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SavePlan("../escape", v1); err == nil {
		t.Fatal("a plan name that is a path was accepted")
	}
	os.WriteFile(filepath.Join(dir, "plans", "junk.json"), []byte("{not json"), 0o600)
	os.WriteFile(filepath.Join(dir, "plans", ".tmp-web.json-123"), []byte("half"), 0o600)

	got, err := s.Plans()
	if err == nil || !strings.Contains(err.Error(), "plan junk is corrupt") {
		t.Fatalf("Plans error = %v, want the corrupt file named", err)
	}
	if len(got) != 2 || got[0].Name != "db" || got[1].Name != "web" || string(got[1].Envelope.Payload) != `{"v":2}` {
		t.Fatalf("Plans = %+v", got)
	}
	if got[0].Envelope.InboxKey != "" {
		t.Fatal("the delivery name was cached with the envelope")
	}

	if err := s.DropPlan("web"); err != nil {
		t.Fatal(err)
	}
	if err := s.DropPlan("web"); err != nil {
		t.Fatalf("dropping a dropped plan: %v", err)
	}
	os.Remove(filepath.Join(dir, "plans", "junk.json"))
	got, err = s.Plans()
	if err != nil || len(got) != 1 || got[0].Name != "db" {
		t.Fatalf("after the drop: %+v, %v", got, err)
	}
}
