package transport

import (
	"runtime"
	"testing"
	"time"
)

// withCollect runs the test with a fake collection that takes cost and
// counts its calls, and with copyLarge's memory of earlier buffers reset.
func withCollect(t *testing.T, cost time.Duration) *int {
	t.Helper()
	calls := new(int)
	old := collect
	collect = func() {
		*calls++
		time.Sleep(cost) // copyLarge only reads the time it took
	}
	reset := func() {
		largeMem.mu.Lock()
		largeMem.since, largeMem.last, largeMem.skipped, largeMem.freshPerMB = 0, 0, 0, 0
		largeMem.mu.Unlock()
	}
	reset()
	t.Cleanup(func() {
		collect = old
		reset()
	})
	return calls
}

// A large buffer collects first once as much was made since the last
// collection, and small ones never do.
func TestCopyLargeCollectsBeforeReuse(t *testing.T) {
	calls := withCollect(t, 0)
	for range 4 {
		copyLarge(make([]byte, 1<<20))
	}
	if *calls != 0 || largeMem.since != 0 {
		t.Fatalf("1 MB buffers collected %d times and counted %d bytes", *calls, largeMem.since)
	}
	maybeCollect(100 << 20) // nothing made before it: no garbage to take
	if *calls != 0 {
		t.Fatalf("the first large buffer collected")
	}
	maybeCollect(100 << 20)
	if *calls != 1 {
		t.Fatalf("the second 100 MB buffer collected %d times, want 1", *calls)
	}
	maybeCollect(200 << 20) // only 100 MB made since: it cannot all be reused
	if *calls != 1 {
		t.Fatalf("a 200 MB buffer after 100 MB collected")
	}
	maybeCollect(200 << 20)
	if *calls != 2 {
		t.Fatalf("200 MB after 300 MB did not collect")
	}
}

// A collection that cost more than half of what filling fresh memory
// would stops copyLarge collecting for retryAfter large buffers, then it
// tries again; the same collection on a machine where fresh memory costs
// more goes on.
func TestCopyLargeSkipsCostlyCollections(t *testing.T) {
	n := 64 << 20
	calls := withCollect(t, 20*time.Millisecond)
	largeMem.freshPerMB = 100 * time.Microsecond // 64 MB fresh: 6.4 ms
	maybeCollect(n)
	maybeCollect(n) // collects, and is found too slow
	if *calls != 1 {
		t.Fatalf("collected %d times, want 1", *calls)
	}
	for range retryAfter {
		maybeCollect(n)
	}
	if *calls != 1 {
		t.Fatalf("collected again within %d buffers of a costly collection (%d calls)", retryAfter, *calls)
	}
	maybeCollect(n)
	if *calls != 2 {
		t.Fatalf("did not try again after %d buffers", retryAfter)
	}
	largeMem.freshPerMB = 3 * time.Millisecond // 64 MB fresh: 192 ms
	maybeCollect(n)
	if *calls != 3 {
		t.Fatalf("a 20 ms collection was skipped where fresh memory costs 192 ms")
	}
}

// The first large copy goes into fresh memory and times it, so the
// decision rests on this machine's cost, not the default.
func TestCopyLargeTimesFreshMemory(t *testing.T) {
	withCollect(t, 0)
	src := make([]byte, collectBefore)
	copyLarge(src)
	if largeMem.freshPerMB <= 0 {
		t.Fatalf("no cost recorded after a %d MB copy into fresh memory", collectBefore>>20)
	}
	// A slow copy moves the estimate halfway, not all the way.
	before := largeMem.freshPerMB
	noteFresh(collectBefore, time.Duration(collectBefore>>20)*(before+10*time.Millisecond))
	if got, want := largeMem.freshPerMB, before+5*time.Millisecond; got != want {
		t.Fatalf("cost after one slow copy %v, want %v", got, want)
	}
}

// The real thing: a buffer of collectBefore bytes made after another, now garbage, takes
// its memory instead of growing the heap.
func TestCopyLargeReusesGarbage(t *testing.T) {
	withCollect(t, 0)
	collect = runtime.GC
	largeMem.freshPerMB = time.Second // whatever the collection costs here
	src := make([]byte, collectBefore)
	var ms runtime.MemStats
	keep := copyLarge(src)
	keep[0] = 1
	keep = nil
	_ = keep
	runtime.ReadMemStats(&ms)
	before := ms.HeapSys - ms.HeapReleased
	for range 4 {
		b := copyLarge(src)
		b[len(b)-1] = 1
	}
	runtime.ReadMemStats(&ms)
	after := ms.HeapSys - ms.HeapReleased
	// Four more buffers without collections would add 256 MB; one
	// buffer's worth of slack allows for the collector's own timing.
	if grew := int64(after) - int64(before); grew > collectBefore {
		t.Fatalf("the heap grew by %d MB over four 64 MB buffers, each made after the last became garbage", grew>>20)
	}
}
