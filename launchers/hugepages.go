package launchers

import "strings"

// tunablesVar is glibc's environment variable for its run-time tunables.
const tunablesVar = "GLIBC_TUNABLES"

// hugeTunable makes glibc's malloc ask for transparent huge pages
// (MADV_HUGEPAGE) on the memory it maps (glibc 2.35 and later; older ones
// ignore it). libzmq takes every message over 33 bytes from malloc, fresh
// for each large one, and on the VMs we measured the first touch of each
// 4 KiB page costs 11-14 µs: a 100 MB frame then spends ~0.3 s in page
// faults for a copy that itself takes ~6 ms. With huge pages it faults
// once per 2 MiB. See docs/performance.md.
const hugeTunable = "glibc.malloc.hugetlb"

// withHugePages returns the GLIBC_TUNABLES value for a process we start:
// cur (the value it would inherit or was given) with glibc.malloc.hugetlb=1
// added, unless cur sets glibc.malloc.hugetlb already, so that a user can
// turn it off (=0) or choose real huge pages (=2) for every process at once.
func withHugePages(cur string) string {
	for _, t := range strings.Split(cur, ":") {
		if k, _, _ := strings.Cut(t, "="); k == hugeTunable {
			return cur
		}
	}
	if cur == "" {
		return hugeTunable + "=1"
	}
	return cur + ":" + hugeTunable + "=1"
}
