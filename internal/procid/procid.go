package procid

import "errors"

// ID identifies one process on one host. The zero ID identifies nothing.
type ID struct {
	// PID is the process id within the namespace named by Host.
	PID int
	// Start is the process's start time in clock ticks since boot; with
	// PID it tells the process from a later one given the same pid.
	Start uint64
	// Host is the kernel boot id and the pid namespace the pid belongs to.
	Host string
}

// ErrUnsupported is returned where the process table cannot be read.
var ErrUnsupported = errors.New("procid: process identities need Linux's /proc")

// Local reports whether id was taken on this host and in this pid
// namespace, so that its pid means the same process here.
func (id ID) Local() bool {
	if id.PID <= 0 || id.Start == 0 || id.Host == "" {
		return false
	}
	host, err := hostToken()
	return err == nil && host == id.Host
}

// Running reports whether the process id names is alive: it is on this
// host (Local), its pid exists, is not a zombie, and started when id says.
// A stopped process (SIGSTOP, a debugger) counts as running.
func (id ID) Running() bool {
	if !id.Local() {
		return false
	}
	state, start, err := Stat(id.PID)
	if err != nil || state == 'Z' || state == 'X' {
		return false
	}
	return start == id.Start
}
