package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulsehq/pulse/agent/wire"
	"github.com/pulsehq/pulse/functions/layout"
	"github.com/pulsehq/pulse/functions/store"
	"github.com/pulsehq/pulse/integration-tests/s3server"
)

// pushArtifact runs `pulse artifact push FILE` and returns the reference it printed.
func pushArtifact(t *testing.T, hubURL, token, file string) wire.ArtifactRef {
	t.Helper()
	out, errOut, code := pulseCLI(t, hubURL, token, "artifact", "push", file)
	if code != 0 {
		t.Fatalf("pulse artifact push: exit %d: %s", code, errOut)
	}
	var ref wire.ArtifactRef
	if err := json.Unmarshal([]byte(strings.TrimPrefix(strings.TrimSpace(out), "artifact: ")), &ref); err != nil {
		t.Fatalf("pulse artifact push printed %q: %v", out, err)
	}
	return ref
}

// randomFile writes size pseudo-random bytes to a new file in dir.
func randomFile(t *testing.T, dir, name string, size int, seed uint64) []byte {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPlanFileFromArtifact: real `pulse serve` on MinIO and a real pulse-agent. A 9 MiB file pushed
// with `pulse artifact push` (three chunks) and named by a plan's file unit converges with exactly that
// content; an artifact whose chunk was replaced in the bucket by someone other than the hub is never
// used: the unit fails saying so, and the file keeps the content it had.
func TestPlanFileFromArtifact(t *testing.T) {
	dir := t.TempDir()
	storeURL, token := initStore(t, dir)
	h := startHub(t, dir, s3server.Env(), "--store", storeURL, "--poll-hold", "5s")
	root := filepath.Join(dir, "managed")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	tok, tokErr, code := pulseCLI(t, h.url, token, "enroll-token", "create", "--labels", "role=site")
	if code != 0 {
		t.Fatalf("enroll-token create: %s", tokErr)
	}
	cfg := strings.Replace(agentConfig, "[agent]\n", "[agent]\nplan_period = \"1s\"\n", 1) + fmt.Sprintf("\n[files]\nroots = [%q]\n", root)
	a := startAgent(t, h.url, filepath.Join(dir, "agent"), cfg, "--enroll-token", strings.TrimSpace(tok))
	a.id()

	data := randomFile(t, dir, "site.tar", 9<<20, 11)
	ref := pushArtifact(t, h.url, token, filepath.Join(dir, "site.tar"))
	if sum := sha256.Sum256(data); ref.Digest != "sha256:"+hex.EncodeToString(sum[:]) || ref.Size != int64(len(data)) {
		t.Fatalf("pushed %+v, want the file's digest and size", ref)
	}
	target := filepath.Join(root, "www", "site.tar")
	source := func(r wire.ArtifactRef) string {
		return fmt.Sprintf("targets: [role=site]\nunits:\n  - name: site\n    type: file\n    deadline: 60s\n    spec: {path: %q, artifact: {digest: %q, size: %d}, mode: \"0640\"}\n", target, r.Digest, r.Size)
	}
	waitUnit := func(what string, version int, cond func(state, reason string) bool) {
		t.Helper()
		var v planView
		waitFor(t, what, 90*time.Second, func() bool {
			v = planStatus(t, h.url, token, "site")
			return len(v.Agents) == 1 && v.Agents[0].Version == version && len(v.Agents[0].Units) == 1 &&
				cond(v.Agents[0].Units[0].State, v.Agents[0].Units[0].Reason)
		})
	}

	start := time.Now()
	if out, code := applyPlan(t, h.url, token, "site", dir, source(ref)); code != 0 {
		t.Fatalf("pulse plan apply: exit %d: %s", code, out)
	}
	waitUnit("the file from the artifact converged", 1, func(s, _ string) bool { return s == "converged" })
	t.Logf("9 MiB artifact converged %v after the apply", time.Since(start).Round(time.Millisecond))
	if got, err := os.ReadFile(target); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("managed file: %d bytes, %v; want the artifact's %d bytes", len(got), err, len(data))
	}
	if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}

	// A second artifact, one of whose chunks a bucket writer replaces after the push.
	other := randomFile(t, dir, "other.tar", 5<<20, 12)
	ref2 := pushArtifact(t, h.url, token, filepath.Join(dir, "other.tar"))
	bucket := bucketStore(t, storeURL)
	forged := bytes.Clone(other[wire.ArtifactChunkSize:])
	forged[0] ^= 0xff
	if _, err := store.PutBytes(context.Background(), bucket, layout.ArtifactChunk(ref2.Hex(), 1), forged, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if out, code := applyPlan(t, h.url, token, "site", dir, source(ref2)); code != 0 {
		t.Fatalf("pulse plan apply: exit %d: %s", code, out)
	}
	waitUnit("the unit naming the tampered artifact failed", 2, func(s, reason string) bool {
		return s == "failed" && strings.Contains(reason, "chunk 1") && strings.Contains(reason, "integrity check")
	})
	if got, _ := os.ReadFile(target); !bytes.Equal(got, data) {
		t.Errorf("the managed file changed (%d bytes) though its new content could not be verified", len(got))
	}
}

// chunkGET matches an agent's request for a chunk of an artifact.
var chunkGET = regexp.MustCompile(`^/v1/agents/[^/]+/artifacts/[^/]+/chunks/([0-9]+)$`)

// TestArtifactDownloadResumesAfterKill: a real agent killed (SIGKILL) in the middle of downloading a
// 40 MiB artifact (ten chunks, slowed down by a proxy in front of the hub) does not start from zero
// when started again: it asks only for the chunks its part file does not hold whole, and the file
// converges with the artifact's content.
func TestArtifactDownloadResumesAfterKill(t *testing.T) {
	dir := t.TempDir()
	storeURL, token := initStore(t, dir)
	h := startHub(t, dir, s3server.Env(), "--store", storeURL, "--poll-hold", "5s")
	hubURL, _ := url.Parse(h.url)
	proxy := httputil.NewSingleHostReverseProxy(hubURL)
	proxy.ErrorLog = log.New(io.Discard, "", 0) // a killed agent's requests end mid-way, as they should
	var mu sync.Mutex
	var asked []int
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := chunkGET.FindStringSubmatch(r.URL.Path); m != nil {
			var n int
			fmt.Sscan(m[1], &n)
			mu.Lock()
			asked = append(asked, n)
			mu.Unlock()
			time.Sleep(300 * time.Millisecond)
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	requests := func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(asked)
	}

	root := filepath.Join(dir, "managed")
	os.MkdirAll(root, 0o755)
	tok, tokErr, code := pulseCLI(t, h.url, token, "enroll-token", "create", "--labels", "role=big")
	if code != 0 {
		t.Fatalf("enroll-token create: %s", tokErr)
	}
	cfg := strings.Replace(agentConfig, "[agent]\n", "[agent]\nplan_period = \"1s\"\n", 1) + fmt.Sprintf("\n[files]\nroots = [%q]\n", root)
	stateDir := filepath.Join(dir, "agent")
	a := startAgent(t, front.URL, stateDir, cfg, "--enroll-token", strings.TrimSpace(tok))
	a.id()

	data := randomFile(t, dir, "big.bin", 40<<20, 13)
	ref := pushArtifact(t, h.url, token, filepath.Join(dir, "big.bin"))
	target := filepath.Join(root, "big.bin")
	src := fmt.Sprintf("targets: [role=big]\nunits:\n  - name: big\n    type: file\n    deadline: 120s\n    spec: {path: %q, artifact: {digest: %q, size: %d}}\n", target, ref.Digest, ref.Size)
	if out, code := applyPlan(t, h.url, token, "big", dir, src); code != 0 {
		t.Fatalf("pulse plan apply: exit %d: %s", code, out)
	}
	waitFor(t, "the agent has asked for 5 chunks", 60*time.Second, func() bool { return len(requests()) >= 5 })
	a.cmd.Process.Kill()
	<-a.done
	a.done <- nil
	before := requests()
	part := filepath.Join(stateDir, "artifacts", ref.Hex()+".part")
	fi, err := os.Stat(part)
	if err != nil {
		t.Fatalf("no part file after the kill: %v", err)
	}
	t.Logf("killed after %d chunk requests; the part file holds %d bytes", len(before), fi.Size())

	startAgent(t, front.URL, stateDir, cfg)
	waitFor(t, "the file converged after the restart", 90*time.Second, func() bool {
		v := planStatus(t, h.url, token, "big")
		return len(v.Agents) == 1 && v.every(1, "converged")
	})
	after := requests()[len(before):]
	t.Logf("after the restart the agent asked for chunks %v", after)
	kept := int(fi.Size() / wire.ArtifactChunkSize)
	if len(after) == 0 || slices.Min(after) < kept || len(after) > 10-kept {
		t.Errorf("after the restart the agent asked for chunks %v; the part file held %d whole chunks, so want only chunks %d to 9", after, kept, kept)
	}
	if kept < 3 {
		t.Errorf("the part file held %d whole chunks after %d requests; chunks are kept as they arrive", kept, len(before))
	}
	if got, _ := os.ReadFile(target); !bytes.Equal(got, data) {
		t.Errorf("the file has %d bytes, not the artifact's content", len(got))
	}
	if _, err := os.Stat(part); !os.IsNotExist(err) {
		t.Errorf("the part file is left after the download: %v", err)
	}
}
