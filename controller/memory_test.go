package controller

import (
	"sync"
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
