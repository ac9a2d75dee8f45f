//go:build !unix

package integration

import (
	"os"
	"os/exec"
)

// Without process groups only the command itself can be stopped; the agent targets unix hosts, this
// keeps the package building elsewhere.
func setProcessGroup(*exec.Cmd) {}

func terminateGroup(p *os.Process) error { return p.Kill() }

func killGroup(int) {}

func groupAlive(int) bool { return false }

// processGroups says whether commands run in a process group of their own, i.e. whether a pgid handed to
// OnProcessGroup means anything.
const processGroups = false
