package launchers

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ipp-hpc/ipp/internal/procid"
)

func procStartTime(pid int) (uint64, error) {
	_, start, err := procid.Stat(pid)
	return start, err
}

// procCmdline is the argv of pid.
func procCmdline(pid int) ([]string, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil, err
	}
	data = bytes.TrimRight(data, "\x00")
	if len(data) == 0 {
		return nil, nil
	}
	return strings.Split(string(data), "\x00"), nil
}

// procLive is false for a zombie, for a vanished pid, and for a pid whose
// start time differs from start (when start is non-zero: it was recycled).
func procLive(pid int, start uint64) bool {
	state, st, err := procid.Stat(pid)
	if err != nil {
		// Gone (ENOENT, or ESRCH while it is being reaped) unless we
		// merely may not look.
		return os.IsPermission(err)
	}
	if state == 'Z' || state == 'X' {
		return false
	}
	return start == 0 || st == start
}

// procParent is the parent pid of pid (field 4 of /proc/<pid>/stat).
func procParent(pid int) (int, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 2 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return strconv.Atoi(fields[1])
}

// procDescendantsOf lists every live descendant (children,
// grandchildren, ...) of each of pids, by walking the parent links of one
// scan of /proc. Processes already reparented elsewhere (their parent
// exited) are not found.
func procDescendantsOf(pids []int) [][]int {
	children := parentLinks.get()
	out := make([][]int, len(pids))
	for i, pid := range pids {
		out[i] = descendantsIn(children, pid)
	}
	return out
}

// descendantsIn walks children (parent → children links) down from pid.
func descendantsIn(children map[int][]int, pid int) []int {
	var out []int
	queue := []int{pid}
	seen := map[int]bool{pid: true}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, c := range children[cur] {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
				queue = append(queue, c)
			}
		}
	}
	return out
}

// parentLinks is the process table's parent links, shared by concurrent
// callers. Stopping N engines asks for the descendants of each, all at
// once: one scan of /proc per engine made a stop of 1,000 engines read
// /proc/<pid>/stat about a million times, and the last SIGTERM left
// seconds after the first.
var parentLinks procTable

type procTable struct {
	mu       sync.Mutex
	at       time.Time // when the scan in children began
	children map[int][]int
}

// get returns the children of every process from a scan that began after
// the call did, so nothing is older than without sharing. Callers queued
// behind a scan share the next one: a burst of N calls costs two scans.
func (t *procTable) get() map[int][]int {
	asked := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.children != nil && !t.at.Before(asked) {
		return t.children
	}
	at := time.Now()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if parent, err := procParent(p); err == nil {
			children[parent] = append(children[parent], p)
		}
	}
	t.at, t.children = at, children
	return children
}
