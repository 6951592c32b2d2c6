//go:build linux && cgo && !nolibzmq

package transport

/*
#define _GNU_SOURCE
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

// IPP_DEFAULT_KEEP_MB is the bound when IPP_KEEP_FREED_MB is unset
// (keepmem.go explains the variable).
#define IPP_DEFAULT_KEEP_MB 1024

// ipp_keep_freed_rc is what ipp_keep_freed did: 0 nothing asked (or done),
// 1 done, negative which setting glibc refused, -4 not glibc.
// ipp_keep_freed_bad is set when IPP_KEEP_FREED_MB was not a number of MB
// and the default was used instead.
static int ipp_keep_freed_rc, ipp_keep_freed_bad;

// ipp_keep_freed makes glibc's malloc serve every allocation from its main
// heap and keep up to keep bytes of freed memory at its top instead of
// returning it to the kernel. One arena for every thread, because a
// thread's own arena maps any chunk over 64 MB on its own whatever
// M_MMAP_MAX says, and libzmq receives in its I/O thread.
//
// It runs as a constructor, before the Go runtime starts: its threads take
// arenas of their own as they start (cgo allocates in each), and
// M_ARENA_MAX set later does not take them back.
__attribute__((constructor)) static void ipp_keep_freed(void) {
	const char *v = getenv("IPP_KEEP_FREED_MB");
	long mb = IPP_DEFAULT_KEEP_MB;
	if (v && *v) {
		char *end;
		long n = strtol(v, &end, 10);
		if (*end == 0 && n >= 0) mb = n;
		else ipp_keep_freed_bad = 1;
	}
	if (mb == 0) return;
	if (mb > 2047) mb = 2047;
#ifdef __GLIBC__
	if (mallopt(M_ARENA_MAX, 1) != 1) { ipp_keep_freed_rc = -1; return; }
	if (mallopt(M_MMAP_MAX, 0) != 1) { ipp_keep_freed_rc = -2; return; }
	if (mallopt(M_TRIM_THRESHOLD, (int)(mb << 20)) != 1) { ipp_keep_freed_rc = -3; return; }
	ipp_keep_freed_rc = 1;
#else
	ipp_keep_freed_rc = -4;
#endif
}

static int ipp_keep_freed_result(int *bad) { *bad = ipp_keep_freed_bad; return ipp_keep_freed_rc; }

static long ipp_malloc_faults(size_t n) {
	struct rusage a, b;
	getrusage(RUSAGE_THREAD, &a);
	char *p = malloc(n);
	if (!p) return -1;
	memset(p, 1, n);
	__asm__ volatile("" : : "r"(p) : "memory");
	free(p);
	getrusage(RUSAGE_THREAD, &b);
	return b.ru_minflt - a.ru_minflt;
}

static void ipp_release_freed(void) {
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}
*/
import "C"

import "fmt"

// keepFreedResult says what the constructor above did with KeepFreedEnv:
// whether glibc now keeps freed message memory, why not if it could not,
// and whether the variable's value was unusable (the default applied).
func keepFreedResult() (kept, badValue bool, err error) {
	var bad C.int
	rc := C.ipp_keep_freed_result(&bad)
	kept, err = keepFreedOutcome(rc)
	return kept, bad != 0, err
}

func keepFreedOutcome(rc C.int) (bool, error) {
	switch rc {
	case 0:
		return false, nil
	case 1:
		return true, nil
	case -4:
		return false, fmt.Errorf("malloc is not glibc's: freed message buffers go back to the kernel")
	default:
		return false, fmt.Errorf("glibc refused mallopt setting %d: freed message buffers go back to the kernel", -rc)
	}
}

// ReleaseFreedMemory returns the freed message memory glibc keeps (see
// KeepFreedEnv) to the kernel, holes between live chunks included. A
// process that must not sit on memory after a burst of large messages (the
// controller, on a shared login node) calls it once the burst is over.
func ReleaseFreedMemory() { C.ipp_release_freed() }

// mallocFaults mallocs n bytes, writes every page, frees them and returns
// the minor page faults the calling thread took meanwhile: how tests see
// whether glibc handed out memory it kept or fresh memory. Call it with
// the goroutine locked to its thread.
func mallocFaults(n int) int64 { return int64(C.ipp_malloc_faults(C.size_t(n))) }
