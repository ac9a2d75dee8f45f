//go:build unix

package kernel

import (
	"fmt"
	"os"
	"syscall"
)

// giveToDirOwner makes f belong to the owner of dir when the caller is root, so that `sudo pulse-agent
// unseal` writes a hatch file the agent's own (unprivileged) account can read. Anyone else creates the
// file as themselves, which is the agent's account or a write to the state directory would have failed.
func giveToDirOwner(f *os.File, dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if err := f.Chown(int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("give the hatch file to the state directory's owner: %w", err)
	}
	return nil
}
