package controller

import (
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipp-hpc/ipp/internal/transport"
)

// Go keeps the heap it freed mapped for minutes (the background scavenger
// returns it slowly), so a burst of large messages — five clients pushing
// 200 MB each — would leave the controller's resident size at gigabytes
// long after the messages were forwarded and dropped. libzmq's buffers
// stay too: transport has glibc keep freed message memory, because memory
// given back costs far more to touch again (transport.KeepFreedEnv). So
// after a large message the controller gives both heaps back, once the
// burst is over.

// bigMessage is the size from which a message schedules a release. Small
// messages never do: a forced collection costs a full GC cycle, and the
// normal churn of small messages is what the runtime's pacing is for.
const bigMessage = 64 << 20

// releaseDelay is how long after a large message the first release
// happens. Long enough that a burst of large messages is covered by one
// release; short enough that memory is back in seconds, not minutes.
const releaseDelay = time.Second

// releaseSeries is how many releases follow the last large message, the
// gaps growing from releaseDelay to at most maxReleaseGap (1, 2, 4, 4 s):
// a large message is noted as it arrives, and one that is still being
// forwarded (copying 200 MB into libzmq takes a second or two on a loaded
// node), or queued behind others, is only garbage at a later release.
// Four forced collections per burst of large messages cost nothing next
// to copying them.
const releaseSeries = 4

// maxReleaseGap bounds the wait between two releases of a series.
const maxReleaseGap = 4 * releaseDelay

// releaser returns freed heap to the operating system after large
// messages: a series of releases at growing intervals, never two within
// delay of each other, the first once no large message came for delay,
// and none at all while only small messages come.
type releaser struct {
	threshold int
	delay     time.Duration
	maxGap    time.Duration
	series    int
	release   func()

	mu      sync.Mutex
	left    int           // releases left in the current series
	running bool          // a release is scheduled or under way
	gap     time.Duration // wait before the next release after the one due
	last    time.Time     // when the latest large message came
	// done counts releases, for tests.
	done atomic.Uint64
}

func newReleaser() *releaser {
	return &releaser{threshold: bigMessage, delay: releaseDelay, maxGap: maxReleaseGap, series: releaseSeries,
		release: releaseMemory}
}

// releaseMemory gives back both heaps a large message lands in: Go's, and
// the C heap libzmq's buffers come from, which transport keeps warm for
// the next large message (transport.KeepFreedEnv): within a burst the
// controller reuses it, after the burst it lets it go.
func releaseMemory() {
	debug.FreeOSMemory()
	transport.ReleaseFreedMemory()
}

// note looks at the size of a message the controller read; a large one
// schedules releases. It costs a few additions for a small message.
func (r *releaser) note(n int64) {
	if n >= int64(r.threshold) {
		r.schedule()
	}
}

// schedule starts a series of releases, or restarts the current one.
func (r *releaser) schedule() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.left = r.series
	r.gap = r.delay
	r.last = time.Now()
	if !r.running {
		r.running = true
		time.AfterFunc(r.delay, r.fire)
	}
}

// fire releases once a burst is over, then schedules the next release of
// the series. While large messages still come (one within delay), it
// waits instead: memory given back in the middle of a stream of 100 MB
// pushes is fresh memory for the next one, which costs far more to fill
// than the copy itself (docs/large-data.md).
func (r *releaser) fire() {
	r.mu.Lock()
	if wait := r.delay - time.Since(r.last); wait > 0 {
		r.mu.Unlock()
		time.AfterFunc(wait, r.fire)
		return
	}
	r.mu.Unlock()
	r.release()
	r.done.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.left--
	if r.left <= 0 {
		r.running = false
		return
	}
	r.gap = min(2*r.gap, r.maxGap)
	time.AfterFunc(r.gap, r.fire)
}

// received is called by every handler first, with the frames it was
// given: it notes their size for the releaser and returns it, so that
// handlers checking limits do not add the frames up again.
func (c *Controller) received(frames [][]byte) int64 {
	n := frameBytes(frames)
	c.mem.note(n)
	return n
}
