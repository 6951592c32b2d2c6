package controller

import (
	"fmt"
	"strings"
	"sync"

	json "github.com/goccy/go-json"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// broadcaster is the broadcast scheduler: one client-facing ROUTER and
// two engine-facing leaves, with no tree of processes. Each request is
// copied to every target with msg_id "<original>_<uuid>", re-signed, as
// ipyparallel's leaves do; replies go back one per engine, or as one
// coalesced reply when the client asked for it.
type broadcaster struct {
	c *Controller
	// live tells whether an engine is registered, and its id.
	live func(uuid string) (int, bool)

	mu      sync.Mutex
	pending map[string]*coalesce
	// sent maps each per-engine copy's msg_id to where it went, until that
	// engine replies or leaves: replies are accepted only from there, once.
	sent map[string]sentCopy
}

// sentCopy is one per-engine copy of a broadcast request in flight.
type sentCopy struct {
	engine string
	client string // routing identity of the requesting client
	orig   string // the client's msg_id
}

// maxBroadcasts bounds the coalescing requests waiting for replies; each
// is freed when every target answered or died.
const maxBroadcasts = 65536

// coalesce gathers the replies of one coalescing request.
type coalesce struct {
	client  []byte
	targets []target
	replies map[string]*wire.Message
	errs    map[string]string // engines that died before replying
}

type target struct {
	uuid string
	id   int
}

func newBroadcaster(c *Controller, live func(string) (int, bool)) *broadcaster {
	return &broadcaster{c: c, live: live, pending: map[string]*coalesce{}, sent: map[string]sentCopy{}}
}

func (b *broadcaster) run() {
	type msg struct {
		frames [][]byte
		leaf   int // -1: from a client
	}
	merged := make(chan msg, 1024)
	var wg sync.WaitGroup
	pump := func(s transport.Socket, leaf int) {
		defer wg.Done()
		for f := range s.Messages() {
			merged <- msg{f, leaf}
		}
	}
	wg.Add(1 + len(b.c.bcastLeaves))
	go pump(b.c.bcastIn, -1)
	for i, s := range b.c.bcastLeaves {
		go pump(s, i)
	}
	go func() { wg.Wait(); close(merged) }()
	for m := range merged {
		if m.leaf < 0 {
			b.submit(m.frames)
		} else {
			b.reply(m.frames)
		}
	}
}

func (b *broadcaster) submit(frames [][]byte) {
	n := b.c.received(frames)
	msg := b.c.verify("broadcast_in", frames)
	if msg == nil {
		return
	}
	if len(msg.Idents) != 1 {
		b.c.rejects.reject("broadcast_in", frames[0], "broadcast request with unexpected routing")
		return
	}
	client := msg.Idents[0]
	if b.c.tooBig(n) {
		b.fail(client, msg, msg.RawHeader, "ValueError", tooBigText(msg.Header.MsgType, n, b.c.cfg.MaxMessageSize))
		return
	}
	var md map[string]any
	if err := json.Unmarshal(msg.Metadata, &md); err != nil || md == nil {
		md = map[string]any{}
	}
	targets, err := parseTargets(md["targets"])
	if err != nil {
		b.fail(client, msg, msg.RawHeader, "ValueError", err.Error())
		return
	}
	var hdr map[string]any
	if err := json.Unmarshal(msg.RawHeader, &hdr); err != nil {
		return
	}
	orig := msg.Header.MsgID
	coalescing, _ := md["is_coalescing"].(bool)
	md["original_msg_id"] = orig
	md["is_broadcast"] = true
	md["is_coalescing"] = coalescing
	b.mu.Lock()
	refused := ""
	switch {
	case b.pending[orig] != nil || b.sent[orig+"_"+targets[0].uuid].engine != "":
		refused = "duplicate msg_id " + quote(orig) + ": a broadcast with this id is in flight"
	case coalescing && len(b.pending) >= maxBroadcasts:
		refused = fmt.Sprintf("too many coalescing broadcasts in flight (%d)", maxBroadcasts)
	case coalescing:
		b.pending[orig] = &coalesce{client: client, targets: targets, replies: map[string]*wire.Message{}, errs: map[string]string{}}
	}
	b.mu.Unlock()
	if refused != "" {
		b.fail(client, msg, msg.RawHeader, "ValueError", refused)
		return
	}
	for _, t := range targets {
		hdr["msg_id"] = orig + "_" + t.uuid
		h, _ := json.Marshal(hdr)
		mdt := md
		mdt["targets"] = [][]any{{t.uuid, t.id}}
		m, _ := json.Marshal(mdt)
		if _, live := b.live(t.uuid); !live {
			evalue := fmt.Sprintf("engine %d (%s) is not registered", t.id, t.uuid)
			if coalescing {
				b.engineGone(orig, t.uuid, evalue)
			} else {
				b.fail(client, msg, h, "EngineError", evalue)
			}
			continue
		}
		b.mu.Lock()
		b.sent[orig+"_"+t.uuid] = sentCopy{engine: t.uuid, client: string(client), orig: orig}
		b.mu.Unlock()
		body := [][]byte{nil, h, msg.RawParent, m, msg.Content}
		b.c.session.Resign(body)
		out := make([][]byte, 0, 3+len(body)+len(msg.Buffers))
		out = append(out, []byte(t.uuid), client, []byte(wire.Delimiter))
		out = append(out, body...)
		out = append(out, msg.Buffers...)
		b.c.bcastLeaves[t.id%len(b.c.bcastLeaves)].Send(out)
	}
}

func parseTargets(v any) ([]target, error) {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return nil, fmt.Errorf("broadcast request without metadata.targets")
	}
	var out []target
	seen := map[string]bool{}
	for _, item := range list {
		pair, ok := item.([]any)
		if !ok || len(pair) != 2 {
			return nil, fmt.Errorf("bad broadcast target %v", item)
		}
		uuid, ok1 := pair[0].(string)
		id, ok2 := pair[1].(float64)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("bad broadcast target %v", item)
		}
		if seen[uuid] {
			// Named twice: one copy, one reply. A duplicate would make a
			// coalescing request wait for a second reply that never comes.
			continue
		}
		seen[uuid] = true
		out = append(out, target{uuid, int(id)})
	}
	return out, nil
}

// fail answers one target of a broadcast with an error; parent is the
// per-engine header the client is waiting on.
func (b *broadcaster) fail(client []byte, req *wire.Message, parent []byte, ename, evalue string) {
	out, _, err := b.c.session.Build(wire.Out{
		Idents:   [][]byte{client},
		MsgType:  protocol.ReplyType(req.Header.MsgType),
		Parent:   parent,
		Metadata: map[string]any{"status": "error", "is_broadcast": true, "original_msg_id": req.Header.MsgID},
		Content:  protocol.NewError(ename, evalue),
	})
	if err == nil {
		b.c.bcastIn.Send(out)
	}
}

func (b *broadcaster) reply(frames [][]byte) {
	b.c.received(frames)
	if len(frames) >= 2 && string(frames[1]) == wire.Delimiter {
		b.c.probe("broadcast_leaf", frames, routeBroadcast)
		return
	}
	if len(frames) < 3 {
		return
	}
	msg := b.c.verify("broadcast_leaf", frames)
	if msg == nil {
		return
	}
	uuid := string(frames[0])
	if len(msg.Idents) != 2 {
		b.c.rejects.reject("broadcast_leaf", frames[0], "broadcast reply with unexpected routing")
		return
	}
	// Accepted only from the engine this copy went to, for the client
	// that asked, once.
	b.mu.Lock()
	sc, ok := b.sent[msg.Parent.MsgID]
	if ok && (sc.engine != uuid || sc.client != string(frames[1])) {
		ok = false
	}
	var co *coalesce
	if ok {
		delete(b.sent, msg.Parent.MsgID)
		co = b.pending[sc.orig]
		if co != nil {
			co.replies[uuid] = msg
		}
	}
	b.mu.Unlock()
	if !ok {
		b.c.rejects.reject("broadcast_leaf", frames[0], "broadcast reply that was not expected from this engine")
		return
	}
	if co == nil {
		b.c.bcastIn.Send(frames[1:])
		return
	}
	b.maybeFinish(sc.orig)
}

// engineAdded is part of engineListener; nothing to do.
func (b *broadcaster) engineAdded(string, int) {}

// engineRemoved answers, on behalf of a dead engine, the coalescing
// requests still waiting for it, and forgets its copies in flight.
func (b *broadcaster) engineRemoved(uuid string, _ int, _ string) { b.removeEngine(uuid) }

// removeEngine answers, on behalf of a dead engine, the coalescing
// requests still waiting for it.
func (b *broadcaster) removeEngine(uuid string) {
	b.mu.Lock()
	for id, sc := range b.sent {
		if sc.engine == uuid {
			delete(b.sent, id)
		}
	}
	var origs []string
	for orig, co := range b.pending {
		for _, t := range co.targets {
			if t.uuid == uuid {
				if _, done := co.replies[uuid]; !done {
					origs = append(origs, orig)
				}
			}
		}
	}
	b.mu.Unlock()
	for _, o := range origs {
		b.engineGone(o, uuid, "engine "+uuid+" died before replying")
	}
}

func (b *broadcaster) engineGone(orig, uuid, why string) {
	b.mu.Lock()
	if co, ok := b.pending[orig]; ok {
		co.errs[uuid] = why
	}
	b.mu.Unlock()
	b.maybeFinish(orig)
}

// maybeFinish sends the coalesced reply once every target has answered.
// Unlike ipyparallel, which keeps only the last reply's status, every
// engine's error is kept in one CompositeError.
func (b *broadcaster) maybeFinish(orig string) {
	b.mu.Lock()
	co, ok := b.pending[orig]
	if !ok || len(co.replies)+len(co.errs) < len(co.targets) {
		b.mu.Unlock()
		return
	}
	delete(b.pending, orig)
	b.mu.Unlock()

	var last *wire.Message
	var buffers [][]byte
	var errs []string
	var tracebacks []string
	covered := [][]any{}
	for _, t := range co.targets {
		covered = append(covered, []any{t.uuid, t.id})
		if why, dead := co.errs[t.uuid]; dead {
			errs = append(errs, fmt.Sprintf("[%d:apply]: EngineError: %s", t.id, why))
			continue
		}
		r := co.replies[t.uuid]
		if r == nil {
			// Cannot happen (targets are unique and counted), but a nil
			// here once crashed the loop: say so instead.
			errs = append(errs, fmt.Sprintf("[%d:apply]: EngineError: no reply", t.id))
			continue
		}
		last = r
		var c protocol.ErrorContent
		r.DecodeContent(&c)
		if c.Status != "ok" {
			errs = append(errs, fmt.Sprintf("[%d:apply]: %s: %s", t.id, c.EName, c.EValue))
			tracebacks = append(tracebacks, c.Traceback...)
			continue
		}
		buffers = append(buffers, r.Buffers...)
	}
	md := map[string]any{"original_msg_id": orig, "is_broadcast": true, "is_coalescing": true, "broadcast_targets": covered}
	var content any
	var parent, header []byte
	msgType := "apply_reply"
	if last != nil {
		var lmd map[string]any
		if json.Unmarshal(last.Metadata, &lmd) == nil {
			for k, v := range lmd {
				if _, set := md[k]; !set {
					md[k] = v
				}
			}
		}
		content, parent, header, msgType = last.Content, last.RawParent, last.RawHeader, last.Header.MsgType
	}
	if len(errs) > 0 {
		md["status"] = "error"
		ce := protocol.NewError("CompositeError", fmt.Sprintf("one or more exceptions raised in: %s", strings.Join(errs, "; ")))
		ce.Traceback = append(errs, tracebacks...)
		content, buffers = ce, nil
	}
	o := wire.Out{Idents: [][]byte{co.client}, MsgType: msgType, Parent: parent, Metadata: md, Content: content, Buffers: buffers}
	if header != nil {
		var h wire.Header
		if json.Unmarshal(header, &h) == nil {
			o.Header = h
			o.Header.MsgID = h.MsgID + "_coalesced"
		}
	}
	frames, _, err := b.c.session.Build(o)
	if err == nil {
		b.c.bcastIn.Send(frames)
	}
}
