// Package state keeps everything the agent must not forget across restarts in one directory: its
// private key, its identity (agent id, hub, trusted hub keys), the replay record of envelope ids it
// has accepted, the outbox of reports not yet uploaded, the commands that were running, and the signed
// plan versions it enforces.
//
// Why files and not a database: the agent is the most privileged program on the machine and must stay
// small enough to audit. Every record is a small file written with the same discipline (temporary file,
// fsync, rename, fsync of the directory), so a crash or power loss leaves either the old or the new
// content, never a torn one. Files are 0600 and directories 0700 because the key and the identity are
// nobody else's business.
package state

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/pulsehq/pulse/agent/atomicfile"
)

// DefaultDir is where a system-wide agent keeps its state; the systemd unit grants it this directory.
const DefaultDir = "/var/lib/pulse-agent"

const (
	fileMode = 0o600
	dirMode  = 0o700
)

// State is an open state directory. It holds an exclusive lock on the directory (on systems that have
// file locks), because two agents sharing one identity would run every command twice and fight over
// the outbox. Its methods are safe for concurrent use.
type State struct {
	dir    string
	unlock func()
	outbox *Outbox

	mu sync.Mutex // serialises writes of identity.json and acks.json
}

// Open creates dir (0700) and its subdirectories if needed and locks it for this process.
func Open(dir string) (*State, error) {
	if dir == "" {
		return nil, errors.New("state: no state directory given")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("state: %s: %w", dir, err)
	}
	for _, d := range []string{abs, filepath.Join(abs, replayDir), filepath.Join(abs, outboxDir),
		filepath.Join(abs, outboxDir, parkedDir), filepath.Join(abs, jobsDir), filepath.Join(abs, plansDir)} {
		if err := os.MkdirAll(d, dirMode); err != nil {
			return nil, fmt.Errorf("state: create %s: %w", d, err)
		}
	}
	unlock, err := lockDir(abs)
	if err != nil {
		return nil, err
	}
	s := &State{dir: abs, unlock: unlock}
	ob, err := openOutbox(filepath.Join(abs, outboxDir))
	if err != nil {
		unlock()
		return nil, err
	}
	s.outbox = ob
	return s, nil
}

// Dir is the absolute path of the state directory, for messages that tell an operator where to look.
func (s *State) Dir() string { return s.dir }

// Outbox is where reports wait until the hub has stored them.
func (s *State) Outbox() *Outbox { return s.outbox }

// Close releases the directory lock so another process (or a restarted agent in a test) may open it.
func (s *State) Close() error {
	if s.unlock != nil {
		s.unlock()
		s.unlock = nil
	}
	return nil
}

// hashName turns an id chosen by someone else (the hub, a command issuer) into a fixed-length file name
// that cannot contain a path separator, whatever the id holds.
func hashName(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// writeFileAtomic replaces path with data so that readers (and a machine that loses power) see either
// the old or the new content. sync=false skips the fsyncs for data that is cheap to lose.
func writeFileAtomic(path string, data []byte, sync bool) error {
	return atomicfile.Write(path, data, atomicfile.Options{Perm: fileMode, NoSync: !sync})
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error { return atomicfile.SyncDir(dir) }

// isTemp reports whether name is a half-written file left by writeFileAtomic.
func isTemp(name string) bool { return atomicfile.IsTemp(name) }
