package kernel

import (
	"bytes"
	"os"
	"strconv"
	"strings"
)

// leaderIdentity names process pid by the boot it runs in and its start time ("<boot id>/<start>"), which
// together never repeat: a process group number can be reused once the group has ended, its leader's
// identity cannot. ok is false when the process does not exist or /proc does not say.
func leaderIdentity(pid int) (id string, ok bool) {
	boot := currentBoot()
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if boot == "" || err != nil {
		return "", false
	}
	// The command name (field 2) is in parentheses and may hold anything, spaces and ")" included, so
	// fields are counted from the last ")": state is field 3, the start time field 22.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return "", false
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 20 {
		return "", false
	}
	return boot + "/" + fields[19], true
}

// currentBoot is the kernel's id of the running boot, "" if unknown.
func currentBoot() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
