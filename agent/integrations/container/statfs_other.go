//go:build !unix

package container

import "errors"

func freeBytes(string) (int64, error) {
	return 0, errors.New("checking free space is not supported on this system")
}
