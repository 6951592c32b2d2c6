package controller

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/testutil"
)

// TestReleaserCoalesces checks that small messages never schedule a
// release and that a burst of large ones schedules exactly one.
func TestReleaserCoalesces(t *testing.T) {
	var released atomic.Int32
	r := &releaser{threshold: 100, delay: 50 * time.Millisecond, release: func() { released.Add(1) }}
	small := [][]byte{make([]byte, 40), make([]byte, 59)}
	for range 1000 {
		r.note(small)
	}
	big := [][]byte{make([]byte, 60), make([]byte, 40)} // 100 in all: at the threshold
	for range 1000 {
		r.note(big)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return r.done.Load() == 1 }, "no release after a burst")
	if n := released.Load(); n != 1 {
		t.Fatalf("%d releases for one burst, want 1", n)
	}
	// Once it ran, the next large message schedules the next release.
	r.note(big)
	testutil.Eventually(t, 10*time.Second, func() bool { return r.done.Load() == 2 }, "no release after the second burst")
	for range 1000 {
		r.note(small)
	}
	if r.armed.Load() {
		t.Fatal("small messages armed a release")
	}
	if n := released.Load(); n != 2 {
		t.Fatalf("%d releases, want 2", n)
	}
}
