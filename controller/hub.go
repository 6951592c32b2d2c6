package controller

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	json "github.com/goccy/go-json"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// Routes an engine must announce with engine_ready probes before it is
// reachable through every scheduler.
const (
	routeMux = 1 << iota
	routeTask
	routeBroadcast
	routeControl
	allRoutes = routeMux | routeTask | routeBroadcast | routeControl
)

type engineState int

const (
	statePending engineState = iota
	stateRegistered
)

type engine struct {
	id       int
	uuid     string
	state    engineState
	probes   bool // a Go engine that announces its routes
	routes   int
	info     json.RawMessage
	pendedAt time.Time
	misses   int
	answered bool // answered a ping since the last beat
	// lastPong is when the engine last answered a ping (check rounds).
	lastPong time.Time
	// queue and completed count direct (mux) requests for queue_request.
	queue     map[string]struct{}
	completed int
	// restored: taken over from the engine table of the controller this
	// one restarted (restore.go), until it comes back or is given up.
	restored bool
	// askedAgain is when a restored Go engine was last asked to register
	// again (reregister_request).
	askedAgain time.Time
}

// hub owns engine registration, liveness and task records.
type hub struct {
	c *Controller

	mu      sync.Mutex
	engines map[int]*engine
	byUUID  map[string]*engine
	nextID  int
	// pings maps the payloads sent since the previous beat evaluation, so a
	// pong to any recent ping counts (fast registration pings included).
	pings   map[string]bool
	prev    map[string]bool
	t0      time.Time
	records *records
	// listeners hear of every engine that becomes reachable or leaves, in
	// order: the schedulers and relays keep their own tables by it.
	listeners []engineListener
	// tasks reports the load-balancing scheduler's view for queue_request.
	tasks taskView

	// routesMu guards live, read on every relayed message; it is taken
	// after mu when both are needed.
	routesMu sync.RWMutex
	live     map[string]int

	// hbOpen is how many connections the heartbeat port has; round is
	// the check round in progress (liveness.go). Guarded by mu.
	hbOpen int
	round  checkRound

	// departed remembers when engines left, so their last output (the
	// status after a shutdown, what a dying engine printed) still reaches
	// clients for a while; bounded by maxDeparted. Guarded by mu.
	departed map[string]time.Time

	// dbJobs feeds the goroutine that answers db_requests (dbquery.go),
	// started with the first one.
	dbJobs chan dbJob
	dbOnce sync.Once

	// gate holds a new client's IOPub output until its subscription
	// arrives (iopubgate.go). Its lock is taken after none of the hub's.
	gate *iopubGate

	// fastWake tells serveHeartbeat that an engine became pending, so
	// that it starts its fast ticker (see needFast).
	fastWake chan struct{}

	quit chan struct{}
	once sync.Once
}

// engineListener is told when an engine becomes reachable through every
// route and when it leaves (died, unregistered, timed out). Calls come in
// order for each engine and never while the hub holds its locks.
type engineListener interface {
	engineAdded(uuid string, id int)
	engineRemoved(uuid string, id int, why string)
}

// taskView is what the hub asks of the task scheduler: its view for
// queue_request and load_request, and submit for resubmit_request (signed
// request frames from one routing identity, as a client sends them).
type taskView interface {
	loads() map[string]int
	unassigned() []string
	submit(frames [][]byte)
}

func newHub(c *Controller, rs *records) *hub {
	h := &hub{
		c:        c,
		engines:  map[int]*engine{},
		byUUID:   map[string]*engine{},
		pings:    map[string]bool{},
		prev:     map[string]bool{},
		t0:       time.Now(),
		records:  rs,
		live:     map[string]int{},
		departed: map[string]time.Time{},
		dbJobs:   make(chan dbJob, maxDBJobs),
		gate:     newIOPubGate(c.iopubXPub, func(frames [][]byte) { c.iopubOut.Send(frames) }),
		quit:     make(chan struct{}),
		fastWake: make(chan struct{}, 1),
	}
	h.gate.released = func(session string, matched bool) {
		if !matched {
			c.log.Debug("a client's IOPub subscription did not arrive in time; its output is published without waiting",
				"session", session, "waited", iopubGateMaxWait)
		}
	}
	return h
}

// Output from an engine that left is forwarded for departedGrace, and at
// most maxDeparted such engines are remembered.
const (
	departedGrace = 30 * time.Second
	maxDeparted   = 4096
)

// knownSession tells whether IOPub from session may be forwarded: a
// registered or registering engine, or one that left moments ago.
func (h *hub) knownSession(session string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.byUUID[session]; ok {
		return true
	}
	left, ok := h.departed[session]
	return ok && time.Since(left) < departedGrace
}

// departedRecently tells whether uuid was a registered engine that left in
// the last departedGrace: clients have been (or are being) told, by the
// unregistration notification, and fail their requests to it themselves.
func (h *hub) departedRecently(uuid string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	left, ok := h.departed[uuid]
	return ok && time.Since(left) < departedGrace
}

// listen adds listeners; call before the hub serves.
func (h *hub) listen(ls ...engineListener) { h.listeners = append(h.listeners, ls...) }

func (h *hub) stop() {
	h.once.Do(func() {
		close(h.quit)
		h.gate.stop()
	})
}

// liveID returns the id of a registered engine, for the relays.
func (h *hub) liveID(uuid string) (int, bool) {
	h.routesMu.RLock()
	id, ok := h.live[uuid]
	h.routesMu.RUnlock()
	return id, ok
}

func (h *hub) engineList() []EngineStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []EngineStatus
	for _, e := range h.engines {
		if e.state == stateRegistered {
			out = append(out, EngineStatus{ID: e.id, UUID: e.uuid, Info: e.info})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// reply sends a signed message from the hub to the peer at ident on to,
// the ROUTER the request came in on (the engine or the client side).
func (h *hub) reply(to transport.Socket, ident [][]byte, req *wire.Message, msgType string, content any) {
	var parent []byte
	if req != nil {
		parent = req.RawHeader
	}
	frames, _, err := h.c.session.Build(wire.Out{Idents: ident, MsgType: msgType, Parent: parent, Content: content})
	if err != nil {
		h.c.log.Error("building hub reply", "type", msgType, "err", err)
		return
	}
	to.Send(frames)
}

// notify publishes on the notification channel.
func (h *hub) notify(msgType string, parent []byte, content any) {
	frames, _, err := h.c.session.Build(wire.Out{MsgType: msgType, Parent: parent, Content: content})
	if err != nil {
		h.c.log.Error("building notification", "type", msgType, "err", err)
		return
	}
	h.c.notif.Send(frames)
}

// maxQuery bounds a registration or query message. Queries are small
// JSON; anything this large is a mistake or an attack, and is refused
// before it is decoded.
const maxQuery = 16 << 20

// serveRegistration serves one registration/query ROUTER: the engine
// file's, and the client file's when the sides are split.
func (h *hub) serveRegistration(port string, s transport.Socket) {
	for frames := range s.Messages() {
		h.handleRegistration(port, s, frames)
	}
}

// handleRegistration handles one message read on port (the ROUTER s):
// engine (un)registration and every client query. It is verified like
// every other port's before anything in it is read.
func (h *hub) handleRegistration(port string, s transport.Socket, frames [][]byte) {
	n := h.c.received(frames)
	// Python's hub stays silent on a bad signature too: a peer with the
	// wrong key could not verify our answer anyway.
	msg := h.c.verify(port, frames)
	if msg == nil {
		return
	}
	if n > maxQuery {
		h.c.log.Warn("refusing oversized query", "port", port, "type", msg.Header.MsgType, "bytes", n)
		h.reply(s, msg.Idents, msg, "hub_error", protocol.NewError("ValueError",
			fmt.Sprintf("%s of %d bytes is larger than the hub accepts (%d)", msg.Header.MsgType, n, maxQuery)))
		return
	}
	if s != h.c.reg {
		switch msg.Header.MsgType {
		case "registration_request":
			// registration_complete and the engine's other routes are on
			// the engine side: an engine registering here could never
			// complete. Say so instead of letting it time out.
			h.reply(s, msg.Idents, msg, "registration_reply", protocol.NewError("ValueError",
				"this is the controller's client port; engines register on the registration port of the engine connection file (ipcontroller-engine.json)"))
			return
		case "unregistration_request":
			h.c.rejects.reject(port, frames[0], "unregistration_request on the client port")
			return
		}
	}
	h.handleQuery(s, msg)
}

func (h *hub) handleQuery(s transport.Socket, msg *wire.Message) {
	defer func() {
		if r := recover(); r != nil {
			h.c.log.Error("query handler panic", "type", msg.Header.MsgType, "panic", r)
			h.reply(s, msg.Idents, msg, "hub_error", protocol.NewError("InternalError", fmt.Sprint(r)))
		}
	}()
	switch msg.Header.MsgType {
	case "registration_request":
		h.register(s, msg)
	case "unregistration_request":
		var c struct {
			ID *int `json:"id"`
		}
		if msg.DecodeContent(&c) == nil && c.ID != nil {
			h.unregister(*c.ID, "unregistration_request")
		}
	case "connection_request":
		// Before the reply: the client subscribes to IOPub after it.
		h.gate.connected(msg.Header.Session)
		// max_message_size and mux_fanout are ours (Python clients ignore
		// them): our client refuses a larger request with a clear error
		// before sending it, and sends a direct request for several
		// engines as one fan-out (fanout.go).
		h.reply(s, msg.Idents, msg, "connection_reply", map[string]any{"status": "ok", "engines": h.engineMap(),
			"max_message_size": h.c.cfg.MaxMessageSize, protocol.ConnectionFanout: true})
	case "engine_info_request":
		h.reply(s, msg.Idents, msg, "engine_info_reply", map[string]any{"status": "ok", "engines": h.engineInfos()})
	case "queue_request":
		h.queueRequest(s, msg)
	case "result_request":
		h.resultRequest(s, msg)
	case "history_request":
		h.reply(s, msg.Idents, msg, "history_reply", map[string]any{"status": "ok", "history": h.records.history()})
	case "purge_request":
		h.purgeRequest(s, msg)
	case "db_request":
		h.queueDB(s, msg)
	case "resubmit_request":
		h.resubmitRequest(s, msg)
	case "load_request":
		h.loadRequest(s, msg)
	case "become_dask_request", "stop_distributed_request":
		h.noDask(s, msg)
	case "shutdown_request":
		h.reply(s, msg.Idents, msg, "shutdown_reply", map[string]any{"status": "ok"})
		h.notify("shutdown_notification", msg.RawHeader, map[string]any{"status": "ok"})
		h.c.log.Info("shutdown requested by a client")
		go func() {
			// Give the reply and notification a moment on the wire.
			time.Sleep(200 * time.Millisecond)
			h.c.Close()
		}()
	default:
		h.reply(s, msg.Idents, msg, "hub_error", protocol.NewError("KeyError", fmt.Sprintf("Bad Message Type: '%s'", msg.Header.MsgType)))
	}
}

func (h *hub) engineMap() map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]string{}
	for id, e := range h.engines {
		if e.state == stateRegistered {
			out[strconv.Itoa(id)] = e.uuid
		}
	}
	return out
}

func (h *hub) engineInfos() map[string]json.RawMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]json.RawMessage{}
	for id, e := range h.engines {
		if e.state == stateRegistered {
			info := e.info
			if len(info) == 0 {
				info, _ = json.Marshal(map[string]any{"id": id, "uuid": e.uuid})
			}
			out[strconv.Itoa(id)] = info
		}
	}
	return out
}

func (h *hub) register(s transport.Socket, msg *wire.Message) {
	var req struct {
		UUID       string          `json:"uuid"`
		ID         *int            `json:"id"`
		ReadyProbe bool            `json:"ready_probe"`
		Info       json.RawMessage `json:"info"`
		// Reregister and Held are ours: a Go engine that lost its
		// controller registers again with the requests it still has.
		Reregister bool     `json:"reregister"`
		Held       []string `json:"held"`
	}
	if err := msg.DecodeContent(&req); err != nil || req.UUID == "" {
		h.reply(s, msg.Idents, msg, "registration_reply", protocol.NewError("ValueError", "registration_request needs a uuid"))
		return
	}
	h.mu.Lock()
	if e, dup := h.byUUID[req.UUID]; dup {
		// Only the engine itself may register again: its registration
		// socket's routing identity is its uuid, and identities are
		// exclusive, so no other peer can speak for it.
		own := len(msg.Idents) > 0 && string(msg.Idents[len(msg.Idents)-1]) == req.UUID
		if !own || !req.Reregister || !req.ReadyProbe || (req.ID != nil && *req.ID != e.id) || !(e.restored || e.state == stateRegistered) {
			h.mu.Unlock()
			h.reply(s, msg.Idents, msg, "registration_reply", protocol.NewError("KeyError", fmt.Sprintf("uuid %q in use", req.UUID)))
			return
		}
		if len(req.Info) > 0 {
			e.info = req.Info
		}
		id, registered := h.reregister(e, req.Held)
		h.mu.Unlock()
		h.registrationOK(s, msg, id, registered)
		if registered {
			h.sendComplete(req.UUID, id)
		}
		h.c.log.Info("engine registered again", "id", id, "uuid", req.UUID, "held", len(req.Held), "was_registered", registered)
		return
	}
	id := h.nextID
	if req.ID != nil && *req.ID >= 0 {
		if _, taken := h.engines[*req.ID]; !taken {
			id = *req.ID
		}
	}
	if id >= h.nextID {
		h.nextID = id + 1
	}
	e := &engine{id: id, uuid: req.UUID, probes: req.ReadyProbe, info: req.Info, pendedAt: time.Now(), queue: map[string]struct{}{}}
	h.engines[id] = e
	h.byUUID[req.UUID] = e
	h.mu.Unlock()
	h.wakeFast()
	h.registrationOK(s, msg, id, false)
	h.c.log.Debug("engine registering", "id", id, "uuid", req.UUID, "probes", req.ReadyProbe)
}

// registrationOK sends the registration_reply that grants id. Only Go
// engines send ready_probe, and ipyparallel's reply has no such key, so
// ready_probe true in the reply tells a Go engine to probe until
// registration_complete rather than guess whether this controller
// understands probes.
//
// known (ours, only in answer to a Go engine registering again) says this
// controller still has the engine registered: it was slow, not restarted
// (a starved controller on an oversubscribed node makes hundreds of
// engines notice silence at once). Its routes are known and
// registration_complete follows, so the engine skips its probe round,
// which cost eight more messages per engine.
func (h *hub) registrationOK(s transport.Socket, msg *wire.Message, id int, known bool) {
	var probe struct {
		ReadyProbe bool `json:"ready_probe"`
	}
	msg.DecodeContent(&probe)
	ei := h.c.engineInfo
	content := map[string]any{
		"status":      "ok",
		"id":          id,
		"hb_period":   h.c.cfg.HeartbeatPeriod.Milliseconds(),
		"ready_probe": probe.ReadyProbe,
		"connection_info": map[string]any{
			"interface": ei.Interface, "registration": ei.Registration, "control": ei.Control,
			"mux": ei.Mux, "task": ei.Task, "iopub": ei.IOPub, "hb_ping": ei.HBPing,
			"hb_pong": ei.HBPong, "broadcast": ei.Broadcast,
		},
	}
	if known {
		content["known"] = true
	}
	h.reply(s, msg.Idents, msg, "registration_reply", content)
}

// routeReady records an engine_ready probe that arrived on one route.
func (h *hub) routeReady(uuid string, route int) {
	h.mu.Lock()
	e, ok := h.byUUID[uuid]
	if !ok || e.state != statePending {
		registered := ok && e.state == stateRegistered
		h.mu.Unlock()
		if registered {
			// A late probe: the engine missed registration_complete; say it again.
			h.sendComplete(uuid, e.id)
		}
		return
	}
	e.routes |= route
	done := e.routes == allRoutes
	h.mu.Unlock()
	if done {
		h.complete(uuid)
	}
}

func (h *hub) sendComplete(uuid string, id int) {
	// Engines register on the engine side only (handleRegistration).
	h.reply(h.c.reg, [][]byte{[]byte(uuid)}, nil, "registration_complete", map[string]any{"status": "ok", "id": id})
}

// complete makes a pending engine live: relays route to it, the scheduler
// uses it and clients are told.
func (h *hub) complete(uuid string) {
	h.mu.Lock()
	e, ok := h.byUUID[uuid]
	if !ok || e.state != statePending {
		h.mu.Unlock()
		return
	}
	e.state = stateRegistered
	e.answered = true
	restored := e.restored
	e.restored = false
	h.routesMu.Lock()
	h.live[uuid] = e.id
	h.routesMu.Unlock()
	took := time.Since(e.pendedAt)
	h.mu.Unlock()
	h.saveEngines()
	if restored {
		h.c.log.Info("engine of the previous controller is back", "id", e.id, "uuid", uuid)
	}
	if e.probes {
		h.sendComplete(uuid, e.id)
	}
	for _, l := range h.listeners {
		l.engineAdded(uuid, e.id)
	}
	h.notify("registration_notification", nil, map[string]any{"id": e.id, "uuid": uuid})
	h.c.log.Info("engine registered", "id", e.id, "uuid", uuid, "took", took.Round(time.Microsecond))
}

// unregister removes an engine by id; why is logged.
func (h *hub) unregister(id int, why string) {
	h.mu.Lock()
	e, ok := h.engines[id]
	if !ok {
		h.mu.Unlock()
		h.c.log.Debug("unregistration of unknown engine ignored", "id", id, "why", why)
		return
	}
	delete(h.engines, id)
	delete(h.byUUID, e.uuid)
	if len(h.departed) >= maxDeparted {
		for u, t := range h.departed {
			if time.Since(t) >= departedGrace || len(h.departed) >= maxDeparted {
				delete(h.departed, u)
			}
		}
	}
	h.departed[e.uuid] = time.Now()
	wasLive := e.state == stateRegistered
	h.routesMu.Lock()
	delete(h.live, e.uuid)
	h.routesMu.Unlock()
	stranded := make([]string, 0, len(e.queue))
	for m := range e.queue {
		stranded = append(stranded, m)
	}
	h.mu.Unlock()
	for _, m := range stranded {
		h.records.fail(m, "EngineError", fmt.Sprintf("Engine %d died while running task '%s'", id, m))
	}
	h.c.inflight.gone(h, e.uuid, id)
	h.saveEngines()
	if wasLive {
		for _, l := range h.listeners {
			l.engineRemoved(e.uuid, id, why)
		}
		h.notify("unregistration_notification", nil, map[string]any{"id": id, "uuid": e.uuid})
	}
	h.c.log.Info("engine unregistered", "id", id, "uuid", e.uuid, "why", why)
}

func (h *hub) unregisterUUID(uuid, why string) {
	h.mu.Lock()
	e, ok := h.byUUID[uuid]
	h.mu.Unlock()
	if ok {
		h.unregister(e.id, why)
	}
}

// serveHeartbeat pings every period (and every 100 ms while a Python
// engine is pending, so its first pong completes registration at once),
// and evaluates misses at each beat.
//
// The 100 ms ticker runs only while there is something for it to do: an
// engine pending or a check round on (needFast). An idle controller thus
// wakes once a period, not ten times a second plus the Go runtime's
// wake-ups for each tick.
func (h *hub) serveHeartbeat() {
	period := h.c.cfg.HeartbeatPeriod
	beat := time.NewTicker(period)
	defer beat.Stop()
	var fast *time.Ticker
	var fastC <-chan time.Time
	defer func() {
		if fast != nil {
			fast.Stop()
		}
	}()
	// setFast starts or stops the fast ticker. Pongs never make it
	// needed; a tick that finds it no longer needed stops it.
	setFast := func() {
		switch on := h.needFast(); {
		case on && fast == nil:
			fast = time.NewTicker(100 * time.Millisecond)
			fastC = fast.C
		case !on && fast != nil:
			fast.Stop()
			fast, fastC = nil, nil
		}
	}
	h.ping()
	setFast()
	pongs := h.c.hbPong.Messages()
	events := h.events()
	for {
		select {
		case <-h.quit:
			return
		case frames, ok := <-pongs:
			if !ok {
				return
			}
			h.handlePong(frames)
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			h.connectionEvent(ev)
			setFast()
		case <-h.fastWake:
			setFast()
		case now := <-fastC:
			h.checkTick(now)
			if h.needFastPing() {
				h.ping()
			}
			setFast()
		case <-beat.C:
			h.evaluate()
			h.ping()
		}
	}
}

// wakeFast tells serveHeartbeat to look at needFast again.
func (h *hub) wakeFast() {
	select {
	case h.fastWake <- struct{}{}:
	default:
	}
}

// needFast reports whether the 100 ms ticker has work: a check round in
// progress (checkTick) or an engine pending (needFastPing, which also
// times out registrations that never complete).
func (h *hub) needFast() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.round.start.IsZero() {
		return true
	}
	for _, e := range h.engines {
		if e.state == statePending {
			return true
		}
	}
	return false
}

// handlePong handles one message on the heartbeat ROUTER: [engine uuid, payload].
func (h *hub) handlePong(frames [][]byte) {
	h.c.received(frames)
	if len(frames) == 2 {
		h.pong(string(frames[0]), string(frames[1]))
	}
}

func (h *hub) ping() {
	payload := strconv.FormatFloat(time.Since(h.t0).Seconds(), 'f', -1, 64)
	h.mu.Lock()
	h.pings[payload] = true
	h.mu.Unlock()
	h.c.hbPing.Send([][]byte{[]byte(payload)})
}

func (h *hub) needFastPing() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	var stale []int
	need := false
	for id, e := range h.engines {
		if e.state != statePending {
			continue
		}
		if now.Sub(e.pendedAt) > h.pendingLimit(e) {
			stale = append(stale, id)
			continue
		}
		if !e.probes {
			need = true
		}
	}
	if len(stale) > 0 {
		go func() {
			for _, id := range stale {
				h.unregister(id, "registration timed out: engine never became reachable")
			}
		}()
	}
	return need
}

func (h *hub) pong(uuid, payload string) {
	h.mu.Lock()
	e, ok := h.byUUID[uuid]
	if !ok || !(h.pings[payload] || h.prev[payload]) {
		h.mu.Unlock()
		return
	}
	e.answered = true
	e.lastPong = time.Now()
	complete := e.state == statePending && !e.probes
	askAgain := e.state == statePending && e.restored && e.probes && time.Since(e.askedAgain) >= time.Second
	if askAgain {
		e.askedAgain = time.Now()
	}
	h.mu.Unlock()
	if complete {
		h.complete(uuid)
	}
	if askAgain {
		// A Go engine of the previous controller is back on the heartbeat
		// but has not registered again (it did not notice the restart):
		// ask it to, on its registration socket. Only Go engines (the
		// table says which) understand this.
		h.reply(h.c.reg, [][]byte{[]byte(uuid)}, nil, "reregister_request", map[string]any{})
	}
}

// evaluate runs at each beat: engines that did not answer any ping since
// the last beat get a miss; too many consecutive misses mean death.
func (h *hub) evaluate() {
	h.mu.Lock()
	var dead []int
	for id, e := range h.engines {
		if e.state != stateRegistered {
			continue
		}
		if e.answered {
			e.misses = 0
		} else {
			e.misses++
			if e.misses > h.c.cfg.HeartbeatMisses {
				dead = append(dead, id)
			}
		}
		e.answered = false
	}
	h.prev, h.pings = h.pings, map[string]bool{}
	h.mu.Unlock()
	for _, id := range dead {
		h.unregister(id, "heartbeat lost")
	}
}

// serveIOPub forwards engine output to clients and notes it in the task
// records; a shutdown_reply on IOPub means the engine is leaving.
func (h *hub) serveIOPub() {
	for frames := range h.c.iopubIn.Messages() {
		h.handleIOPub(frames)
	}
}

// serveSubscriptions hands the subscriptions the client-facing IOPub XPUB
// reports to the gate (a plain PUB reports none).
func (h *hub) serveSubscriptions() {
	for frames := range h.c.iopubOut.Messages() {
		if len(frames) == 1 && len(frames[0]) > 0 && frames[0][0] == 1 {
			h.gate.subscribed()
		}
	}
}

// handleIOPub handles one message an engine published. Only signed
// messages from engines the hub knows are forwarded: clients trust what
// arrives on IOPub (Python ones unpickle results from it).
func (h *hub) handleIOPub(frames [][]byte) {
	h.c.received(frames)
	msg := h.c.verify("iopub_in", frames)
	if msg == nil {
		return
	}
	if !h.knownSession(msg.Header.Session) {
		h.c.rejects.reject("iopub_in", []byte(msg.Header.Session), "published by a session that is not a registered engine")
		return
	}
	h.gate.publish(msg.Parent.Session, frames)
	if !noteworthyTopic(msg.Idents) {
		return
	}
	switch msg.Header.MsgType {
	case "stream":
		var s struct {
			Name string `json:"name"`
			Text string `json:"text"`
		}
		if msg.DecodeContent(&s) == nil {
			h.records.stream(msg.Parent.MsgID, s.Name, s.Text)
		}
	case "execute_input", "execute_result", "error":
		h.records.noteIO(msg.Parent.MsgID, msg.Header.MsgType, msg.Content)
	case "shutdown_reply":
		h.unregisterUUID(msg.Header.Session, "shutdown_reply on iopub")
	}
}

// noteworthyTopic tells from the IOPub topic (engine.<id>.<kind>, as
// Python and Go engines publish) whether the hub needs to read the
// message: output, execute input/result and errors for the task records
// (result_request's io), shutdown for unregistration. Status and display
// data are only forwarded. Unknown topics are read, to be safe.
func noteworthyTopic(idents [][]byte) bool {
	if len(idents) == 0 {
		return true
	}
	topic := idents[0]
	if !bytes.HasPrefix(topic, []byte("engine.")) {
		return true
	}
	for _, kind := range []string{".stdout", ".stderr", ".shutdown", ".stream", ".execute_input", ".execute_result", ".error"} {
		if bytes.HasSuffix(topic, []byte(kind)) {
			return true
		}
	}
	return !(bytes.HasSuffix(topic, []byte(".status")) || bytes.HasSuffix(topic, []byte(".displaypub")))
}

// noteRequest records a direct request from client routed to an engine;
// false if its msg_id is taken (the request must then be refused).
func (h *hub) noteRequest(uuid string, client []byte, msg *wire.Message, queue string) bool {
	if !h.records.add(msg, client, uuid, queue) {
		return false
	}
	h.mu.Lock()
	if e, ok := h.byUUID[uuid]; ok {
		e.queue[msg.Header.MsgID] = struct{}{}
	}
	h.mu.Unlock()
	return true
}

// noteReply completes the record of a request; false if the reply was not
// expected from this engine for this client (it must then be dropped).
func (h *hub) noteReply(uuid string, client []byte, msg *wire.Message, queue string) bool {
	if !h.records.complete(msg, uuid, client) {
		return false
	}
	h.mu.Lock()
	if e, ok := h.byUUID[uuid]; ok {
		if _, was := e.queue[msg.Parent.MsgID]; was {
			delete(e.queue, msg.Parent.MsgID)
			e.completed++
		}
	}
	h.mu.Unlock()
	return true
}

func (h *hub) queueRequest(s transport.Socket, msg *wire.Message) {
	var req struct {
		Targets []json.RawMessage `json:"targets"`
		Verbose bool              `json:"verbose"`
	}
	if err := msg.DecodeContent(&req); err != nil {
		h.reply(s, msg.Idents, msg, "hub_error", protocol.NewError("ValueError", err.Error()))
		return
	}
	taskLoads := h.tasks.loads()
	h.mu.Lock()
	var ids []int
	if req.Targets == nil {
		for id := range h.engines {
			ids = append(ids, id)
		}
	} else {
		for _, raw := range req.Targets {
			e := h.lookup(raw)
			if e == nil {
				h.mu.Unlock()
				h.reply(s, msg.Idents, msg, "hub_error", protocol.NewError("IndexError", "No Such Engine: "+string(raw)))
				return
			}
			ids = append(ids, e.id)
		}
	}
	sort.Ints(ids)
	content := map[string]any{"status": "ok"}
	for _, id := range ids {
		e := h.engines[id]
		tasks := taskLoads[e.uuid]
		if req.Verbose {
			q := make([]string, 0, len(e.queue))
			for m := range e.queue {
				q = append(q, m)
			}
			sort.Strings(q)
			content[strconv.Itoa(id)] = map[string]any{"queue": q, "completed": h.records.completedOn(e.uuid), "tasks": h.records.runningTasks(e.uuid)}
		} else {
			content[strconv.Itoa(id)] = map[string]any{"queue": len(e.queue), "completed": e.completed + h.records.completedTasks(e.uuid), "tasks": tasks}
		}
	}
	h.mu.Unlock()
	unassigned := h.tasks.unassigned()
	if req.Verbose {
		content["unassigned"] = unassigned
	} else {
		content["unassigned"] = len(unassigned)
	}
	h.reply(s, msg.Idents, msg, "queue_reply", content)
}

// lookup finds an engine by id (number) or uuid (string); mu held.
func (h *hub) lookup(raw json.RawMessage) *engine {
	var id int
	if json.Unmarshal(raw, &id) == nil {
		return h.engines[id]
	}
	var uuid string
	if json.Unmarshal(raw, &uuid) == nil {
		return h.byUUID[uuid]
	}
	return nil
}

func (h *hub) resultRequest(s transport.Socket, msg *wire.Message) {
	var req struct {
		MsgIDs     []string `json:"msg_ids"`
		StatusOnly bool     `json:"status_only"`
	}
	if err := msg.DecodeContent(&req); err != nil {
		h.reply(s, msg.Idents, msg, "result_reply", protocol.NewError("ValueError", err.Error()))
		return
	}
	content, buffers, err := h.records.results(req.MsgIDs, req.StatusOnly)
	if err != nil {
		h.reply(s, msg.Idents, msg, "result_reply", protocol.NewError("KeyError", err.Error()))
		return
	}
	frames, _, berr := h.c.session.Build(wire.Out{Idents: msg.Idents, MsgType: "result_reply", Parent: msg.RawHeader, Content: content, Buffers: buffers})
	if berr != nil {
		h.c.log.Error("building result_reply", "err", berr)
		return
	}
	s.Send(frames)
}

func (h *hub) purgeRequest(s transport.Socket, msg *wire.Message) {
	var req struct {
		MsgIDs    json.RawMessage `json:"msg_ids"`
		EngineIDs []int           `json:"engine_ids"`
	}
	if err := msg.DecodeContent(&req); err != nil {
		h.reply(s, msg.Idents, msg, "purge_reply", protocol.NewError("ValueError", err.Error()))
		return
	}
	var all string
	var ids []string
	if len(req.MsgIDs) > 0 && json.Unmarshal(req.MsgIDs, &all) == nil && all == "all" {
		h.records.purgeAll()
	} else if len(req.MsgIDs) > 0 && json.Unmarshal(req.MsgIDs, &ids) == nil {
		if err := h.records.purge(ids); err != nil {
			h.reply(s, msg.Idents, msg, "purge_reply", protocol.NewError("KeyError", err.Error()))
			return
		}
	}
	for _, id := range req.EngineIDs {
		h.mu.Lock()
		e, ok := h.engines[id]
		h.mu.Unlock()
		if !ok {
			h.reply(s, msg.Idents, msg, "purge_reply", protocol.NewError("IndexError", fmt.Sprintf("No such engine: %d", id)))
			return
		}
		h.records.purgeEngine(e.uuid)
	}
	h.reply(s, msg.Idents, msg, "purge_reply", map[string]any{"status": "ok"})
}
