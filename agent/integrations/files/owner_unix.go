//go:build unix

package files

import (
	"io/fs"
	"syscall"
)

// noFollow keeps a read from following a symlink swapped in after the Lstat.
const noFollow = syscall.O_NOFOLLOW

// ownerOf is a file's owner and group.
func ownerOf(fi fs.FileInfo) (uid, gid int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return -1, -1
}
