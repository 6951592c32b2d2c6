package procid

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Stat returns the state letter (field 3) and start time (field 22, clock
// ticks since boot) of pid from /proc/<pid>/stat.
func Stat(pid int) (state byte, start uint64, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	fields := strings.Fields(string(data[i+1:]))
	// fields[0] is field 3 (state); the start time is field 22.
	if len(fields) < 20 || fields[0] == "" {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	start, err = strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return fields[0][0], start, nil
}

// Self is the calling process's ID.
func Self() (ID, error) {
	host, err := hostToken()
	if err != nil {
		return ID{}, err
	}
	pid := os.Getpid()
	_, start, err := Stat(pid)
	if err != nil {
		return ID{}, err
	}
	return ID{PID: pid, Start: start, Host: host}, nil
}

// The host token cannot change while a process runs, so it is read once.
var host struct {
	once  sync.Once
	token string
	err   error
}

// hostToken is "<boot id>/<pid namespace>", for instance
// "3f1c...-...-9e2a/pid:[4026531836]".
func hostToken() (string, error) {
	host.once.Do(func() {
		boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
		if err != nil {
			host.err = fmt.Errorf("procid: %w", err)
			return
		}
		ns, err := os.Readlink("/proc/self/ns/pid")
		if err != nil {
			host.err = fmt.Errorf("procid: %w", err)
			return
		}
		host.token = strings.TrimSpace(string(boot)) + "/" + ns
	})
	return host.token, host.err
}
