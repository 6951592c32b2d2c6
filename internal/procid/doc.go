// Package procid names a process so that another process can later ask
// whether that very process still runs: a pid alone is not enough, since
// pids are recycled, and a pid means nothing on another host or in another
// pid namespace.
//
// An ID is the pid, the process's start time (clock ticks since boot, field
// 22 of /proc/<pid>/stat) and a host token: the kernel's boot id and the
// pid namespace. Two processes compare pids only when their host tokens are
// equal, so a connection file copied to a laptop, or read inside a
// container, never makes a stranger's process look like the controller.
//
// Only Linux has the /proc files this needs; elsewhere Self fails and the
// callers do without.
package procid
