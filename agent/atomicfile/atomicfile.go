// Package atomicfile replaces files so that a reader, a crash or a power loss sees either the old
// content or the new one, never a torn mix: the agent's own records (agent/state) and the files plans
// manage (agent/integrations/files) are written with this one routine.
package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// TempPrefix starts the name of every temporary file Write creates beside its target, so leftovers of
// an interrupted write can be recognised and removed (Leftovers).
const TempPrefix = ".tmp-"

// Options say how the new file is made.
type Options struct {
	// Perm is the new file's permission bits (0 means 0600).
	Perm fs.FileMode
	// Owner, when set, gives the new file to UID and GID before it appears under its name, so it is
	// never visible with the wrong owner. Changing the owner needs the privilege to do so.
	Owner bool
	UID   int
	GID   int
	// NoSync skips the fsyncs of the file and of its directory, for data that is cheap to lose.
	NoSync bool
}

// Write replaces path with data: a temporary file in the same directory, written, fsynced, given its
// mode and owner, renamed over path, and the directory fsynced, so the rename itself survives a crash.
func Write(path string, data []byte, o Options) error {
	return WriteFrom(path, bytes.NewReader(data), o)
}

// WriteFrom is Write with the content streamed from r (a large file copied from the artifact cache is
// never held in memory).
func WriteFrom(path string, r io.Reader, o Options) error {
	perm := o.Perm
	if perm == 0 {
		perm = 0o600
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, TempPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if o.Owner {
		if err := f.Chown(o.UID, o.GID); err != nil {
			return fmt.Errorf("write %s: set owner %d:%d: %w", path, o.UID, o.GID, err)
		}
	}
	if _, err := io.Copy(f, r); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if !o.NoSync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("write %s: sync: %w", path, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	ok = true
	if !o.NoSync {
		if err := SyncDir(dir); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return nil
}

// SyncDir makes a rename or removal in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// IsTemp reports whether a file name is a temporary file of Write.
func IsTemp(name string) bool { return strings.HasPrefix(name, TempPrefix) }

// Leftovers lists the temporary files an interrupted Write of path left beside it (the writer was
// killed between creating and renaming), so whoever writes path next can remove them.
func Leftovers(path string) ([]string, error) {
	pattern := filepath.Join(filepath.Dir(path), TempPrefix+escapeGlob(filepath.Base(path))+"-*")
	return filepath.Glob(pattern)
}

// escapeGlob makes a file name match only itself in filepath.Glob.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
