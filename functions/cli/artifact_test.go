package cli_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulsehq/pulse/agent/wire"
)

// TestArtifactCommands drives pulse artifact push and pulse artifacts against a real hub: a push
// that a first attempt left half done uploads only the missing chunks and prints the reference a plan
// names; the same file again uploads nothing; the list shows it; a missing file is a usage error.
func TestArtifactCommands(t *testing.T) {
	url, admin := startHub(t)
	useHub(t, url, admin)
	data := make([]byte, 2*wire.ArtifactChunkSize+12345) // three chunks
	r := rand.New(rand.NewPCG(7, 7))
	for i := range data {
		data[i] = byte(r.UintN(256))
	}
	file := filepath.Join(t.TempDir(), "site.tar")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])

	// An earlier push stopped after the first chunk.
	first := data[:wire.ArtifactChunkSize]
	req, _ := http.NewRequest("PUT", url+"/v1/artifacts/"+digest+"/chunks/0", bytes.NewReader(first))
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/octet-stream")
	fsum := sha256.Sum256(first)
	req.Header.Set("X-Pulse-Chunk-Sha256", hex.EncodeToString(fsum[:]))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 204 {
		t.Fatalf("first chunk: %v %v", resp, err)
	}

	res := pulse("artifact", "push", file)
	if res.code != 0 {
		t.Fatalf("push: exit %d: %s", res.code, res.stderr)
	}
	want := `artifact: {"digest":"` + digest + `","size":` + itoa(len(data)) + "}\n"
	if res.stdout != want {
		t.Errorf("push printed %q, want %q", res.stdout, want)
	}
	if !strings.Contains(res.stderr, "resuming: the hub has 1 of 3 chunks") || !strings.Contains(res.stderr, "uploaded chunk 2/2") || strings.Contains(res.stderr, "uploaded chunk 3/") {
		t.Errorf("push progress:\n%s\nwant a resume that uploads the 2 missing chunks only", res.stderr)
	}
	again := pulse("artifact", "push", file, "--json")
	var p struct {
		Ref       wire.ArtifactRef
		Unchanged bool
	}
	if again.code != 0 || json.Unmarshal([]byte(again.stdout), &p) != nil || !p.Unchanged || p.Ref.Digest != digest || strings.Contains(again.stderr, "uploaded") {
		t.Errorf("push again: exit %d %s %s; want unchanged and nothing uploaded", again.code, again.stdout, again.stderr)
	}
	list := pulse("artifacts")
	if list.code != 0 || !strings.Contains(list.stdout, digest) || !strings.Contains(list.stdout, "site.tar") {
		t.Errorf("artifacts: %d %s %s", list.code, list.stdout, list.stderr)
	}
	if res := pulse("artifact", "push", filepath.Join(t.TempDir(), "none")); res.code != 2 || !strings.Contains(res.stderr, "no such file") {
		t.Errorf("push of a missing file: %d %q", res.code, res.stderr)
	}
	if res := pulse("artifact", "--help"); res.code != 0 || !strings.Contains(res.stdout, "artifact: {digest:") {
		t.Errorf("artifact --help: %d %q", res.code, res.stdout)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
