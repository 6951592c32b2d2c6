package controller

import (
	"fmt"
	"slices"
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
//
// An engine that dies is reported to clients by the hub's
// unregistration_notification, on which clients (Python's and ours) fail
// what they sent it. The broadcaster therefore never answers for a dead
// engine on its own: a second answer would race the notification and reach
// the client as a stale result. The exceptions are targets no client can
// have been told about (never registered, or gone long ago), which get an
// EngineError reply, and coalescing requests from clients that asked for
// the combined reply even then (protocol.MetaCoalesceAfterDeath).
type broadcaster struct {
	c *Controller
	// live tells whether an engine is registered, and its id.
	live func(uuid string) (int, bool)
	// departed tells whether an engine left recently enough that clients
	// are being told by the unregistration notification.
	departed func(uuid string) bool

	mu      sync.Mutex
	pending map[string]*coalesce
	// sent maps each per-engine copy's msg_id to where it went, until that
	// engine replies or leaves: replies are accepted only from there, once.
	sent map[string]sentCopy
}

// sentCopy is one per-engine copy of a broadcast request in flight.
type sentCopy struct {
	engine     string
	client     string // routing identity of the requesting client
	orig       string // the client's msg_id
	coalescing bool
}

// maxBroadcasts bounds the coalescing requests waiting for replies; each
// is freed when every target answered or died.
const maxBroadcasts = 65536

// coalesce gathers the replies of one coalescing request.
type coalesce struct {
	client     []byte
	request    []byte // the request's header: the parent if no engine answers
	replyType  string
	targets    []target
	replies    map[string]*wire.Message
	errs       map[string]string // engines that died before replying
	afterDeath bool              // protocol.MetaCoalesceAfterDeath
}

type target struct {
	uuid string
	id   int
}

func newBroadcaster(c *Controller, live func(string) (int, bool), departed func(string) bool) *broadcaster {
	return &broadcaster{c: c, live: live, departed: departed, pending: map[string]*coalesce{}, sent: map[string]sentCopy{}}
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
	afterDeath, _ := md[protocol.MetaCoalesceAfterDeath].(bool)
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
		b.pending[orig] = &coalesce{client: client, request: msg.RawHeader, replyType: protocol.ReplyType(msg.Header.MsgType),
			targets: targets, replies: map[string]*wire.Message{}, errs: map[string]string{}, afterDeath: afterDeath}
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
		// The copy is noted before liveness is checked: the hub marks an
		// engine dead before it tells the broadcaster, so a death is
		// either seen here or sweeps this copy in engineRemoved.
		b.mu.Lock()
		b.sent[orig+"_"+t.uuid] = sentCopy{engine: t.uuid, client: string(client), orig: orig, coalescing: coalescing}
		b.mu.Unlock()
		if _, live := b.live(t.uuid); !live {
			b.mu.Lock()
			delete(b.sent, orig+"_"+t.uuid)
			b.mu.Unlock()
			// Sent before the client heard of the engine's departure: the
			// notification makes the client fail it, and an answer from
			// here would race it. An engine no client can have been told
			// about gets an answer, or the request would wait forever.
			departed := b.departed(t.uuid)
			evalue := fmt.Sprintf("engine %d (%s) is not registered", t.id, t.uuid)
			if departed {
				evalue = fmt.Sprintf("Engine %d died before running task '%s'", t.id, orig+"_"+t.uuid)
			}
			switch {
			case coalescing:
				b.engineGone(orig, t.uuid, evalue, departed)
			case departed:
				b.c.log.Debug("broadcast copy for a departed engine dropped; the client fails it on the notification",
					"msg_id", orig, "engine", t.uuid)
			default:
				b.fail(client, msg, h, "EngineError", evalue)
			}
			continue
		}
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
	switch {
	case co != nil:
		b.maybeFinish(sc.orig)
	case sc.coalescing:
		// The request was given up when another target died (the client
		// failed it on the notification): this late part has no reply to
		// join.
		b.c.log.Debug("reply to an abandoned coalescing broadcast dropped", "msg_id", sc.orig, "engine", uuid)
	default:
		b.c.bcastIn.Send(frames[1:])
	}
}

// engineAdded is part of engineListener; nothing to do.
func (b *broadcaster) engineAdded(string, int) {}

// engineRemoved forgets a dead engine's copies in flight (clients fail
// them on the unregistration notification, which the hub publishes right
// after this) and settles the coalescing requests still waiting for it.
func (b *broadcaster) engineRemoved(uuid string, id int, _ string) {
	b.mu.Lock()
	var copies []string
	for mid, sc := range b.sent {
		if sc.engine == uuid {
			delete(b.sent, mid)
			copies = append(copies, mid)
		}
	}
	// A Python client fails a coalescing request on the notification even
	// when the dead engine had already answered (the request stays
	// outstanding on every target until the combined reply), so those are
	// abandoned too; a client asking for the reply after a death only
	// needs the missing part filled in.
	var origs []string
	for orig, co := range b.pending {
		_, answered := co.replies[uuid]
		if slices.ContainsFunc(co.targets, func(t target) bool { return t.uuid == uuid }) && (!answered || !co.afterDeath) {
			origs = append(origs, orig)
		}
	}
	b.mu.Unlock()
	if len(copies) > 0 {
		b.c.log.Debug("broadcast copies on a dead engine left to the clients", "engine", uuid, "copies", len(copies))
	}
	for _, o := range origs {
		b.engineGone(o, uuid, fmt.Sprintf("Engine %d died while running task '%s'", id, o+"_"+uuid), true)
	}
}

// engineGone settles a coalescing request's target that died (departed)
// or was never registered. A client not asking for the combined reply after
// a death (every Python client) fails the whole request on the
// unregistration notification, so it is abandoned: no reply, and the other
// targets' late replies are dropped.
func (b *broadcaster) engineGone(orig, uuid, why string, departed bool) {
	b.mu.Lock()
	co, ok := b.pending[orig]
	abandon := ok && departed && !co.afterDeath
	switch {
	case abandon:
		delete(b.pending, orig)
	case ok:
		co.errs[uuid] = why
	}
	b.mu.Unlock()
	if ok && !abandon {
		b.maybeFinish(orig)
	}
	if abandon {
		b.c.log.Debug("coalescing broadcast abandoned: a target died and the client fails it on the notification",
			"msg_id", orig, "engine", uuid)
	}
}

// maybeFinish sends the combined reply once every target has answered.
// What a Python client reads is ipyparallel's shape: metadata
// broadcast_targets, the successful targets' buffers concatenated in
// target order, and content status ok, or else the content of the first
// target (in target order) that did not answer ok, so that the client
// raises that engine's own error (RemoteError with its ename) as it would
// for the one engine. The 7.1 client can only build a RemoteError from
// one reply, never a CompositeError, so what every target answered goes in
// metadata (protocol.MetaCoalesced), where our client takes it apart into
// one result or error per engine.
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
	var first map[string]any // content of the first target not ok
	parts := make([]protocol.CoalescedPart, len(co.targets))
	covered := make([][]any, len(co.targets))
	for i, t := range co.targets {
		covered[i] = []any{t.uuid, t.id}
		p := protocol.CoalescedPart{EngineUUID: t.uuid, EngineID: t.id}
		r := co.replies[t.uuid]
		why, dead := co.errs[t.uuid]
		if !dead && r == nil {
			// Cannot happen (targets are unique and counted), but a nil
			// here once crashed the loop: say so instead.
			why, dead = "no reply", true
		}
		if dead {
			p.Status, p.Died, p.Content = "error", true, errorMap("EngineError", why)
		} else {
			last = r
			var c map[string]any
			if r.DecodeContent(&c) != nil || c == nil {
				c = errorMap("ValueError", "engine reply content is not a JSON object")
			}
			var md map[string]any
			if json.Unmarshal(r.Metadata, &md) == nil {
				p.Metadata = md
			}
			p.Status, _ = c["status"].(string)
			p.Content = c
			if p.Status == "ok" {
				p.Buffers = len(r.Buffers)
				buffers = append(buffers, r.Buffers...)
			}
		}
		if p.Status != "ok" && first == nil {
			first = b.clientError(p)
		}
		parts[i] = p
	}
	md := map[string]any{}
	var content any
	var parent []byte
	msgType := co.replyType
	o := wire.Out{Idents: [][]byte{co.client}}
	if last != nil {
		json.Unmarshal(last.Metadata, &md)
		content, parent, msgType = last.Content, last.RawParent, last.Header.MsgType
		var h wire.Header
		if json.Unmarshal(last.RawHeader, &h) == nil {
			o.Header = h
			o.Header.MsgID = h.MsgID + "_coalesced"
		}
	} else {
		// No engine answered: the client still needs a parent header with
		// a msg_id (it indexes it before looking at original_msg_id).
		parent = co.request
	}
	if md == nil {
		md = map[string]any{}
	}
	md["original_msg_id"] = orig
	md["is_broadcast"] = true
	md["is_coalescing"] = true
	md["broadcast_targets"] = covered
	md[protocol.MetaCoalesced] = parts
	md["status"] = "ok"
	if first != nil {
		md["status"] = "error"
		content = first
	}
	o.MsgType, o.Parent, o.Metadata, o.Content, o.Buffers = msgType, parent, md, content, buffers
	frames, _, err := b.c.session.Build(o)
	if err == nil {
		b.c.bcastIn.Send(frames)
	}
}

// clientError turns a target's failed answer into reply content a Python
// client can take: ename, evalue and traceback present, and engine_info
// either empty or naming an engine the client knows (it looks the uuid up
// and loses the reply if it cannot).
func (b *broadcaster) clientError(p protocol.CoalescedPart) map[string]any {
	c := make(map[string]any, len(p.Content))
	for k, v := range p.Content {
		c[k] = v
	}
	if p.Status != "error" {
		// "aborted" reads as TaskAborted; anything else the client
		// cannot read, so it becomes an error saying what came.
		if p.Status == "aborted" {
			return c
		}
		return errorMap("ValueError", fmt.Sprintf("engine %d answered with status %q", p.EngineID, p.Status))
	}
	ename, ok1 := c["ename"].(string)
	evalue, ok2 := c["evalue"].(string)
	_, ok3 := c["traceback"].([]any)
	if !ok1 || !ok2 || !ok3 {
		if !ok1 {
			ename = "RemoteError"
		}
		return errorMap(ename, evalue)
	}
	info, _ := c["engine_info"].(map[string]any)
	uuid, _ := info["engine_uuid"].(string)
	if _, live := b.live(uuid); !live || uuid != p.EngineUUID {
		c["engine_info"] = map[string]any{}
	} else {
		ei := map[string]any{"engine_uuid": uuid, "engine_id": p.EngineID, "method": "apply"}
		if m, ok := info["method"].(string); ok {
			ei["method"] = m
		}
		c["engine_info"] = ei
	}
	return c
}

// errorMap is protocol.NewError as a map, for the coalesced parts, whose
// contents are engines' decoded replies and get edited key by key.
func errorMap(ename, evalue string) map[string]any {
	e := protocol.NewError(ename, evalue)
	return map[string]any{"status": e.Status, "ename": e.EName, "evalue": e.EValue, "traceback": e.Traceback, "engine_info": map[string]any{}}
}
