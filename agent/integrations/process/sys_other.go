//go:build !unix

package process

import (
	"errors"
	"os/exec"
)

func setGroup(*exec.Cmd) {}

func lockFile(string) (func(), error) {
	return nil, errors.New("supervised processes need a unix host")
}
