package files_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulsehq/pulse/agent/artifacts"
	"github.com/pulsehq/pulse/agent/integration"
	"github.com/pulsehq/pulse/agent/wire"
)

// memSource serves one artifact's manifest and chunks from memory, as the hub would (the fetcher
// against a real hub is tested in functions/hub and end to end).
type memSource struct {
	data  []byte
	chunk int64
}

func (m memSource) ref() wire.ArtifactRef {
	sum := sha256.Sum256(m.data)
	return wire.ArtifactRef{Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(m.data))}
}

func (m memSource) Manifest(_ context.Context, digest string) (wire.ArtifactManifest, error) {
	man := wire.ArtifactManifest{Digest: digest, Size: int64(len(m.data)), ChunkSize: m.chunk}
	for n := range wire.ArtifactChunks(man.Size, m.chunk) {
		b, _ := m.Chunk(context.Background(), digest, n)
		sum := sha256.Sum256(b)
		man.Chunks = append(man.Chunks, hex.EncodeToString(sum[:]))
	}
	return man, nil
}

func (m memSource) Chunk(_ context.Context, _ string, n int) ([]byte, error) {
	return m.data[int64(n)*m.chunk : min(int64(len(m.data)), int64(n+1)*m.chunk)], nil
}

// TestFileFromArtifact: a file unit whose content is an artifact is written from the fetcher's
// verified copy (larger than inline content may be), observed by its digest, repaired when it
// differs; a spec with both content and an artifact, or a malformed digest, is refused; an agent
// without a fetcher refuses such units.
func TestFileFromArtifact(t *testing.T) {
	root := t.TempDir()
	src := memSource{data: bytes.Repeat([]byte("0123456789abcdef"), 200_000), chunk: 1 << 20} // 3.2 MB, 4 chunks
	cache := &artifacts.Cache{Dir: filepath.Join(t.TempDir(), "cache"), Source: src, FreeSpace: func(string) (uint64, error) { return 1 << 40, nil }}
	s := integration.Load(context.Background(), map[string]any{"files": map[string]any{"roots": []any{root}}}, nil, integration.WithArtifacts(cache))
	f, err := s.Reconciler("file")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "site", "site.tar")
	ref := src.ref()
	u := unit("site", map[string]any{"path": path, "artifact": map[string]any{"digest": ref.Digest, "size": ref.Size}, "mode": "0640"})
	if err := f.CheckUnit(u); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if o, err := f.Observe(ctx, u); err != nil || o.InState || o.Detail != "missing" {
		t.Fatalf("before apply: %+v, %v", o, err)
	}
	if err := f.Apply(ctx, u); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, src.data) {
		t.Fatalf("file has %d bytes, not the artifact", len(got))
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	o, err := f.Observe(ctx, u)
	if err != nil || !o.InState || o.Digest == "" {
		t.Fatalf("after apply: %+v, %v", o, err)
	}
	// The same length with other bytes is drift, found by the digest.
	other := bytes.Clone(src.data)
	other[len(other)/2] ^= 1
	os.WriteFile(path, other, 0o640)
	if o, _ := f.Observe(ctx, u); o.InState || o.Detail != "content differs" {
		t.Errorf("after an edit: %+v, want content differs", o)
	}
	if err := f.Apply(ctx, u); err != nil {
		t.Fatal(err)
	}
	if o, _ := f.Observe(ctx, u); !o.InState {
		t.Errorf("after repair: %+v", o)
	}

	refusals := []struct {
		name string
		spec map[string]any
		want string
	}{
		{"content and artifact", map[string]any{"path": path, "content": "x", "artifact": map[string]any{"digest": ref.Digest, "size": ref.Size}}, "content and artifact are both set"},
		{"a digest that is not sha256", map[string]any{"path": path, "artifact": map[string]any{"digest": "md5:00", "size": 1}}, "want sha256: and 64 lower-case hex digits"},
		{"an artifact too large", map[string]any{"path": path, "artifact": map[string]any{"digest": ref.Digest, "size": wire.MaxArtifactSize + 1}}, "size"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			if err := f.CheckUnit(unit("x", tc.spec)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckUnit: %v, want %q", err, tc.want)
			}
		})
	}
	without := load(t, root)
	if err := without.CheckUnit(u); err == nil || !strings.Contains(err.Error(), "without an artifact fetcher") {
		t.Errorf("an agent without a fetcher: %v", err)
	}
}
