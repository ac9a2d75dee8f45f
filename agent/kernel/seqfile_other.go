//go:build !linux

package kernel

import "os"

// fdatasync is a full fsync where the platform offers nothing finer.
func fdatasync(f *os.File) error { return f.Sync() }
