package wire

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"
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

// ArtifactChunkSize is the size of every chunk of an artifact but the last (4 MiB): small enough that
// the hub and the agent hold one chunk at a time in memory and that a chunk is one create-only-sized
// object in every store, large enough that an 8 GiB artifact is 2048 chunks.
const ArtifactChunkSize int64 = 4 << 20

// MaxArtifactChunkSize bounds the chunk size a manifest may declare, so a manifest cannot make the agent
// hold more than this in memory at once.
const MaxArtifactChunkSize int64 = 4 << 20

// ArtifactManifest is what the hub keeps of a complete artifact and answers an agent asking for it:
// its digest and size, how it is cut into chunks and each chunk's SHA-256, so an agent verifies every
// chunk before it appends it (and a download resumed after a crash re-verifies what it has).
// The manifest is only a guide: the agent checks the whole content against the ArtifactRef of the
// plan the hub signed, so a manifest planted in the bucket or altered on the way cannot make it use
// other content.
type ArtifactManifest struct {
	Digest    string `json:"digest" doc:"sha256: and 64 lower-case hex digits: the SHA-256 of the whole content."`
	Size      int64  `json:"size" doc:"The content's length in bytes."`
	ChunkSize int64  `json:"chunkSize" doc:"Every chunk but the last has this many bytes."`
	// Chunks are the lower-case hex SHA-256 of each chunk, in order.
	Chunks   []string  `json:"chunks" doc:"The lower-case hex SHA-256 of each chunk, in order."`
	Name     string    `json:"name,omitempty" doc:"A name the pusher gave it (informational)."`
	PushedBy string    `json:"pushedBy"`
	PushedAt time.Time `json:"pushedAt"`
}

// ArtifactChunks is how many chunks of chunkSize bytes hold size bytes.
func ArtifactChunks(size, chunkSize int64) int {
	if size <= 0 || chunkSize <= 0 {
		return 0
	}
	return int((size + chunkSize - 1) / chunkSize)
}

// ChunkLen is how many bytes chunk n of the manifest's artifact has.
func (m ArtifactManifest) ChunkLen(n int) int64 {
	start := int64(n) * m.ChunkSize
	return min(m.ChunkSize, m.Size-start)
}

// Check refuses a manifest that is not one of the artifact ref names, or that could not describe any
// content: another digest or size, a chunk size out of bounds, a wrong number of chunks, a chunk hash
// that is not hex SHA-256.
func (m ArtifactManifest) Check(ref ArtifactRef) error {
	switch {
	case m.Digest != ref.Digest:
		return fmt.Errorf("manifest of %s answered for %s", m.Digest, ref.Digest)
	case m.Size != ref.Size:
		return fmt.Errorf("artifact %s: the hub's manifest says %d bytes, the plan %d", ref.Digest, m.Size, ref.Size)
	case m.ChunkSize <= 0 || m.ChunkSize > MaxArtifactChunkSize:
		return fmt.Errorf("artifact %s: chunk size %d out of bounds (1 to %d)", ref.Digest, m.ChunkSize, MaxArtifactChunkSize)
	case len(m.Chunks) != ArtifactChunks(m.Size, m.ChunkSize):
		return fmt.Errorf("artifact %s: %d chunk hashes for %d bytes in chunks of %d (want %d)", ref.Digest, len(m.Chunks), m.Size, m.ChunkSize, ArtifactChunks(m.Size, m.ChunkSize))
	}
	for i, c := range m.Chunks {
		if b, err := hex.DecodeString(c); err != nil || len(b) != 32 || strings.ToLower(c) != c {
			return fmt.Errorf("artifact %s: chunk %d hash %q is not lower-case hex SHA-256", ref.Digest, i, c)
		}
	}
	return nil
}

// ContentDigest is the digest an ArtifactRef names content by ("sha256:" and the hex SHA-256),
// read from r as a stream: what every side that checks content against a reference computes.
func ContentDigest(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
