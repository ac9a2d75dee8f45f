//go:build unix

package proc

import (
	"errors"
	"os"
	"syscall"
)

// GroupExists reports whether any process of group pgid still exists (EPERM: it exists but belongs to
// someone else, which the caller must still not ignore).
func GroupExists(pgid int) bool {
	err := syscall.Kill(-pgid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// TerminateGroup asks every process of group pgid to stop (SIGTERM); a group that ended meanwhile is
// not an error.
func TerminateGroup(pgid int) error { return signalGroup(pgid, syscall.SIGTERM) }

// KillGroup sends SIGKILL to every process of group pgid; a group that ended meanwhile is not an error.
func KillGroup(pgid int) error { return signalGroup(pgid, syscall.SIGKILL) }

func signalGroup(pgid int, sig syscall.Signal) error {
	if pgid <= 1 {
		return errors.New("signal process group: refusing group 0 or 1")
	}
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return os.NewSyscallError("signal process group", err)
	}
	return nil
}

// OwnGroup is the calling process's own group, which a record of someone else's group must never name.
func OwnGroup() int { return syscall.Getpgrp() }
