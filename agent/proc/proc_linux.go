package proc

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Info is what /proc says about one process.
type Info struct {
	// State is the one-letter process state ('R', 'S', 'Z' for a zombie, ...).
	State byte
	// PGID is the process group the process is in.
	PGID int
	// Identity is Identity's answer for it.
	Identity string
}

// Zombie reports whether the process has exited and only waits to be reaped.
func (i Info) Zombie() bool { return i.State == 'Z' || i.State == 'X' }

// Stat reads what /proc/<pid>/stat says; ok is false when the process does not exist or /proc does not
// say.
func Stat(pid int) (Info, bool) {
	boot := Boot()
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if boot == "" || err != nil {
		return Info{}, false
	}
	// The command name (field 2) is in parentheses and may hold anything, spaces and ")" included, so
	// fields are counted from the last ")": state is field 3, the process group field 5, the start time
	// field 22.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return Info{}, false
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 20 || len(fields[0]) != 1 {
		return Info{}, false
	}
	pgid, err := strconv.Atoi(fields[2])
	if err != nil {
		return Info{}, false
	}
	return Info{State: fields[0][0], PGID: pgid, Identity: boot + "/" + fields[19]}, true
}

// Identity names process pid by the boot it runs in and its start time ("<boot id>/<start>"), which
// together never repeat: a process group number can be reused once the group has ended, its leader's
// identity cannot. ok is false when the process does not exist or /proc does not say.
func Identity(pid int) (id string, ok bool) {
	info, ok := Stat(pid)
	return info.Identity, ok
}

// Boot is the kernel's id of the running boot, "" if unknown.
func Boot() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Running reports whether the process that Identity named identity still runs: the pid exists, has
// that identity (it was not reused) and has not exited.
func Running(pid int, identity string) bool {
	if pid <= 0 || identity == "" {
		return false
	}
	info, ok := Stat(pid)
	return ok && info.Identity == identity && !info.Zombie()
}

// WithEnv lists the live process group leaders of the caller's own user whose environment holds every
// one of entries ("KEY=value"), for finding a process the caller started and lost track of (it was
// killed between starting it and writing its pid down). Processes of other users are never named,
// even to root: anyone can put any variable in their own environment.
func WithEnv(entries ...string) []int {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil
	}
	uid := uint32(os.Getuid())
	var out []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if fi, err := os.Stat(d); err != nil {
			continue
		} else if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Uid != uid {
			continue
		}
		env, err := os.ReadFile(filepath.Join(d, "environ"))
		if err != nil || len(env) == 0 {
			continue
		}
		vars := bytes.Split(env, []byte{0})
		all := true
		for _, e := range entries {
			found := false
			for _, v := range vars {
				if string(v) == e {
					found = true
					break
				}
			}
			if !found {
				all = false
				break
			}
		}
		if !all {
			continue
		}
		if info, ok := Stat(pid); ok && info.PGID == pid && !info.Zombie() {
			out = append(out, pid)
		}
	}
	return out
}
