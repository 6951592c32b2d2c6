package wire

import "sync"

// DefaultReplayWindow is how many signatures a receiver remembers, the
// same as jupyter_client's digest_history_size.
const DefaultReplayWindow = 65536

// ReplayGuard remembers recently accepted signatures and refuses repeats.
// Unlike jupyter_client, which drops a random tenth when full, it forgets
// the oldest first, so a replay of a recent message is always caught.
//
// The map and the ring grow as signatures arrive instead of being sized
// for the whole window up front: a full window is about 3 MB of fresh
// memory, which every engine paid at start (≈20 ms of page faults on
// the project's VM, times 1,000 engines) although an idle engine sees a
// few messages.
type ReplayGuard struct {
	mu   sync.Mutex
	seen map[string]struct{}
	ring []string // oldest at next once len(ring) == size
	next int
	size int
}

// NewReplayGuard remembers up to n signatures.
func NewReplayGuard(n int) *ReplayGuard {
	return &ReplayGuard{seen: map[string]struct{}{}, size: max(n, 1)}
}

// Add records sig and reports whether it was new.
func (g *ReplayGuard) Add(sig string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, dup := g.seen[sig]; dup {
		return false
	}
	if len(g.ring) < g.size {
		g.ring = append(g.ring, sig)
	} else {
		delete(g.seen, g.ring[g.next])
		g.ring[g.next] = sig
		g.next = (g.next + 1) % g.size
	}
	g.seen[sig] = struct{}{}
	return true
}
