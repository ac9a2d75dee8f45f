package integration

import "time"

// SetKillGrace shortens the SIGTERM-to-SIGKILL grace so stop tests run fast. Call it before any Run.
func SetKillGrace(d time.Duration) (restore func()) {
	old := killGrace
	killGrace = d
	return func() { killGrace = old }
}
