//go:build !linux

package host

// diskDetails knows nothing beyond Linux's /sys/block yet: the disk is reported by name alone.
func diskDetails(string) diskInfo { return diskInfo{} }
