package sched

import (
	"container/heap"
	"sort"
	"time"
)

// readyQueue holds the tasks whose time dependencies are met and which wait
// for an engine, in submission order. Removal only changes the task's state,
// which makes its entry dead (O(1) and safe while a scan is walking the
// slice); squeeze and tidy later drop dead entries.
type readyQueue struct {
	entries []readyEntry
	dead    int
}

type readyEntry struct {
	j   *job
	gen uint64
}

// live is false once the task left the queue, including when it has since
// come back (then a newer entry with the new gen stands for it).
func (e readyEntry) live() bool { return e.j.state == stateReady && e.j.gen == e.gen }

// insert places j by submission sequence: a task coming back (retry, or
// released by a dependency) regains its original turn instead of queueing
// behind tasks submitted after it.
func (q *readyQueue) insert(j *job) {
	e := readyEntry{j: j, gen: j.gen}
	n := len(q.entries)
	if n == 0 || q.entries[n-1].j.seq < j.seq {
		q.entries = append(q.entries, e)
		return
	}
	i := sort.Search(n, func(i int) bool { return q.entries[i].j.seq > j.seq })
	q.entries = append(q.entries, readyEntry{})
	copy(q.entries[i+1:], q.entries[i:])
	q.entries[i] = e
}

// left records that one live entry went dead.
func (q *readyQueue) left() { q.dead++ }

// squeeze drops the dead entries among the first n, which a scan has just
// walked. Dispatches behind a task that cannot run leave their dead entries
// there, and without this every later scan would walk them again. Live
// entries slide towards n, keeping their order, so the cost is that of the
// scan itself. It must not run while a scan is iterating over entries.
func (q *readyQueue) squeeze(n int) {
	w := n
	for r := n - 1; r >= 0; r-- {
		if q.entries[r].live() {
			w--
			q.entries[w] = q.entries[r]
		}
	}
	clear(q.entries[:w]) // drop the pointers so finished jobs can be collected
	q.entries = q.entries[w:]
	q.dead -= w
}

// tidy compacts the whole queue once dead entries, left by tasks failing
// anywhere in it, outnumber live ones. Same restriction as squeeze.
func (q *readyQueue) tidy() {
	if q.dead < 64 || q.dead*2 < len(q.entries) {
		return
	}
	kept := make([]readyEntry, 0, len(q.entries)-q.dead)
	for _, e := range q.entries {
		if e.live() {
			kept = append(kept, e)
		}
	}
	q.entries, q.dead = kept, 0
}

// timer is a deadline: either a queued task's timeout (j, valid while the
// task is still queued under gen) or the moment a dead engine's remaining
// tasks are declared lost (e).
type timer struct {
	at  time.Time
	seq uint64 // equal deadlines fire in the order they were set
	j   *job
	gen uint64
	e   *engine
}

// stale reports a timer whose reason has gone away; such timers are
// discarded lazily instead of being searched for and removed.
func (t timer) stale() bool {
	if t.e != nil {
		return t.e.load == 0
	}
	return !t.j.queued() || t.j.gen != t.gen
}

type timerHeap []timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(a, b int) bool {
	if !h[a].at.Equal(h[b].at) {
		return h[a].at.Before(h[b].at)
	}
	return h[a].seq < h[b].seq
}
func (h timerHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = timer{}
	*h = old[:len(old)-1]
	return t
}

// peek returns the earliest live timer, discarding stale ones on the way.
func (h *timerHeap) peek() (timer, bool) {
	for h.Len() > 0 {
		if t := (*h)[0]; !t.stale() {
			return t, true
		}
		heap.Pop(h)
	}
	return timer{}, false
}
