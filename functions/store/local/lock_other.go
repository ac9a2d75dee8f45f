//go:build !unix

package local

import "errors"

// errNotDir has no portable equivalent outside unix; a path through a file there reports not-exist.
var errNotDir = errors.New("not a directory")

// locked serialises replacing writes within this process only: without flock, two hub processes must
// not share one local directory on these systems.
func (s *Store) locked(fn func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fn()
}
