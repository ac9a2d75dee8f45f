package wire

import (
	"strings"
	"testing"
)

func TestArtifactRefValidate(t *testing.T) {
	good := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name string
		ref  ArtifactRef
		bad  string
	}{
		{"good", ArtifactRef{Digest: good, Size: 10}, ""},
		{"empty file", ArtifactRef{Digest: good}, ""},
		{"no prefix", ArtifactRef{Digest: strings.Repeat("ab", 32)}, "want sha256:"},
		{"short", ArtifactRef{Digest: "sha256:abcd"}, "want sha256:"},
		{"upper case", ArtifactRef{Digest: "sha256:" + strings.Repeat("AB", 32)}, "want sha256:"},
		{"not hex", ArtifactRef{Digest: "sha256:" + strings.Repeat("zz", 32)}, "want sha256:"},
		{"negative", ArtifactRef{Digest: good, Size: -1}, "size -1"},
		{"too large", ArtifactRef{Digest: good, Size: MaxArtifactSize + 1}, "size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ref.Validate()
			switch {
			case tc.bad == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)):
				t.Fatalf("got %v, want an error containing %q", err, tc.bad)
			}
		})
	}
	if h := (ArtifactRef{Digest: good}).Hex(); h != strings.Repeat("ab", 32) {
		t.Fatalf("Hex = %q", h)
	}
}

// TestArtifactManifestCheck: a manifest the hub answers is checked against the plan's reference
// before any chunk is fetched; every way it could misdescribe the content is refused by name.
func TestArtifactManifestCheck(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	chunk := strings.Repeat("0", 64)
	good := func() ArtifactManifest {
		return ArtifactManifest{Digest: digest, Size: 10, ChunkSize: 4, Chunks: []string{chunk, chunk, chunk}}
	}
	ref := ArtifactRef{Digest: digest, Size: 10}
	cases := []struct {
		name string
		edit func(*ArtifactManifest)
		want string // "" : accepted
	}{
		{"as it should be", func(*ArtifactManifest) {}, ""},
		{"another digest", func(m *ArtifactManifest) { m.Digest = "sha256:" + strings.Repeat("cd", 32) }, "answered for"},
		{"another size", func(m *ArtifactManifest) { m.Size = 11 }, "manifest says 11 bytes, the plan 10"},
		{"no chunk size", func(m *ArtifactManifest) { m.ChunkSize = 0 }, "chunk size 0 out of bounds"},
		{"chunks too large to hold", func(m *ArtifactManifest) { m.ChunkSize = MaxArtifactChunkSize + 1 }, "out of bounds"},
		{"a chunk too few", func(m *ArtifactManifest) { m.Chunks = m.Chunks[:2] }, "2 chunk hashes for 10 bytes in chunks of 4 (want 3)"},
		{"a hash that is not sha256", func(m *ArtifactManifest) { m.Chunks[1] = "xyz" }, "chunk 1 hash"},
		{"upper-case hex", func(m *ArtifactManifest) { m.Chunks[2] = strings.Repeat("A", 64) }, "chunk 2 hash"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := good()
			tc.edit(&m)
			err := m.Check(ref)
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("Check: %v, want %q", err, tc.want)
			}
		})
	}
	if m := good(); m.ChunkLen(0) != 4 || m.ChunkLen(2) != 2 {
		t.Errorf("chunk lengths %d, %d; want 4 and 2", m.ChunkLen(0), m.ChunkLen(2))
	}
	if ArtifactChunks(0, 4) != 0 || ArtifactChunks(MaxArtifactSize, ArtifactChunkSize) != 2048 {
		t.Error("chunk counts")
	}
}
