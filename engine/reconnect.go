package engine

import (
	"fmt"
	"sync"
	"time"

	"github.com/ipp-hpc/ipp/internal/wire"
)

// A controller that dies and is restarted on the same ports (ipcluster
// start --restore) is found again by every socket of the engine: ZeroMQ
// reconnects by itself, with the same identity. What it does not know is
// this engine, and what it did not receive are the replies sent while it
// was away (a ROUTER drops messages for a peer that is not connected). So
// an engine that noticed a silence of its controller, or that the
// controller asks to (reregister_request, sent by a restored controller
// to the Go engines of its table), registers again under its uuid and
// id, names the requests it still has, and once registered sends again
// the replies of its recent past. Until --controller-timeout without a
// ping, after which it gives up as before.

// Held replies: how many, how many bytes, and how far back before the
// controller's last ping they are kept (a reply sent well before a ping
// reached a live controller, but the controller's database may write
// behind).
const (
	maxHeldReplies = 1024
	maxHeldBytes   = 64 << 20
	heldMargin     = 10 * time.Second
)

// heldReply is a shell reply as it was sent.
type heldReply struct {
	parent string
	frames [][]byte
	size   int
	at     time.Time
}

// registrationRound is one registration's ready-probe phase.
type registrationRound struct {
	complete chan struct{}
	once     sync.Once
	// resend: a registration again; held replies go out once complete.
	resend bool
}

func newRound(resend bool) *registrationRound {
	return &registrationRound{complete: make(chan struct{}), resend: resend}
}

// reconnect is the engine's state for finding a restarted controller.
type reconnect struct {
	mu sync.Mutex
	// held are recent shell replies, oldest first.
	held      []heldReply
	heldBytes int
	// asking: a registration_request was sent again at asked and is not
	// answered yet.
	asking bool
	asked  time.Time
}

// hold keeps a reply that may have to be sent again.
func (e *engine) hold(parent string, frames [][]byte) {
	size := 0
	for _, f := range frames {
		size += len(f)
	}
	if size > maxHeldBytes/4 {
		return // a huge result is not kept twice; its task fails as lost
	}
	r := &e.recon
	r.mu.Lock()
	defer r.mu.Unlock()
	cut := time.Unix(0, e.lastPing.Load()).Add(-max(heldMargin, 3*e.hbPeriod))
	drop := 0
	for drop < len(r.held) && (r.held[drop].at.Before(cut) || len(r.held)-drop >= maxHeldReplies || r.heldBytes+size > maxHeldBytes) {
		r.heldBytes -= r.held[drop].size
		r.held[drop] = heldReply{}
		drop++
	}
	r.held = append(r.held[drop:], heldReply{parent: parent, frames: frames, size: size, at: time.Now()})
	r.heldBytes += size
}

// heldRequests lists the requests this engine still has: queued, being
// served, or answered recently (their replies go out again).
func (e *engine) heldRequests() []string {
	ids := e.queue.ids()
	if p := e.serving.Load(); p != nil {
		ids = append(ids, *p)
	}
	e.recon.mu.Lock()
	for _, h := range e.recon.held {
		ids = append(ids, h.parent)
	}
	e.recon.mu.Unlock()
	return ids
}

// resendHeld sends the held replies again, after a registration again
// completed: a restored controller completes the tasks they answer, and
// refuses (and logs) the ones it already had.
func (e *engine) resendHeld() {
	e.recon.mu.Lock()
	held := append([]heldReply(nil), e.recon.held...)
	e.recon.mu.Unlock()
	for _, h := range held {
		if err := e.shell.Send(h.frames); err != nil {
			e.log.Warn("cannot send a held reply again", "parent", h.parent, "err", err)
		}
	}
	if len(held) > 0 {
		e.log.Info("sent the recent replies again to the controller", "replies", len(held))
	}
}

// registerAgain sends registration_request again under this engine's uuid
// and id, unless one is waiting for its answer.
func (e *engine) registerAgain(why string) {
	r := &e.recon
	r.mu.Lock()
	if r.asking && time.Since(r.asked) < e.cfg.RegistrationTimeout {
		r.mu.Unlock()
		return
	}
	r.asking, r.asked = true, time.Now()
	r.mu.Unlock()
	// watchHeart may be asleep until a distant silence check; it must
	// follow this request's answer (or its absence) every check.
	select {
	case e.heartPoke <- struct{}{}:
	default:
	}
	id := e.id
	req := registrationRequest{UUID: e.uuid, ID: &id, ReadyProbe: true, Info: e.describeSelf(), Reregister: true, Held: e.heldRequests()}
	frames, _, err := e.sess.Build(wire.Out{MsgType: "registration_request", Content: req})
	if err == nil {
		err = e.reg.Send(frames)
	}
	if err != nil {
		e.log.Warn("cannot register again", "err", err)
		return
	}
	e.log.Info("registering again with the controller", "why", why, "id", id, "held", len(req.Held))
}

// reregistered handles the answer to registerAgain.
func (e *engine) reregistered(m *wire.Message) {
	r := &e.recon
	r.mu.Lock()
	if !r.asking {
		r.mu.Unlock()
		e.log.Debug("registration_reply without a registration in progress; ignored")
		return
	}
	r.asking = false
	r.mu.Unlock()
	var rep registrationReply
	if err := m.DecodeContent(&rep); err != nil {
		e.log.Warn("unreadable registration_reply", "err", err)
		return
	}
	switch {
	case rep.Status != "ok":
		e.log.Warn("the controller refused the registration again", "ename", rep.EName, "evalue", rep.EValue)
		return
	case rep.ID == nil || *rep.ID != e.id:
		// Our id is in every reply's metadata and picks our broadcast
		// leaf: an engine cannot change it while running. Leaving lets
		// the launcher (or the user) start a fresh engine.
		got := -1
		if rep.ID != nil {
			got = *rep.ID
		}
		e.log.Error("the restarted controller gave this engine another id; stopping", "id", e.id, "offered", got)
		e.stop(fmt.Errorf("%w: the restarted controller offered id %d instead of %d", ErrControllerLost, got, e.id))
		return
	}
	round := newRound(true)
	e.round.Store(round)
	if rep.Known {
		// The same controller, only slow: it has our routes and sends
		// registration_complete anyway. The recent replies still go
		// again (it refuses those it has): across a long silence
		// some may have been dropped on the way.
		e.log.Info("registered again with a controller that still knew this engine")
		e.markComplete("the controller still had this engine registered")
		return
	}
	e.log.Info("registered again; announcing the routes")
	go e.sendReadyProbes(round)
}

// noticeSilence runs at every check of watchHeart: a silence longer than
// a few heartbeats means the controller may be gone (or restarted without
// knowing this engine); once pings come back, register again.
func (e *engine) noticeSilence(silent time.Duration) {
	gap := max(3*e.hbPeriod, time.Second)
	r := &e.recon
	switch {
	case silent > gap:
		if !e.silenced {
			e.silenced = true
			e.log.Warn("controller silent; will register again when it is back", "silent", silent.Round(time.Millisecond))
		}
	case e.silenced && silent < e.hbPeriod+time.Second:
		e.silenced = false
		e.registerAgain("heartbeats resumed after a silence")
	default:
		r.mu.Lock()
		retry := r.asking && time.Since(r.asked) >= e.cfg.RegistrationTimeout
		if retry {
			r.asking = false
		}
		r.mu.Unlock()
		if retry {
			e.registerAgain("no answer to the last registration_request")
		}
	}
}
