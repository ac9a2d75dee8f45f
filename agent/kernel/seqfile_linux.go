package kernel

import (
	"os"
	"syscall"
)

// fdatasync flushes a file's data without its timestamps, which an in-place rewrite of the same
// length does not need to be durable.
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
