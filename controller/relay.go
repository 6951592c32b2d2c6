package controller

import (
	"fmt"
	"sync"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// relay forwards between a client-facing and an engine-facing ROUTER by
// swapping the first two routing frames, as ipyparallel's MonitoredQueue
// does. Everything from the delimiter on travels byte for byte, but only
// after it is verified: a request must be signed and new, a reply must be
// signed and come from the engine its request went to, once.
//
// The mux relay's sockets hold large buffer frames in libzmq's memory
// (transport.Options.HoldBuffers): a 100 MB push or pull crosses the
// controller without a copy. run releases them after the handler; the
// task records copy the buffers they keep (records.ownBuffers), and
// nothing else keeps a frame.
type relay struct {
	c       *Controller
	hub     *hub
	name    string
	in, out transport.Socket
	// track keeps task records and queue counts (the mux relay does; the
	// control relay does not, like ipyparallel's hub).
	track bool
	route int
	// Ports as deliver names them, for logs.
	inPort, outPort string

	// asked maps the msg_id of each control request in flight to where it
	// went (the mux relay uses the task records instead). Bounded: when
	// full, the oldest requests are forgotten, and a late reply to one of
	// them is refused like any unexpected reply.
	mu    sync.Mutex
	asked map[string]asked
	order []string
}

// asked is where a request went and who sent it.
type asked struct {
	engine string
	client string // routing identity of the requesting client
}

// maxAsked bounds the control requests a relay remembers.
const maxAsked = 65536

func newRelay(c *Controller, h *hub, name string, in, out transport.Socket, track bool) *relay {
	route := routeMux
	if name == "control" {
		route = routeControl
	}
	return &relay{c: c, hub: h, name: name, in: in, out: out, track: track, route: route,
		inPort: name + "_in", outPort: name + "_out", asked: map[string]asked{}}
}

func (r *relay) run() {
	fromClients, fromEngines := r.in.Messages(), r.out.Messages()
	for fromClients != nil || fromEngines != nil {
		select {
		case frames, ok := <-fromClients:
			if !ok {
				fromClients = nil
				continue
			}
			held := transport.HeldIn(frames)
			r.toEngine(frames)
			transport.Release(held)
		case frames, ok := <-fromEngines:
			if !ok {
				fromEngines = nil
				continue
			}
			held := transport.HeldIn(frames)
			r.toClient(frames)
			transport.Release(held)
		}
	}
}

// toEngine handles [client id, engine uuid, DELIM, ...], and on the mux
// [client id, DELIM, ...] fan-outs (fanout.go).
func (r *relay) toEngine(frames [][]byte) {
	n := r.c.received(frames)
	if r.track && len(frames) >= 2 && string(frames[1]) == wire.Delimiter {
		r.fanOut(frames, n)
		return
	}
	if len(frames) < 3 || string(frames[1]) == wire.Delimiter {
		var peer []byte
		if len(frames) > 0 {
			peer = frames[0]
		}
		r.c.rejects.reject(r.inPort, peer, "request without a target engine")
		return
	}
	msg := r.c.verify(r.inPort, frames)
	if msg == nil {
		return
	}
	if len(msg.Idents) != 2 {
		r.c.rejects.reject(r.inPort, frames[0], "request with unexpected routing")
		return
	}
	client, target := frames[0], frames[1]
	frames[0], frames[1] = frames[1], frames[0]
	r.forward(client, target, msg, n, frames)
}

// forward books a verified request from client for the engine target and
// sends out ([target, client, DELIM, ...]), or answers why it cannot. n
// is the size of the message as received.
func (r *relay) forward(client, target []byte, msg *wire.Message, n int64, out [][]byte) {
	uuid := string(target)
	if _, ok := r.hub.liveID(uuid); !ok {
		if r.track && r.hub.departedRecently(uuid) {
			// Sent before the client heard of the engine's death: the
			// unregistration notification makes it fail the request
			// itself, and an answer from here would reach it as a stale
			// result. Control requests are still answered: clients wait
			// for those replies and do not fail them on the notification.
			r.c.log.Warn("request for an engine that just died dropped; the client fails it on the notification",
				"msg_id", msg.Header.MsgID, "engine", uuid)
			return
		}
		r.c.answerUnroutable(r.in, client, target, msg, "EngineError",
			"no registered engine with uuid "+quote(uuid)+" (it may have died or never registered)")
		return
	}
	if r.c.tooBig(n) {
		r.c.answerUnroutable(r.in, client, target, msg, "ValueError", tooBigText(msg.Header.MsgType, n, r.c.cfg.MaxMessageSize))
		return
	}
	// Book first, then send: a client that asks queue_request right after
	// must find the request counted, and the reply must find it expected.
	if r.track {
		if !r.hub.noteRequest(uuid, client, msg, "mux") {
			r.c.answerUnroutable(r.in, client, target, msg, "ValueError",
				"duplicate msg_id "+quote(msg.Header.MsgID)+": a request with this id was already sent")
			return
		}
	} else if !r.expect(msg.Header.MsgID, uuid, client) {
		r.c.answerUnroutable(r.in, client, target, msg, "ValueError",
			"duplicate msg_id "+quote(msg.Header.MsgID)+": a request with this id is in flight")
		return
	}
	r.out.Send(out)
}

// expect remembers a control request in flight; false if its msg_id is.
func (r *relay) expect(msgID, engine string, client []byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.asked[msgID]; dup {
		return false
	}
	if len(r.order) >= maxAsked {
		// Forget the oldest half; compacting rarely keeps this cheap.
		for _, id := range r.order[:maxAsked/2] {
			delete(r.asked, id)
		}
		r.order = append(r.order[:0], r.order[maxAsked/2:]...)
	}
	r.asked[msgID] = asked{engine: engine, client: string(client)}
	r.order = append(r.order, msgID)
	return true
}

// answered takes the control request a reply claims to answer, if it went
// to engine and came from client.
func (r *relay) answered(parent, engine string, client []byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.asked[parent]
	if !ok || a.engine != engine || a.client != string(client) {
		return false
	}
	delete(r.asked, parent)
	return true
}

// toClient handles [engine uuid, client id, DELIM, ...] and the engine's own
// [engine uuid, DELIM, ...] probes.
func (r *relay) toClient(frames [][]byte) {
	r.c.received(frames)
	if len(frames) < 2 {
		return
	}
	if string(frames[1]) == wire.Delimiter {
		r.c.probe(r.outPort, frames, r.route)
		return
	}
	msg := r.c.verify(r.outPort, frames)
	if msg == nil {
		return
	}
	engine, client := frames[0], frames[1]
	uuid := string(engine)
	if len(msg.Idents) != 2 {
		r.c.rejects.reject(r.outPort, engine, "reply with unexpected routing")
		return
	}
	// No liveness check: an engine may answer a control request (a
	// shutdown) after it was unregistered, and the expectation tables
	// already say whether this identity was asked.
	parent := msg.Parent.MsgID
	var ok bool
	if r.track {
		// Book first: the client may query the hub as soon as it has the reply.
		ok = r.hub.noteReply(uuid, client, msg, "mux")
	} else {
		ok = r.answered(parent, uuid, client)
	}
	if !ok {
		r.c.rejects.reject(r.outPort, engine, "reply to a request this engine was not sent, or already answered")
		return
	}
	frames[0], frames[1] = frames[1], frames[0]
	r.in.Send(frames)
}

// engineAdded is part of engineListener; nothing to do.
func (r *relay) engineAdded(string, int) {}

// engineRemoved is part of engineListener. Control requests in flight to
// the engine are kept: it may still answer (a shutdown_reply comes after
// the shutdown_reply on IOPub that unregistered it), and maxAsked bounds
// what is never answered.
func (r *relay) engineRemoved(string, int, string) {}

// probe handles an engine_ready message an engine sent to the controller
// itself on one of its routes.
func (c *Controller) probe(port string, frames [][]byte, route int) {
	msg := c.verify(port, frames)
	if msg == nil {
		return
	}
	if msg.Header.MsgType != "engine_ready" || len(msg.Idents) != 1 {
		c.rejects.reject(port, frames[0], "message addressed to the controller that is not engine_ready")
		return
	}
	c.hub.routeReady(string(frames[0]), route)
}

// answerUnroutable replies to a request that cannot be delivered, so the
// client gets an error instead of waiting forever. The request was
// verified.
func (c *Controller) answerUnroutable(sock transport.Socket, client, engineIdent []byte, req *wire.Message, ename, evalue string) {
	c.log.Warn("request not delivered", "msg_id", req.Header.MsgID, "type", req.Header.MsgType, "why", evalue)
	idents := [][]byte{client}
	if engineIdent != nil {
		idents = append(idents, engineIdent)
	}
	out, _, err := c.session.Build(wire.Out{
		Idents:   idents,
		MsgType:  protocol.ReplyType(req.Header.MsgType),
		Parent:   req.RawHeader,
		Metadata: map[string]any{"status": "error", "dependencies_met": true, "engine": nil, "started": nil},
		Content:  protocol.NewError(ename, evalue),
	})
	if err == nil {
		sock.Send(out)
	}
}

// tooBigText explains a refused oversized message.
func tooBigText(msgType string, n, limit int64) string {
	return fmt.Sprintf("%s of %d bytes is larger than this controller accepts (%d bytes; the controller's --max-message-size)", msgType, n, limit)
}

func quote(s string) string { return "'" + s + "'" }
