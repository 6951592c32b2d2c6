package transport

import (
	"runtime"
	"sync"
	"time"
)

// collectBefore is the buffer size from which makeLarge may collect
// garbage before it allocates.
const collectBefore = 64 << 20

// collectBudgetPerMB is what a collection may cost, per MB about to be
// allocated, for makeLarge to keep collecting. Filling fresh memory costs
// ~3 ms per MB on the VMs measured (docs/large-data.md) and ~0.25 ms on
// bare metal; a tenth of a millisecond keeps the collection cheaper than
// what it saves on both.
const collectBudgetPerMB = 100 * time.Microsecond

// retryAfter is how many large allocations makeLarge lets pass without a
// collection after one that cost more than its budget, before it tries
// again (the heap may have shrunk since).
const retryAfter = 8

// largeMem is what makeLarge knows of the large buffers it made.
var largeMem struct {
	mu      sync.Mutex
	since   int64         // bytes made since makeLarge last collected
	last    time.Duration // how long that collection took
	skipped int           // allocations let pass since one over budget
}

// collect is runtime.GC; tests replace it.
var collect = runtime.GC

// makeLarge returns n fresh bytes advised for huge pages, for a message
// buffer. From collectBefore on, when it made at least n bytes since its
// last collection, it collects first. Large message buffers are usually
// garbage by the next large message (a push's copy once sent, a pulled
// value once read, a value a push replaced), but the collector's pacing
// waits until the heap doubles: in a process holding 1 GB that is ten
// 100 MB messages, each landing in memory the process never touched,
// whose pages the host supplies one fault at a time. Collected first, the
// new buffer takes the old one's memory. A collection is skipped while
// the last one cost more than collectBudgetPerMB (a large heap full of
// pointers), since it would then cost more than it saves.
func makeLarge(n int) []byte {
	if n >= collectBefore {
		maybeCollect(n)
	}
	b := make([]byte, n)
	adviseHugePages(b)
	return b
}

// maybeCollect is makeLarge's decision, then its accounting of n.
func maybeCollect(n int) {
	largeMem.mu.Lock()
	defer largeMem.mu.Unlock()
	budget := time.Duration(n>>20) * collectBudgetPerMB
	switch {
	case largeMem.since < int64(n):
	case largeMem.last > budget && largeMem.skipped < retryAfter:
		largeMem.skipped++
	default:
		t := time.Now()
		collect()
		largeMem.last, largeMem.since, largeMem.skipped = time.Since(t), 0, 0
	}
	largeMem.since += int64(n)
}
