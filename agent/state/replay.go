package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

const replayDir = "replay"

type replayEntry struct {
	ID       string    `json:"id"`
	NotAfter time.Time `json:"notAfter"`
	// Digest is the sha256 of the envelope's signed bytes, so the same envelope offered again (a hub
	// that restarted, another hub instance) is told apart from another envelope reusing its id.
	Digest string `json:"digest,omitempty"`
}

// Seen reports whether an envelope id was accepted before and is still remembered, and the digest of
// the envelope accepted under it ("" if unknown). An error reading the record counts as seen:
// refusing a genuine envelope is recoverable, running one twice may not be.
func (s *State) Seen(id string) (digest string, seen bool) {
	data, err := os.ReadFile(filepath.Join(s.dir, replayDir, hashName(id)))
	if errors.Is(err, fs.ErrNotExist) {
		return "", false
	}
	var r replayEntry
	if err != nil || json.Unmarshal(data, &r) != nil {
		return "", true
	}
	return r.Digest, true
}

// Record remembers an accepted envelope id (and the digest of its signed bytes) until notAfter. It
// returns only once the record is on disk, so a command is never run before the agent could refuse its
// replay after a crash.
func (s *State) Record(id string, notAfter time.Time, digest string) error {
	data, err := json.Marshal(replayEntry{ID: id, NotAfter: notAfter.UTC(), Digest: digest})
	if err != nil {
		return fmt.Errorf("state: encode replay record: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(s.dir, replayDir, hashName(id)), data, true); err != nil {
		return fmt.Errorf("state: record envelope %s: %w", id, err)
	}
	return nil
}

// PurgeReplay forgets ids whose NotAfter is before cutoff: such an envelope is refused as expired
// anyway, so remembering it longer only costs disk. Unreadable entries are kept (and counted as seen).
func (s *State) PurgeReplay(cutoff time.Time) (int, error) {
	dir := filepath.Join(s.dir, replayDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("state: purge replay record: %w", err)
	}
	n := 0
	for _, e := range ents {
		path := filepath.Join(dir, e.Name())
		if isTemp(e.Name()) {
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
				os.Remove(path)
			}
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var r replayEntry
		if json.Unmarshal(data, &r) != nil || r.NotAfter.IsZero() {
			continue
		}
		if r.NotAfter.Before(cutoff) {
			if err := os.Remove(path); err == nil {
				n++
			}
		}
	}
	return n, nil
}
