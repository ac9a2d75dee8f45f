//go:build !unix

package state

// lockDir has no portable equivalent outside unix; the agent is built for unix hosts, and elsewhere
// the operator must not start two agents on one state directory.
func lockDir(dir string) (func(), error) { return func() {}, nil }
