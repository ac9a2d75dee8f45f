//go:build !linux

package kernel

// Elsewhere the agent knows a leftover process group only by its number.
func leaderIdentity(int) (string, bool) { return "", false }

func currentBoot() string { return "" }
