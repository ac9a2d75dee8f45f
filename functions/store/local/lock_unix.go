//go:build unix

package local

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// errNotDir is what opening "a/b" returns when "a" is a file; for a store it just means "not found".
var errNotDir = syscall.ENOTDIR

// locked runs fn holding the in-process mutex and an exclusive flock on the store's lock file, so that
// replacing writes (If-Match, plain puts, deletes) are serialised across every process sharing the
// directory.
func (s *Store) locked(fn func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.OpenFile(filepath.Join(s.root, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("open lock: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return fn()
}
