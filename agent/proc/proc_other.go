//go:build !linux

package proc

// Info is what the system says about one process; elsewhere than Linux it says nothing.
type Info struct {
	State    byte
	PGID     int
	Identity string
}

// Zombie reports whether the process has exited and only waits to be reaped.
func (i Info) Zombie() bool { return i.State == 'Z' }

// Stat knows nothing without /proc.
func Stat(int) (Info, bool) { return Info{}, false }

// Identity knows nothing without /proc: a leftover process group is known only by its number.
func Identity(int) (string, bool) { return "", false }

// Boot is unknown without /proc.
func Boot() string { return "" }

// Running cannot tell without /proc, and says no.
func Running(int, string) bool { return false }

// WithEnv finds nothing without /proc.
func WithEnv(...string) []int { return nil }
