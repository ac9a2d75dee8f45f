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
