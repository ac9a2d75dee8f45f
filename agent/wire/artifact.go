package wire

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// ArtifactRef names a content-addressed blob the hub holds (uploaded with `pulse artifact push`): a
// file's content, a container image, the agent's own binary. A unit spec carries it inside a plan the
// hub signed, so the digest is as trustworthy as the plan: whatever the agent fetches is checked
// against it before use, and a blob anyone planted in the bucket under that name is refused.
type ArtifactRef struct {
	// Digest is "sha256:" and 64 lower-case hex digits, the SHA-256 of the whole content.
	Digest string `json:"digest"`
	// Size is the content's length in bytes: what the agent checks free space against before it
	// downloads, and where it stops.
	Size int64 `json:"size"`
}

// MaxArtifactSize bounds one artifact (8 GiB), so a plan cannot ask an agent to fill its disk.
const MaxArtifactSize int64 = 8 << 30

// Validate refuses a reference no agent could verify content against.
func (r ArtifactRef) Validate() error {
	hexPart, ok := strings.CutPrefix(r.Digest, "sha256:")
	if !ok || len(hexPart) != 64 || strings.ToLower(hexPart) != hexPart {
		return fmt.Errorf("artifact digest %q: want sha256: and 64 lower-case hex digits", r.Digest)
	}
	if _, err := hex.DecodeString(hexPart); err != nil {
		return fmt.Errorf("artifact digest %q: want sha256: and 64 lower-case hex digits", r.Digest)
	}
	if r.Size < 0 || r.Size > MaxArtifactSize {
		return fmt.Errorf("artifact %s: size %d: want 0 to %d bytes", r.Digest, r.Size, MaxArtifactSize)
	}
	return nil
}

// Hex is the digest's hex part (what store keys and file names use). Only meaningful after Validate.
func (r ArtifactRef) Hex() string { return strings.TrimPrefix(r.Digest, "sha256:") }
