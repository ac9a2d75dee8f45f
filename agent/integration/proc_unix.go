//go:build unix

package integration

import (
	"os"
	"os/exec"
	"syscall"
)

// setProcessGroup puts the command in a process group of its own, so stopping it reaches everything it
// started (a shell's children, a script's pipeline) and nothing of the agent's.
func setProcessGroup(c *exec.Cmd) { c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

// terminateGroup asks the whole group to stop.
func terminateGroup(p *os.Process) error {
	if err := syscall.Kill(-p.Pid, syscall.SIGTERM); err != nil {
		return os.NewSyscallError("kill process group", err)
	}
	return nil
}

// killGroup stops whatever is left of the group after the grace period.
func killGroup(pgid int) { _ = syscall.Kill(-pgid, syscall.SIGKILL) }

// groupAlive reports whether any process of the group still exists.
func groupAlive(pgid int) bool { return syscall.Kill(-pgid, 0) == nil }

// processGroups says whether commands run in a process group of their own, i.e. whether a pgid handed to
// OnProcessGroup means anything.
const processGroups = true
