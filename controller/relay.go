package controller

import (
	"strings"

	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// relay forwards between a client-facing and an engine-facing ROUTER by
// swapping the first two routing frames, as ipyparallel's MonitoredQueue
// does. Everything from the delimiter on travels byte for byte.
type relay struct {
	c       *Controller
	name    string
	in, out transport.Socket
	// track keeps task records and queue counts (the mux relay does; the
	// control relay does not, like ipyparallel's hub).
	track bool
	route int
}

func newRelay(c *Controller, name string, in, out transport.Socket, track bool) *relay {
	route := routeMux
	if name == "control" {
		route = routeControl
	}
	return &relay{c: c, name: name, in: in, out: out, track: track, route: route}
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
			r.toEngine(frames)
		case frames, ok := <-fromEngines:
			if !ok {
				fromEngines = nil
				continue
			}
			r.toClient(frames)
		}
	}
}

// toEngine handles [client id, engine uuid, DELIM, ...].
func (r *relay) toEngine(frames [][]byte) {
	if len(frames) < 3 || string(frames[1]) == wire.Delimiter {
		r.c.log.Warn("dropping request without a target engine", "relay", r.name, "frames", len(frames))
		return
	}
	uuid := string(frames[1])
	if _, ok := r.c.hub.liveID(uuid); !ok {
		r.c.answerUnroutable(r.in, frames[0], frames[1], frames[2:], "EngineError",
			"no registered engine with uuid "+quote(uuid)+" (it may have died or never registered)")
		return
	}
	frames[0], frames[1] = frames[1], frames[0]
	var msg *wire.Message
	if r.track {
		msg, _ = wire.ParseUnchecked(frames)
	}
	// Book first, then send: a client that asks queue_request right after
	// must find the request counted.
	if msg != nil {
		r.c.hub.noteRequest(uuid, msg, "mux")
	}
	r.out.Send(frames)
}

// toClient handles [engine uuid, client id, DELIM, ...] and the engine's own
// [engine uuid, DELIM, ...] probes.
func (r *relay) toClient(frames [][]byte) {
	if len(frames) < 2 {
		return
	}
	if string(frames[1]) == wire.Delimiter {
		r.c.probe(frames, r.route)
		return
	}
	uuid := string(frames[0])
	frames[0], frames[1] = frames[1], frames[0]
	var msg *wire.Message
	if r.track {
		msg, _ = wire.ParseUnchecked(frames)
	}
	// Book first: the client may query the hub as soon as it has the reply.
	if msg != nil {
		r.c.hub.noteReply(uuid, msg, "mux")
	}
	r.in.Send(frames)
}

// probe handles an engine_ready message an engine sent to the controller
// itself on one of its routes.
func (c *Controller) probe(frames [][]byte, route int) {
	msg, err := c.session.Parse(frames)
	if err != nil {
		c.log.Warn("dropping unroutable engine message", "err", err)
		return
	}
	if msg.Header.MsgType != "engine_ready" {
		c.log.Warn("dropping engine message addressed to the controller", "type", msg.Header.MsgType)
		return
	}
	c.hub.routeReady(string(frames[0]), route)
}

// answerUnroutable replies to a request that cannot be delivered, so the
// client gets an error instead of waiting forever. body starts at the
// delimiter.
func (c *Controller) answerUnroutable(sock transport.Socket, client, engineIdent []byte, body [][]byte, ename, evalue string) {
	frames := append([][]byte{client}, body...)
	msg, err := c.session.Parse(frames)
	if err != nil {
		c.log.Warn("dropping undeliverable request", "err", err)
		return
	}
	c.log.Warn("request for unknown engine", "msg_id", msg.Header.MsgID, "type", msg.Header.MsgType)
	idents := [][]byte{client}
	if engineIdent != nil {
		idents = append(idents, engineIdent)
	}
	out, _, err := c.session.Build(wire.Out{
		Idents:   idents,
		MsgType:  replyType(msg.Header.MsgType),
		Parent:   msg.RawHeader,
		Metadata: map[string]any{"status": "error", "dependencies_met": true, "engine": nil, "started": nil},
		Content:  errorContent(ename, evalue),
	})
	if err == nil {
		sock.Send(out)
	}
}

func replyType(reqType string) string {
	if strings.HasSuffix(reqType, "_request") {
		return strings.TrimSuffix(reqType, "_request") + "_reply"
	}
	return "apply_reply"
}

func quote(s string) string { return "'" + s + "'" }
