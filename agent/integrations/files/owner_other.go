//go:build !unix

package files

import "io/fs"

// noFollow has no equivalent here; the Lstat before the read is all there is.
const noFollow = 0

// ownerOf is unknown where files have no unix owner.
func ownerOf(fs.FileInfo) (uid, gid int) { return -1, -1 }
