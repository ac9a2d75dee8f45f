//go:build !unix

package proc

// Without process groups nothing started can be found again after a crash; the agent targets unix
// hosts, this keeps the package building elsewhere.
func GroupExists(int) bool { return false }

// TerminateGroup does nothing without process groups.
func TerminateGroup(int) error { return nil }

// KillGroup does nothing without process groups.
func KillGroup(int) error { return nil }

// OwnGroup is 0 without process groups.
func OwnGroup() int { return 0 }
