//go:build unix

package kernel

import (
	"errors"
	"os"
	"syscall"
)

// groupExists reports whether any process of group pgid still exists (EPERM: it exists but belongs to
// someone else, which the caller must still not ignore).
func groupExists(pgid int) bool {
	err := syscall.Kill(-pgid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// killGroup sends SIGKILL to every process of group pgid; a group that ended meanwhile is not an error.
func killGroup(pgid int) error {
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return os.NewSyscallError("kill process group", err)
	}
	return nil
}

// ownGroup is the agent's own process group, which a leftover record must never name.
func ownGroup() int { return syscall.Getpgrp() }
