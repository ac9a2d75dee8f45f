package host

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// diskDetails reads what Linux says of a whole disk under /sys/block: its size (in 512-byte sectors
// whatever the disk's own sector size), its model and whether it spins. Missing files leave fields
// empty: a virtual disk has no model.
func diskDetails(name string) diskInfo {
	dir := filepath.Join("/sys/block", name)
	read := func(rel string) string {
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	var d diskInfo
	if n, err := strconv.ParseUint(read("size"), 10, 64); err == nil {
		d.sizeBytes = n * 512
	}
	d.model = read("device/model")
	switch read("queue/rotational") {
	case "0":
		d.rotational = new(bool)
	case "1":
		t := true
		d.rotational = &t
	}
	return d
}
