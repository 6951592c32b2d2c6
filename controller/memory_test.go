package controller

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/testutil"
)

// TestReleaserSeries checks that small messages never schedule a
// release, that a burst of large ones schedules one series of releases at
// growing intervals, never two within the delay, and that the series
// ends.
func TestReleaserSeries(t *testing.T) {
	const delay = 20 * time.Millisecond
	var mu sync.Mutex
	var at []time.Time
	r := &releaser{threshold: 100, delay: delay, maxGap: 2 * delay, series: 3, release: func() {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
	}}
	small := [][]byte{make([]byte, 40), make([]byte, 59)}
	for range 1000 {
		r.note(frameBytes(small))
	}
	r.mu.Lock()
	running := r.running
	r.mu.Unlock()
	if running {
		t.Fatal("small messages scheduled a release")
	}
	big := [][]byte{make([]byte, 60), make([]byte, 40)} // 100 in all: at the threshold
	for range 1000 {
		r.note(frameBytes(big))
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return !r.running
	}, "the series did not end")
	mu.Lock()
	defer mu.Unlock()
	if len(at) != 3 || r.done.Load() != 3 {
		t.Fatalf("%d releases for one burst, want a series of 3", len(at))
	}
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < delay {
			t.Errorf("releases %d and %d only %v apart", i-1, i, gap)
		}
	}
}

// TestReleaserWaitsForQuiet checks that no release happens while large
// messages keep coming: memory given back in the middle of a stream would
// be fresh memory for its next message.
func TestReleaserWaitsForQuiet(t *testing.T) {
	const delay = 50 * time.Millisecond
	var released atomic.Int64 // unix nanoseconds of the first release
	r := &releaser{threshold: 100, delay: delay, maxGap: delay, series: 1, release: func() {
		released.CompareAndSwap(0, time.Now().UnixNano())
	}}
	big := [][]byte{make([]byte, 100)}
	// A stream of large messages for ten times the delay, one every fifth
	// of it (a ticker: the stream's pace is the point). Each note's time is
	// taken before it, so it is never later than the releaser's own.
	var notes []time.Time
	tick := time.NewTicker(delay / 5)
	defer tick.Stop()
	for end := time.Now().Add(10 * delay); time.Now().Before(end); <-tick.C {
		notes = append(notes, time.Now())
		r.note(frameBytes(big))
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return released.Load() != 0 }, "no release after the stream ended")
	// A loaded machine may stall the stream for longer than the delay, and
	// a release in that gap is right: what must hold is that the release
	// came at least delay after the large message before it.
	at := time.Unix(0, released.Load())
	var before time.Time
	for _, n := range notes {
		if n.Before(at) {
			before = n
		}
	}
	if quiet := at.Sub(before); quiet < delay {
		t.Errorf("released %v after a large message (of %d in the stream), want at least %v", quiet, len(notes), delay)
	}
}
