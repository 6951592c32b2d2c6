package controller

import (
	"time"

	"github.com/ipp-hpc/ipp/internal/transport"
)

// Fast death detection. Heartbeats alone take HeartbeatMisses periods (30 s
// by default) to notice an engine that was killed, while its TCP
// connections close at once. The transport reports that a connection to
// the heartbeat port closed, but not whose (libzmq's monitor gives a file
// descriptor, never a routing identity), so the hub starts a check round:
// it pings every checkEvery, and after checkAfter declares dead the
// engines that answered none of those pings, provided the heartbeat port
// has that many fewer connections than there are engines. The proviso keeps a slow but
// connected engine alive when another one left cleanly, and attackers who
// hold connections open can only delay detection (back to heartbeats),
// never cause a false one. A round that cannot decide gives up after
// checkGiveUp and leaves the rest to heartbeats.
const (
	checkEvery  = 100 * time.Millisecond
	checkAfter  = 500 * time.Millisecond
	checkGiveUp = 3 * time.Second
)

// checkRound is a check round in progress; zero when none is.
type checkRound struct {
	start time.Time
}

// connectionEvent notes a connection event of the heartbeat port; a
// closed connection starts a check round. Called from serveHeartbeat.
func (h *hub) connectionEvent(ev transport.Event) {
	h.mu.Lock()
	h.hbOpen = ev.Open
	start := ev.Kind == transport.EventDisconnected && h.round.start.IsZero()
	if start {
		h.round.start = time.Now()
	}
	h.mu.Unlock()
	if start {
		h.ping()
	}
}

// checkTick runs every checkEvery while a round is on: ping, and decide
// once checkAfter has passed.
func (h *hub) checkTick(now time.Time) {
	h.mu.Lock()
	start := h.round.start
	if start.IsZero() {
		h.mu.Unlock()
		return
	}
	var dead []int
	if now.Sub(start) >= checkAfter {
		// Every engine, registering or registered, holds (or is about to
		// hold) one heartbeat connection; fewer open connections than
		// engines means that many have lost theirs.
		var silent []int
		for id, e := range h.engines {
			if e.state == stateRegistered && e.lastPong.Before(start) {
				silent = append(silent, id)
			}
		}
		lost := len(h.engines) - h.hbOpen
		switch {
		case len(silent) == 0:
			h.round = checkRound{}
		case len(silent) <= lost:
			dead = silent
			h.round = checkRound{}
		case now.Sub(start) >= checkGiveUp:
			h.round = checkRound{}
		}
	}
	on := !h.round.start.IsZero()
	h.mu.Unlock()
	for _, id := range dead {
		h.unregister(id, "its connection closed and it answered no heartbeat for "+checkAfter.String())
	}
	if on {
		h.ping()
	}
}

// events returns the heartbeat port's connection events, or nil when the
// transport has none (then only heartbeats detect deaths).
func (h *hub) events() <-chan transport.Event {
	if es, ok := h.c.hbPong.(transport.EventSource); ok {
		return es.Events()
	}
	return nil
}
