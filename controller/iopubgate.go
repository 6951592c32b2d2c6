package controller

import (
	"sync"
	"time"
)

// iopubGate holds back the IOPub output of a client's requests until the
// client's IOPub subscription has reached the controller.
//
// Why: a ZeroMQ PUB drops what it publishes before a subscriber's
// subscription arrives. The Python client connects its IOPub SUB only after
// the hub's connection_reply, at the same moment as its request sockets, and
// sends its first requests at once; on a loaded machine the request, the
// engine's work and the engine's output can all beat the subscription. The
// output is then lost, and the client waits forever for the engine's "idle"
// (wait_for_output, display_outputs, execute(block=True)). We saw it once in
// about 250 runs of a doc example under load. ipyparallel's own controller
// has the same race.
//
// How: the client-facing IOPub socket is an XPUB, which reports every
// subscription. A client that has just been sent its connection_reply is
// pending; messages whose parent header names its session are held, in
// order, until a subscription arrives for it, and then published.
//
// XPUB subscriptions do not say whose they are (a SUB sends no identity,
// and every client here comes from the same address), and matching them
// to clients by order goes wrong exactly when it matters: several clients
// connecting at once (a job array of scripts), or a client that only asks
// the hub questions and never subscribes. So the gate counts instead: the
// pending clients are released together, in order, once as many
// subscriptions have arrived since they became pending as there are
// pending clients. A client that never subscribes holds the others back
// until it is released after maxWait (then the count is checked again);
// that delays output, it never loses it. A subscription that arrives while
// no client is pending (our Go client subscribes before it asks) is kept
// as a credit for the next client for a short while. The count can still
// be fooled by a subscriber that is not a new client (a reconnecting SUB)
// arriving together with new clients: the old race for one of them, never
// a hang. Holds are bounded in clients, messages and bytes; past a bound
// the gate publishes at once, which is what it did before. A hostile key
// holder could keep clients pending and so delay (not lose) a newcomer's
// first output by up to maxWait; holding the key already lets it run code
// on the engines.
type iopubGate struct {
	// enabled is false when the transport cannot report subscriptions
	// (no XPUB): output is then published at once, as before.
	enabled bool
	mu      sync.Mutex
	now     func() time.Time
	wait    time.Duration // longest hold per client
	out     func([][]byte)

	pending   []*heldClient // in order of connection
	bySession map[string]*heldClient
	// subs counts the subscriptions that arrived while clients were
	// pending and have not released them yet.
	subs    int
	credits []time.Time // unmatched subscriptions, by arrival
	// seen remembers sessions already gated once: a client asking
	// connection_request again (our Go client does, when waiting for
	// engines) is subscribed already and must not be held a second time.
	seen      map[string]struct{}
	seenOrder []string
	timer     *time.Timer
	// matched and expired count the clients released by a subscription
	// and by maxWait, for logs and tests.
	matched, expired int
	released         func(session string, matched bool) // may be nil
}

// heldClient is one pending client and the output held for it.
type heldClient struct {
	session  string
	deadline time.Time
	held     [][][]byte
	bytes    int
}

// Bounds of the gate. A client past maxHeldMessages/maxHeldBytes has its
// output published at once, like a client past maxWait.
const (
	iopubGateMaxWait     = 5 * time.Second
	iopubGateMaxPending  = 256
	iopubGateMaxCredits  = 64
	iopubGateCreditLife  = 2 * time.Second
	iopubGateMaxSeen     = 4096
	iopubGateMaxHeldMsgs = 4096
	iopubGateMaxHeldSize = 64 << 20
)

func newIOPubGate(enabled bool, out func([][]byte)) *iopubGate {
	return &iopubGate{enabled: enabled, now: time.Now, wait: iopubGateMaxWait, out: out,
		bySession: map[string]*heldClient{}, seen: map[string]struct{}{}}
}

// connected is called before a client's connection_reply is sent.
func (g *iopubGate) connected(session string) {
	if !g.enabled || session == "" {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.seen[session]; ok {
		return
	}
	g.seen[session] = struct{}{}
	g.seenOrder = append(g.seenOrder, session)
	if len(g.seenOrder) > iopubGateMaxSeen {
		delete(g.seen, g.seenOrder[0])
		g.seenOrder = g.seenOrder[1:]
	}
	now := g.now()
	g.dropOldCredits(now)
	if len(g.credits) > 0 {
		g.credits = g.credits[1:]
		return
	}
	if len(g.pending) >= iopubGateMaxPending {
		return
	}
	c := &heldClient{session: session, deadline: now.Add(g.wait)}
	g.pending = append(g.pending, c)
	g.bySession[session] = c
	g.arm()
}

// subscribed is called for each subscription the XPUB reports.
func (g *iopubGate) subscribed() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.pending) > 0 {
		g.subs++
		g.releaseIfAllSubscribed()
		return
	}
	now := g.now()
	g.dropOldCredits(now)
	if len(g.credits) < iopubGateMaxCredits {
		g.credits = append(g.credits, now)
	}
}

// releaseIfAllSubscribed releases every pending client once there have
// been as many subscriptions as pending clients. mu is held.
func (g *iopubGate) releaseIfAllSubscribed() {
	if len(g.pending) == 0 || g.subs < len(g.pending) {
		return
	}
	for len(g.pending) > 0 {
		g.release(g.pending[0], true)
	}
	g.subs = 0
	g.arm()
}

// publish sends frames, an engine's IOPub message whose parent header
// names parentSession, or holds them for that client.
func (g *iopubGate) publish(parentSession string, frames [][]byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.bySession[parentSession]
	if c == nil {
		g.out(frames)
		return
	}
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	if len(c.held) >= iopubGateMaxHeldMsgs || c.bytes+n > iopubGateMaxHeldSize {
		g.release(c, false)
		g.subs = min(g.subs, len(g.pending))
		g.out(frames)
		return
	}
	c.held = append(c.held, frames)
	c.bytes += n
}

// release publishes what was held for c, in order, and forgets c. mu is held.
func (g *iopubGate) release(c *heldClient, matched bool) {
	for i, p := range g.pending {
		if p == c {
			g.pending = append(g.pending[:i:i], g.pending[i+1:]...)
			break
		}
	}
	delete(g.bySession, c.session)
	for _, m := range c.held {
		g.out(m)
	}
	c.held = nil
	if matched {
		g.matched++
	} else {
		g.expired++
	}
	if g.released != nil {
		g.released(c.session, matched)
	}
}

// expire releases the clients whose hold has lasted maxWait. mu is held.
func (g *iopubGate) expire() {
	now := g.now()
	for len(g.pending) > 0 && !now.Before(g.pending[0].deadline) {
		g.release(g.pending[0], false)
	}
	// The expired client may have been the one not subscribed.
	g.subs = min(g.subs, len(g.pending))
	g.releaseIfAllSubscribed()
	g.arm()
}

// arm sets the timer for the oldest pending client, if any: an idle
// controller has no timer running. mu is held.
func (g *iopubGate) arm() {
	if len(g.pending) == 0 {
		if g.timer != nil {
			g.timer.Stop()
		}
		return
	}
	d := g.pending[0].deadline.Sub(g.now())
	if g.timer == nil {
		g.timer = time.AfterFunc(d, func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.expire()
		})
		return
	}
	g.timer.Reset(d)
}

// dropOldCredits forgets subscriptions too old to belong to a client
// still to come. mu is held.
func (g *iopubGate) dropOldCredits(now time.Time) {
	i := 0
	for i < len(g.credits) && now.Sub(g.credits[i]) > iopubGateCreditLife {
		i++
	}
	g.credits = g.credits[i:]
}

// stop ends the timer; held output is published so that none is lost.
func (g *iopubGate) stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for len(g.pending) > 0 {
		g.release(g.pending[0], false)
	}
	g.subs = 0
	if g.timer != nil {
		g.timer.Stop()
	}
}
