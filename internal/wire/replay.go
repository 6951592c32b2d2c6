package wire

import "sync"

// DefaultReplayWindow is how many signatures a receiver remembers, the
// same as jupyter_client's digest_history_size.
const DefaultReplayWindow = 65536

// ReplayGuard remembers recently accepted signatures and refuses repeats.
// Unlike jupyter_client, which drops a random tenth when full, it forgets
// the oldest first, so a replay of a recent message is always caught.
//
// Its memory grows with the signatures it has seen, up to the window:
// every process has a Session, most see few messages (an idle engine a
// heartbeat's worth), and a window allocated up front cost each of them
// 7 MB of heap, most of an idle engine's.
type ReplayGuard struct {
	mu   sync.Mutex
	seen map[string]struct{}
	ring []string // oldest at next once full
	next int
	max  int
}

// NewReplayGuard remembers up to n signatures (at least one).
func NewReplayGuard(n int) *ReplayGuard {
	return &ReplayGuard{seen: map[string]struct{}{}, max: max(n, 1)}
}

// Add records sig and reports whether it was new.
func (g *ReplayGuard) Add(sig string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, dup := g.seen[sig]; dup {
		return false
	}
	if len(g.ring) < g.max {
		g.ring = append(g.ring, sig)
	} else {
		delete(g.seen, g.ring[g.next])
		g.ring[g.next] = sig
		g.next = (g.next + 1) % len(g.ring)
	}
	g.seen[sig] = struct{}{}
	return true
}
