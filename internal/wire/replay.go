package wire

import "sync"

// DefaultReplayWindow is how many signatures a receiver remembers, the
// same as jupyter_client's digest_history_size.
const DefaultReplayWindow = 65536

// ReplayGuard remembers recently accepted signatures and refuses repeats.
// Unlike jupyter_client, which drops a random tenth when full, it forgets
// the oldest first, so a replay of a recent message is always caught.
type ReplayGuard struct {
	mu   sync.Mutex
	seen map[string]struct{}
	ring []string
	next int
}

// NewReplayGuard remembers up to n signatures.
func NewReplayGuard(n int) *ReplayGuard {
	return &ReplayGuard{seen: make(map[string]struct{}, n), ring: make([]string, n)}
}

// Add records sig and reports whether it was new.
func (g *ReplayGuard) Add(sig string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, dup := g.seen[sig]; dup {
		return false
	}
	if old := g.ring[g.next]; old != "" {
		delete(g.seen, old)
	}
	g.ring[g.next] = sig
	g.next = (g.next + 1) % len(g.ring)
	g.seen[sig] = struct{}{}
	return true
}
