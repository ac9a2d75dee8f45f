//go:build !unix

package artifacts

import "errors"

// statfsFree is not known off Unix: a download there is refused rather than risk filling the disk.
func statfsFree(string) (uint64, error) {
	return 0, errors.New("free space is not known on this platform")
}
