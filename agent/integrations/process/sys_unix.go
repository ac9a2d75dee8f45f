//go:build unix

package process

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// setGroup puts a program in a process group of its own, so stopping it reaches whatever it started
// and nothing of the agent's.
func setGroup(c *exec.Cmd) { c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

// lockFile takes an exclusive lock on path (created if needed) and returns its release. It serialises
// whatever touches one unit's process and record, between goroutines and between processes alike.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
