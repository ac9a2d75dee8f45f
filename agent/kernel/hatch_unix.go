//go:build unix

package kernel

import (
	"os"
	"syscall"
)

// dirOwner says whom a file written in dir must belong to: the owner of dir when the caller is root, so
// that `sudo pulse-agent unseal` writes a hatch file the agent's own (unprivileged) account can read.
// Anyone else creates the file as themselves (chown false), which is the agent's account or a write to
// the state directory would have failed.
func dirOwner(dir string) (uid, gid int, chown bool, err error) {
	if os.Geteuid() != 0 {
		return 0, 0, false, nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return 0, 0, false, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false, nil
	}
	return int(st.Uid), int(st.Gid), true, nil
}
