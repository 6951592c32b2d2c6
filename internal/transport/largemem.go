package transport

import (
	"runtime"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// collectBefore is the buffer size from which copyLarge may collect
// garbage before it allocates. It was 64 MB until session 17: 10 MB
// pulls into a client holding 1 GB then landed in fresh memory every
// time (the collector waits for the heap to double), ~1,300 faults per
// pull, and the bench had us at half ipyparallel's speed at 10 MB. At
// 8 MB the probe's client faults went to ~0 and the 10 MB medians from
// 0.059-0.082 s to 0.034-0.049 s; 100 MB did not move. Smaller buffers
// are left to the pacer: their fill costs less than a collection.
const collectBefore = 8 << 20

// defaultFreshPerMB is what filling a MB of fresh memory is taken to cost
// until copyLarge has timed a copy into fresh memory itself: between bare
// metal with huge pages (~0.1 ms) and the VMs measured (~3 ms,
// docs/large-data.md).
const defaultFreshPerMB = time.Millisecond

// retryAfter is how many large buffers copyLarge lets pass without a
// collection after one that cost more than it would save, before it tries
// again (the heap may have shrunk since).
const retryAfter = 8

// largeMem is what copyLarge knows of the large buffers it made.
var largeMem struct {
	mu         sync.Mutex
	since      int64         // bytes made since copyLarge last collected
	last       time.Duration // how long that collection took
	skipped    int           // buffers let pass since one over budget
	freshPerMB time.Duration // a copy into fresh memory, per MB (0: not timed yet)
}

// collect is runtime.GC; tests replace it.
var collect = runtime.GC

// copyLarge returns a copy of src in memory advised for huge pages, for a
// message buffer. From collectBefore on, when at least len(src) bytes of
// large buffers were made since its last collection, it collects first.
// Large message buffers are usually garbage by the next large message (a
// push's copy once sent, a pulled value once read, a value a push
// replaced), but the collector's pacing waits until the heap doubles: in
// a process holding 1 GB that is ten 100 MB messages, each landing in
// memory the process never touched, whose pages the host supplies one
// fault at a time. Collected first, the new buffer takes the old one's
// memory.
//
// A collection is worth it while it costs less than half of filling the
// buffer's fresh memory would. That cost is timed on the copies that went
// into fresh memory (the first large one always does), so the decision
// holds on a VM where a fresh MB costs milliseconds and on bare metal with
// huge pages where it costs a tenth of one; a heap full of pointers, whose
// mark takes longer, stops the collections there. Times are wall-clock, so
// a loaded machine inflates both sides alike.
func copyLarge(src []byte) []byte {
	n := len(src)
	collected := false
	if n >= collectBefore {
		collected = maybeCollect(n)
	}
	t := time.Now()
	dst := copyUnzeroed(src)
	if n >= collectBefore && !collected {
		noteFresh(n, time.Since(t))
	}
	return dst
}

// maybeCollect is copyLarge's decision, then its accounting of n; it
// reports whether it collected.
func maybeCollect(n int) bool {
	largeMem.mu.Lock()
	defer largeMem.mu.Unlock()
	perMB := largeMem.freshPerMB
	if perMB == 0 {
		perMB = defaultFreshPerMB
	}
	saves := time.Duration(n>>20) * perMB
	collected := false
	switch {
	case largeMem.since < int64(n):
	case 2*largeMem.last > saves && largeMem.skipped < retryAfter:
		largeMem.skipped++
	default:
		t := time.Now()
		collect()
		largeMem.last, largeMem.since, largeMem.skipped = time.Since(t), 0, 0
		collected = true
	}
	largeMem.since += int64(n)
	return collected
}

// noteFresh records a copy of n bytes into memory made without a
// collection first, mostly fresh memory, that took d: the cost per MB is
// the mean of the last one and this one, so one slow copy moves it only
// halfway.
func noteFresh(n int, d time.Duration) {
	per := d / time.Duration(max(n>>20, 1))
	largeMem.mu.Lock()
	if largeMem.freshPerMB == 0 {
		largeMem.freshPerMB = per
	} else {
		largeMem.freshPerMB = (largeMem.freshPerMB + per) / 2
	}
	largeMem.mu.Unlock()
}

// copyUnzeroed returns a copy of src in new memory that the runtime did
// not clear first, advised for huge pages before the copy fills it. make
// would clear it: 100 MB of memclr (~20 ms on this VM) that the copy then
// overwrites, and on fresh memory that clearing is what faults the pages
// in, 4 KiB at a time, before the advice could apply.
//
// Go exports no allocation without clearing, but strings.Builder.Grow
// makes one (a Builder's buffer is written before it is read). So src's
// first byte goes in through the Builder, which shows where its buffer
// is, and the rest is copied into that buffer's reserved capacity. The
// buffer is an ordinary heap object, collected as usual; the string the
// Builder returned is dropped here, so nothing sees its bytes change.
func copyUnzeroed(src []byte) []byte {
	n := len(src)
	if n == 0 {
		return []byte{}
	}
	var b strings.Builder
	b.Grow(n)
	if b.Cap() < n {
		// Not a Builder as documented; take the cleared way.
		dst := make([]byte, n)
		copyPreemptible(dst, src)
		return dst
	}
	b.WriteByte(src[0])
	dst := unsafe.Slice(unsafe.StringData(b.String()), n)
	adviseHugePages(dst)
	copyPreemptible(dst[1:], src[1:])
	return dst
}
