package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/pulsehq/pulse/functions/layout"
)

// Mode says which guarantees a store gives the hub. It is found by Probe at start-up and logged, so an
// operator knows whether conditional writes back up the hub's idempotent design.
type Mode string

const (
	// ModeConditional: the store refuses a second create-only write of a key (If-None-Match: *), as AWS
	// S3, MinIO, R2, Ceph RGW, versitygw and the local backend do.
	ModeConditional Mode = "conditional"
	// ModeLastWriterWins: the store ignores conditional headers (Garage); the hub relies on deterministic
	// keys and immutable objects alone.
	ModeLastWriterWins Mode = "last-writer-wins"
)

// ProbePrefix is where Probe writes its throw-away objects.
const ProbePrefix = layout.Probe

// Probe finds the store's Mode by writing the same probe key twice with CreateOnly: a store that honours
// the condition refuses the second write. It also proves the store is reachable, the bucket exists and the
// credentials may read, write, list and delete, so its error is what /readyz reports. The probe objects are
// deleted again.
func Probe(ctx context.Context, s Store) (Mode, error) {
	key := ProbePrefix + uuid.NewString()
	body := []byte(time.Now().UTC().Format(time.RFC3339Nano))
	if _, err := PutBytes(ctx, s, key, body, PutOptions{CreateOnly: true, ContentType: "text/plain"}); err != nil {
		return "", fmt.Errorf("probe write: %w", err)
	}
	defer func() {
		// Best effort: a leftover probe object is harmless and tiny.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = s.Delete(dctx, key)
	}()
	if _, _, err := ReadAll(ctx, s, key); err != nil {
		return "", fmt.Errorf("probe read: %w", err)
	}
	if _, err := s.List(ctx, ProbePrefix, "", 1); err != nil {
		return "", fmt.Errorf("probe list: %w", err)
	}
	_, err := PutBytes(ctx, s, key, body, PutOptions{CreateOnly: true, ContentType: "text/plain"})
	switch {
	case errors.Is(err, ErrExists):
		return ModeConditional, nil
	case err == nil:
		return ModeLastWriterWins, nil
	default:
		return "", fmt.Errorf("probe second write: %w", err)
	}
}
