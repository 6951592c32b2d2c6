package controller

import (
	"runtime/debug"
	"sync/atomic"
	"time"
)

// Go keeps the heap it freed mapped for minutes (the background scavenger
// returns it slowly), so a burst of large messages — five clients pushing
// 200 MB each — would leave the controller's resident size at gigabytes
// long after the messages were forwarded and dropped. libzmq's buffers are
// not the problem: glibc maps allocations that large on their own and
// unmaps them on free. So after a large message the controller asks the
// runtime to give the freed heap back, once the burst is over.

// bigMessage is the size from which a message schedules a release. Small
// messages never do: a forced collection costs a full GC cycle, and the
// normal churn of small messages is what the runtime's pacing is for.
const bigMessage = 64 << 20

// releaseDelay is how long after a large message the release happens.
// Long enough that the message has been forwarded and its copy is garbage,
// and that a burst of large messages is covered by one release; short
// enough that memory is back in seconds, not minutes.
const releaseDelay = time.Second

// releaser returns freed heap to the operating system after large
// messages, at most once per releaseDelay.
type releaser struct {
	threshold int
	delay     time.Duration
	release   func()
	// armed is set while a release is scheduled, so that a burst of large
	// messages schedules one.
	armed atomic.Bool
	// done counts releases, for tests.
	done atomic.Uint64
}

func newReleaser() *releaser {
	return &releaser{threshold: bigMessage, delay: releaseDelay, release: debug.FreeOSMemory}
}

// note looks at the size of a message the controller read; a large one
// schedules a release. It costs a few additions for a small message.
func (r *releaser) note(frames [][]byte) {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	if n >= r.threshold {
		r.schedule()
	}
}

// schedule arranges a release after delay, unless one is already due.
func (r *releaser) schedule() {
	if !r.armed.CompareAndSwap(false, true) {
		return
	}
	time.AfterFunc(r.delay, func() {
		// Disarm first: a large message arriving during the release (which
		// takes a full GC) schedules the next one instead of being missed.
		r.armed.Store(false)
		r.release()
		r.done.Add(1)
	})
}

// noteSize is called by every handler with the frames it was given.
func (c *Controller) noteSize(frames [][]byte) { c.mem.note(frames) }
