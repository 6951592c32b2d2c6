package engine

import (
	"context"
	"fmt"
	"math/bits"
	"os"
	"time"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/startgc"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// probeMode says whether and how long to send engine_ready probes.
type probeMode int

const (
	// probeUntilComplete: the controller acknowledged ready_probe in its
	// reply; probe until registration_complete.
	probeUntilComplete probeMode = iota
	// probeGuessing: the reply did not say. Probe until
	// registration_complete, or stop once the heartbeat shows a Python
	// controller is completing the registration by itself.
	probeGuessing
	// probeNever: the controller said it does not want probes.
	probeNever
)

// registrationRequest is our registration_request content: ipyparallel's
// {"uuid", ["id"]} plus the two keys of the Go convention (TEAM-NOTES),
// which Python controllers ignore.
type registrationRequest struct {
	UUID       string              `json:"uuid"`
	ID         *int                `json:"id,omitempty"`
	ReadyProbe bool                `json:"ready_probe"`
	Info       protocol.EngineInfo `json:"info"`
	// Reregister and Held: registering again after losing the
	// controller, with the requests this engine still has (reconnect.go).
	Reregister bool     `json:"reregister,omitempty"`
	Held       []string `json:"held,omitempty"`
}

// registrationReply is the part of registration_reply the engine uses.
type registrationReply struct {
	Status     string `json:"status"`
	ID         *int   `json:"id"`
	HBPeriod   *int   `json:"hb_period"`
	EName      string `json:"ename"`
	EValue     string `json:"evalue"`
	ReadyProbe *bool  `json:"ready_probe"`
	// Known is ours: in answer to a registration again, the controller
	// still had this engine registered (see reregistered).
	Known bool `json:"known"`
}

// describeSelf fills the registration metadata.
func (e *engine) describeSelf() protocol.EngineInfo {
	info := e.cfg.Meta
	info.ID = e.id
	info.UUID = e.uuid
	info.PID = os.Getpid()
	info.Language = "go"
	if info.Host == "" {
		info.Host, _ = os.Hostname()
	}
	return info
}

// register performs the registration handshake of spec §4.1 on a DEALER
// whose identity is the uuid; the socket stays open for
// registration_complete and the final unregistration_request.
func (e *engine) register(ctx context.Context) error {
	url := e.cfg.Info.URL(e.cfg.Info.Registration)
	var err error
	if e.reg, err = e.newSocket(transport.Dealer, url); err != nil {
		return err
	}
	req := registrationRequest{UUID: e.uuid, ReadyProbe: true, Info: e.describeSelf()}
	if e.cfg.RequestedID >= 0 {
		id := e.cfg.RequestedID
		req.ID = &id
		req.Info.ID = id
	}
	frames, _, err := e.sess.Build(wire.Out{MsgType: "registration_request", Content: req})
	if err != nil {
		return err
	}
	if err := e.reg.Send(frames); err != nil {
		return fmt.Errorf("engine: sending registration_request: %w", err)
	}
	e.log.Debug("registration_request sent", "url", url)

	timer := time.NewTimer(e.cfg.RegistrationTimeout)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			e.unregister()
			return ctx.Err()
		case <-timer.C:
			// As IPEngine does: withdraw the request in case it arrives late.
			e.unregister()
			return fmt.Errorf("engine: no registration_reply from the controller at %s within %s (is the controller running, and is this its current connection file?)",
				url, e.cfg.RegistrationTimeout)
		case frames, ok := <-e.reg.Messages():
			if !ok {
				return fmt.Errorf("engine: registration socket closed")
			}
			m, err := e.sess.Parse(frames)
			if err != nil {
				e.log.Warn("dropping invalid message on the registration socket", "err", err)
				continue
			}
			if m.Header.MsgType != "registration_reply" {
				e.log.Warn("unexpected message while registering", "type", m.Header.MsgType)
				continue
			}
			return e.acceptRegistration(m)
		}
	}
}

func (e *engine) acceptRegistration(m *wire.Message) error {
	var r registrationReply
	if err := m.DecodeContent(&r); err != nil {
		return fmt.Errorf("engine: unreadable registration_reply: %w", err)
	}
	if r.Status != "ok" {
		what := r.EName
		if r.EValue != "" {
			what += ": " + r.EValue
		}
		if what == "" {
			what = "status " + r.Status
		}
		return fmt.Errorf("engine: the controller refused the registration: %s", what)
	}
	if r.ID == nil || *r.ID < 0 {
		return fmt.Errorf("engine: registration_reply has no engine id")
	}
	e.id = *r.ID
	e.hbPeriod = 3 * time.Second
	if r.HBPeriod != nil && *r.HBPeriod > 0 {
		e.hbPeriod = time.Duration(*r.HBPeriod) * time.Millisecond
	} else {
		e.log.Warn("registration_reply has no hb_period; assuming 3 s")
	}
	switch {
	case r.ReadyProbe == nil:
		e.probe = probeGuessing
	case *r.ReadyProbe:
		e.probe = probeUntilComplete
	default:
		e.probe = probeNever
	}
	e.lastPing.Store(time.Now().UnixNano())
	return nil
}

// listenRegistration serves the registration socket after the handshake:
// registration_complete ends the ready probes.
func (e *engine) listenRegistration() {
	for frames := range e.reg.Messages() {
		m, err := e.sess.Parse(frames)
		if err != nil {
			e.log.Warn("dropping invalid message on the registration socket", "err", err)
			continue
		}
		switch m.Header.MsgType {
		case "registration_complete":
			var c struct {
				Status string `json:"status"`
				ID     *int   `json:"id"`
			}
			if err := m.DecodeContent(&c); err != nil || c.Status != "ok" {
				e.log.Warn("registration_complete is not ok", "content", string(m.Content), "err", err)
				continue
			}
			if c.ID != nil && *c.ID != e.id {
				e.log.Warn("registration_complete for another id", "id", *c.ID)
				continue
			}
			e.markComplete("controller confirmed the registration")
		case "registration_reply":
			e.reregistered(m)
		case "reregister_request":
			// A restored controller that has this engine in its table
			// and heard its heartbeat, but no registration yet.
			e.registerAgain("the restarted controller asked")
		default:
			e.log.Debug("ignoring message on the registration socket", "type", m.Header.MsgType)
		}
	}
}

// markComplete records that no more ready probes are needed.
func (e *engine) markComplete(why string) {
	r := e.round.Load()
	r.once.Do(func() {
		e.log.Info("registration complete", "how", why)
		close(r.complete)
		// The collector was off while the process started (startgc); the
		// trim below is its first collection.
		startgc.Restore()
		if e.cfg.TrimMemory {
			e.trimOnce.Do(func() { go trimResident(e.log) })
		}
		if r.resend {
			e.resendHeld()
		}
	})
}

// leafIdentity is the routing identity of the broadcast leaf scheduler an
// engine's shell socket connects to: "sub_scheduler_0" followed by the
// leaf index in depth binary digits, depth = log2(number of leaves).
func leafIdentity(id, leaves int) string {
	if leaves <= 1 {
		return "sub_scheduler_0"
	}
	depth := bits.Len(uint(leaves - 1))
	return fmt.Sprintf("sub_scheduler_0%0*b", depth, id%leaves)
}

// sendReadyProbes sends engine_ready through the shell socket to the
// controller's mux, task and broadcast-leaf identities and through the
// control socket to control_out, every probeInterval at first and backing
// off to probeBusyInterval, until the controller confirms with
// registration_complete (TEAM-NOTES). Probes sent before a
// connection's handshake are dropped by the ROUTER, hence the repetition.
func (e *engine) sendReadyProbes(round *registrationRound) {
	if e.probe == probeNever {
		e.markComplete("controller does not use ready probes")
		return
	}
	routes := []struct {
		sock  transport.Socket
		ident string
	}{
		{e.shell, "mux_out"},
		{e.shell, "task_out"},
		{e.shell, leafIdentity(e.id, len(e.cfg.Info.Broadcast))},
		{e.control, "control_out"},
	}
	started := time.Now()
	interval := probeInterval
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		for _, r := range routes {
			frames, _, err := e.sess.Build(wire.Out{Idents: [][]byte{[]byte(r.ident)}, MsgType: "engine_ready"})
			if err == nil {
				err = r.sock.Send(frames)
			}
			if err != nil {
				e.log.Debug("engine_ready not sent", "to", r.ident, "err", err)
			}
		}
		select {
		case <-e.closing:
			return
		case <-round.complete:
			return
		case <-timer.C:
		}
		if e.probe == probeGuessing && time.Since(started) > probeFastPhase {
			// Each probe makes a Python controller log errors; slow down
			// once a controller that answers probes would have answered.
			interval = min(2*interval, probeSlowInterval)
		} else if e.probe == probeUntilComplete {
			interval = min(2*interval, probeBusyInterval)
		}
		timer.Reset(interval)
		if e.probe == probeGuessing && e.pings.Load() >= 2 && time.Since(started) >= e.hbPeriod/2 {
			// A Python controller ignores the probes and completes the
			// registration at the heartbeat after our first pong, i.e.
			// around the second ping. From then on its task scheduler
			// counts every message from us as a finished task, so stop.
			e.markComplete("no registration_complete after two heartbeats; assuming a controller without ready probes")
			return
		}
	}
}
