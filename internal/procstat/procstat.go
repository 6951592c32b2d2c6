// Package procstat reads what a running process costs the machine while
// it does nothing: how often its threads wake up and how much memory it
// holds. It serves the idle measure of the bench and the tests that keep
// idle processes quiet (issue 10: an idle engine wakes at most 10 times a
// second and holds at most 20 MB).
//
// Wake-ups are counted as context switches, voluntary and involuntary,
// summed over every thread in /proc/<pid>/task: each time a sleeping
// thread runs again it is switched in once, whatever woke it (a timer,
// the network, the Go runtime's sysmon). Counting is exact and immune to
// the machine's load, unlike CPU time. Memory is read from
// /proc/<pid>/smaps_rollup: RSS counts shared pages in full, PSS divides
// them among the processes that map them.
package procstat

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Switches is the sum of voluntary and involuntary context switches of
// every thread pid has now. Threads that ended are not counted, so take
// both samples of a difference while the process is steady.
func Switches(pid int) (uint64, error) {
	dirs, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil {
		return 0, err
	}
	if len(dirs) == 0 {
		return 0, fmt.Errorf("procstat: no process %d", pid)
	}
	var total uint64
	for _, status := range dirs {
		data, err := os.ReadFile(status)
		if err != nil {
			continue // the thread ended meanwhile
		}
		for _, key := range []string{"voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"} {
			if v, ok := field(data, key); ok {
				total += v
			}
		}
	}
	return total, nil
}

// Memory is a process's resident memory in kB: RSS, and PSS (shared pages
// divided among their users).
type Memory struct {
	RSSKB, PSSKB uint64
}

// ReadMemory reads pid's /proc/<pid>/smaps_rollup.
func ReadMemory(pid int) (Memory, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return Memory{}, err
	}
	rss, ok1 := field(data, "Rss:")
	pss, ok2 := field(data, "Pss:")
	if !ok1 || !ok2 {
		return Memory{}, fmt.Errorf("procstat: /proc/%d/smaps_rollup has no Rss or Pss", pid)
	}
	return Memory{RSSKB: rss, PSSKB: pss}, nil
}

// Idle is what one process cost over a window.
type Idle struct {
	PID int
	// WakeupsPerSec is context switches per second over the window.
	WakeupsPerSec float64
	Memory
}

// Watch counts the wake-ups of every pid over the same window d and reads
// their memory at its end. The caller's own goroutine sleeps through the
// window, so measuring the calling process itself adds one wake-up.
func Watch(pids []int, d time.Duration) ([]Idle, error) {
	before := make([]uint64, len(pids))
	for i, pid := range pids {
		n, err := Switches(pid)
		if err != nil {
			return nil, err
		}
		before[i] = n
	}
	t0 := time.Now()
	time.Sleep(d) // the measured window, not a synchronisation
	el := time.Since(t0).Seconds()
	out := make([]Idle, len(pids))
	for i, pid := range pids {
		n, err := Switches(pid)
		if err != nil {
			return nil, err
		}
		m, err := ReadMemory(pid)
		if err != nil {
			return nil, err
		}
		woke := uint64(0)
		if n > before[i] { // fewer when threads ended meanwhile
			woke = n - before[i]
		}
		out[i] = Idle{PID: pid, WakeupsPerSec: float64(woke) / el, Memory: m}
	}
	return out, nil
}

// field finds "key <number>" at the start of a line of data.
func field(data []byte, key string) (uint64, bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, key) {
			continue
		}
		f := strings.Fields(line[len(key):])
		if len(f) == 0 {
			return 0, false
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		return v, err == nil
	}
	return 0, false
}
