package ipp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	json "github.com/goccy/go-json"

	"github.com/ipp-hpc/ipp/internal/procid"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// Client is a connection to an IPython Parallel controller, Go or Python.
// It is safe for concurrent use.
type Client struct {
	info    *wire.ClientInfo
	session *wire.Session
	log     *slog.Logger
	cfg     clientConfig

	query, mux, task, control, bcast transport.Socket
	notif, iopub                     transport.Socket
	sockets                          []transport.Socket
	wg                               sync.WaitGroup

	// mu guards everything below. A future's own mutex may be taken while
	// mu is held, never the other way round.
	mu      sync.Mutex
	engines map[int]string // live engines: id -> uuid
	known   map[string]int // every uuid ever seen -> id, so late replies still name their engine
	dead    map[string]bool
	futures map[string]*future // execute/apply requests by msg_id
	waiters map[string]*waiter // hub-query and control replies by msg_id
	// coalesced holds the per-engine futures of coalescing broadcasts by
	// the request's msg_id, until their combined reply is taken apart.
	coalesced map[string][]*future
	// watchers receive registration changes (WaitForEngines).
	watchers map[chan engineEvent]struct{}
	closed   bool
	closeErr error

	done      chan struct{}
	closeOnce sync.Once

	// born is the monotonic origin of heard: nanoseconds since born when
	// the last message from the controller arrived, on any socket. The
	// keepalive reads it to tell a silent controller from a busy one.
	born  time.Time
	heard atomic.Int64
	// ownOutput is when (since born) the last IOPub message about one of
	// our requests arrived: the output grace counts silence from there.
	ownOutput atomic.Int64
	// probes counts keepalive probes sent (tests check the keepalive ran).
	probes atomic.Int64
	// tun is the SSH tunnel the sockets connect through, nil when direct.
	tun *clientTunnel
	// ctlProc is the controller's process when the connection file names
	// one on this host (busyHold), else nil.
	ctlProc *procid.ID
	// maxMessage is the largest message the controller accepts, from its
	// connection_reply; 0 when it does not say.
	maxMessage int64
	// fanout is set when the controller's mux takes one request for
	// several engines (its connection_reply says protocol.ConnectionFanout).
	fanout bool

	// outSeq numbers stream outputs in arrival order across requests.
	outSeq atomic.Uint64
	// outMu guards outCh, which is closed (and replaced) whenever a stream
	// output arrives or a request completes: AsyncResult.Outputs waits on
	// it instead of polling.
	outMu sync.Mutex
	outCh chan struct{}
}

// outputWait returns a channel closed at the next output or completion.
func (c *Client) outputWait() <-chan struct{} {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if c.outCh == nil {
		c.outCh = make(chan struct{})
	}
	return c.outCh
}

// outputChanged wakes every Outputs iterator.
func (c *Client) outputChanged() {
	c.outMu.Lock()
	if c.outCh != nil {
		close(c.outCh)
		c.outCh = nil
	}
	c.outMu.Unlock()
}

// engineEvent is a registration change seen on the notification channel.
type engineEvent struct {
	registered bool
	id         int
	uuid       string
}

// waiter is one outstanding hub query or control request.
type waiter struct {
	ch      chan waitResult // buffered 1; receives exactly one result
	engine  string          // uuid for control requests; "" for hub queries
	msgType string
}

type waitResult struct {
	msg *wire.Message
	err error
}

func (w *waiter) deliver(r waitResult) {
	select {
	case w.ch <- r:
	default: // already answered (e.g. failed by engine death, then the reply came)
	}
}

// Option configures Connect.
type Option func(*clientConfig)

type clientConfig struct {
	logger         *slog.Logger
	transportName  string
	connectTimeout time.Duration
	outputGrace    time.Duration
	// keepaliveInterval <= 0 turns the keepalive off.
	keepaliveInterval time.Duration
	keepaliveMisses   int
	// busyLimit is the longest silence of a controller whose process runs
	// on this host that the keepalive waits out; <= 0 never waits.
	busyLimit time.Duration
	// ssh overrides the connection file's ssh field when set (WithSSH).
	ssh              *string
	reconnectTimeout time.Duration
}

// WithLogger sets the logger for the client's IO goroutines; the default is
// slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *clientConfig) { c.logger = l } }

// WithTransport selects a transport backend by name ("zmq" or "gozmq");
// the default is $IPP_TRANSPORT, else the build's preferred backend.
func WithTransport(name string) Option { return func(c *clientConfig) { c.transportName = name } }

// WithConnectTimeout bounds how long Connect waits for the hub's
// connection_reply (default 10 s, as in ipyparallel), and then for the
// IOPub and notification subscriptions to complete their handshakes (a
// hub that answers while its IOPub port cannot be reached fails with a
// timeout naming that port). A hub that cannot verify our signature never
// answers, so without a bound a wrong key would hang until ctx ends.
func WithConnectTimeout(d time.Duration) Option {
	return func(c *clientConfig) { c.connectTimeout = d }
}

// WithOutputGrace sets how long a request whose reply has arrived waits for
// the engine's IOPub "idle" status before it is treated as complete anyway
// (default 5 s). The grace counts IOPub silence: while output for this
// client's requests keeps arriving (a controller behind under load, a
// thousand engines printing at once) the idle may still be queued behind
// it, so the wait goes on, up to outputGraceCap times the grace after the
// reply. Silence of the whole controller does not count either: the grace
// runs out only once something from the controller (a keepalive answer
// will do) arrived a whole grace after the last output for this client,
// because a stalled controller still holds the output. IOPub is a SUB
// socket and a PUB drops what it cannot deliver; the grace keeps such a
// loss from hanging a result forever.
func WithOutputGrace(d time.Duration) Option {
	return func(c *clientConfig) { c.outputGrace = d }
}

// Connect opens a client from a client connection file
// (ipcontroller-client.json), asks the hub for the registered engines, and
// starts one IO goroutine per socket.
func Connect(ctx context.Context, path string, opts ...Option) (*Client, error) {
	info, err := wire.LoadClientInfo(path)
	if err != nil {
		return nil, fmt.Errorf("ipp: %w", err)
	}
	return ConnectInfo(ctx, info, opts...)
}

// ConnectProfile connects to the controller of a profile and cluster id
// ("" is ipcluster's default cluster). profile is a profile name under
// $IPYTHONDIR ("" means "default") or, when it contains a path separator, a
// profile directory. The connection file may still be being written by a
// starting controller, so this waits for it until the connect timeout.
func ConnectProfile(ctx context.Context, profile, clusterID string, opts ...Option) (*Client, error) {
	dir := profile
	if !strings.ContainsRune(profile, os.PathSeparator) {
		dir = wire.ProfileDir(profile)
	}
	cfg := newConfig(opts)
	path := wire.ClientFile(dir, clusterID)
	wctx, cancel := context.WithTimeout(ctx, cfg.connectTimeout)
	defer cancel()
	for {
		info, err := wire.LoadClientInfo(path)
		if err == nil {
			return ConnectInfo(ctx, info, opts...)
		}
		// Retry while the file is missing or half written (controllers
		// write it atomically, but Python's may not); anything else, such
		// as an unsupported signature scheme, will not get better.
		var syntax *json.SyntaxError
		if !errors.Is(err, os.ErrNotExist) && !errors.As(err, &syntax) {
			return nil, fmt.Errorf("ipp: %w", err)
		}
		select {
		case <-wctx.Done():
			return nil, fmt.Errorf("ipp: no usable connection file %s: %w", path, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func newConfig(opts []Option) clientConfig {
	cfg := clientConfig{
		connectTimeout: 10 * time.Second, outputGrace: 5 * time.Second,
		keepaliveInterval: defaultKeepaliveInterval, keepaliveMisses: defaultKeepaliveMisses, busyLimit: defaultBusyLimit,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	if cfg.transportName == "" {
		cfg.transportName = os.Getenv(protocol.EnvTransport)
	}
	return cfg
}

// ErrNoCurve is returned by Connect when the controller uses CURVE
// encryption (its connection file has curve_serverkey) and this program
// was built without libzmq (CGO_ENABLED=0 or the nolibzmq tag), whose
// pure-Go transport cannot speak CurveZMQ.
var ErrNoCurve = transport.ErrNoCurve

// curveClient is the CURVE client setting for a controller whose public
// key is serverKey (nil when it has none), with this process's own key
// pair from $IPP_CURVE_SECRETKEY and $IPP_CURVE_PUBLICKEY as in
// ipyparallel, else one generated pair.
func curveClient(serverKey string) (*transport.Curve, error) {
	pub, sec := wire.CurveKeysFromEnv()
	c, err := transport.CurveClient(serverKey, pub, sec)
	if err != nil {
		return nil, fmt.Errorf("ipp: %w", err)
	}
	return c, nil
}

// ConnectInfo connects with connection information already in memory (for
// example a Go controller's ClientInfo in the same process). Like Connect
// it returns once the hub has answered and the IOPub and notification
// subscriptions are in place, so that no output of a first request is
// lost; WithConnectTimeout bounds both waits.
func ConnectInfo(ctx context.Context, info *wire.ClientInfo, opts ...Option) (*Client, error) {
	cfg := newConfig(opts)
	backend := transport.Default()
	if cfg.transportName != "" {
		b, err := transport.Lookup(cfg.transportName)
		if err != nil {
			return nil, err
		}
		backend = b
	}
	curve, err := curveClient(info.ServerKey())
	if err != nil {
		return nil, err
	}
	c := &Client{
		info:      info,
		session:   wire.NewSession([]byte(info.Key), ""),
		log:       cfg.logger.With("component", "ipp.client"),
		cfg:       cfg,
		engines:   map[int]string{},
		known:     map[string]int{},
		dead:      map[string]bool{},
		futures:   map[string]*future{},
		coalesced: map[string][]*future{},
		waiters:   map[string]*waiter{},
		watchers:  map[chan engineEvent]struct{}{},
		done:      make(chan struct{}),
		born:      time.Now(),
	}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	if info, err = c.openTunnel(ctx, info); err != nil {
		return nil, err
	}
	if p := (procid.ID{PID: info.ControllerPID, Start: info.ControllerStart, Host: info.ControllerHost}); p.Local() {
		c.ctlProc = &p
	}
	open := func(t transport.Type, port int, subscribe bool) (transport.Socket, error) {
		// In place: every large frame the client sends is its own copy
		// (sendRequest's ownCopies) or a buffer it built, never the user's.
		o := transport.Options{Curve: curve, InPlace: true}
		// A direct client waiting for a restarted controller watches its
		// query connection: a restart shorter than the keepalive's
		// misses is seen only there (watchDrops).
		o.Events = t == transport.Dealer && port == info.Registration && c.tun != nil && c.tun.t == nil
		if subscribe {
			o.Subscribe = [][]byte{nil}
			o.Ready = true
		}
		s, err := backend.NewSocket(t, o)
		if err != nil {
			return nil, err
		}
		c.sockets = append(c.sockets, s)
		if err := s.Connect(info.URL(port)); err != nil {
			return nil, err
		}
		return s, nil
	}
	// The notification SUB is connected before asking for the engine list so
	// that a registration happening meanwhile is not missed; it is only read
	// after the reply is applied, so notifications replay on top of it.
	if c.notif, err = open(transport.Sub, info.Notification, true); err != nil {
		return nil, err
	}
	if c.iopub, err = open(transport.Sub, info.IOPub, true); err != nil {
		return nil, err
	}
	if c.query, err = open(transport.Dealer, info.Registration, false); err != nil {
		return nil, err
	}
	c.wg.Add(1)
	go c.serveReplies(c.query, "query")

	cctx, cancel := context.WithTimeout(ctx, cfg.connectTimeout)
	defer cancel()
	reply, err := c.hubQuery(cctx, "connection_request", map[string]any{})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return nil, fmt.Errorf("ipp: hub connection request timed out (is the controller running at %s, and is the key right?)", c.controllerAddr())
		}
		return nil, fmt.Errorf("ipp: connecting to hub: %w", err)
	}
	var cr struct {
		Status  string            `json:"status"`
		Engines map[string]string `json:"engines"`
		// MaxMessageSize is our controller's extra key; Python's hub
		// has none.
		MaxMessageSize int64 `json:"max_message_size"`
		// Fanout is ours too (protocol.ConnectionFanout).
		Fanout bool `json:"mux_fanout"`
	}
	if err := reply.DecodeContent(&cr); err != nil {
		return nil, err
	}
	if cr.Status != "ok" {
		return nil, fmt.Errorf("ipp: hub refused the connection (status %q)", cr.Status)
	}
	c.mergeEngines(cr.Engines)
	c.maxMessage = cr.MaxMessageSize
	c.fanout = cr.Fanout
	notifLate := !subscribed(c.notif)
	if err := awaitSubscriptions(cctx, map[string]transport.Socket{"iopub": c.iopub, "notification": c.notif}); err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return nil, fmt.Errorf("ipp: %w (the hub answered; is that port reachable from here?)", err)
		}
		return nil, err
	}
	if notifLate {
		// An engine that registered after the hub's reply and before
		// the notification SUB was in place was announced to nobody
		// here: ask once more.
		c.resync(cctx)
	}

	if c.mux, err = open(transport.Dealer, info.Mux, false); err != nil {
		return nil, err
	}
	if c.control, err = open(transport.Dealer, info.Control, false); err != nil {
		return nil, err
	}
	if info.Task != 0 && info.TaskScheme != "none" {
		if c.task, err = open(transport.Dealer, info.Task, false); err != nil {
			return nil, err
		}
	}
	if info.Broadcast != 0 {
		if c.bcast, err = open(transport.Dealer, info.Broadcast, false); err != nil {
			return nil, err
		}
	}
	for name, s := range map[string]transport.Socket{"mux": c.mux, "control": c.control, "task": c.task, "broadcast": c.bcast} {
		if s != nil {
			c.wg.Add(1)
			go c.serveReplies(s, name)
		}
	}
	c.wg.Add(2)
	go c.serveNotifications()
	go c.serveIOPub()
	if cfg.keepaliveInterval > 0 && cfg.keepaliveMisses > 0 {
		c.wg.Add(1)
		go c.keepalive(cfg.keepaliveInterval, cfg.keepaliveMisses)
	}
	if c.tun != nil {
		c.wg.Add(1)
		go c.watchTunnel()
		if es, ok := c.query.(transport.EventSource); ok && c.tun.t == nil {
			c.wg.Add(1)
			go c.watchDrops(es.Events())
		}
	}
	ok = true
	c.log.Debug("connected", "session", c.session.ID(), "engines", len(cr.Engines))
	return c, nil
}

// awaitSubscriptions waits until each SUB's connection has completed its
// handshake. A PUB drops what it publishes before a subscription reaches
// it, and a controller without our IOPub gate (Python's, or ours on the
// pure-Go transport) publishes an engine's output for our first request
// within milliseconds of it: under load that output, "idle" included,
// could beat the subscription, and the request would then wait out the
// output grace and complete without its output. The SUBs were connected
// before connection_request, so this usually costs nothing. Backends that
// cannot tell are not waited for.
func awaitSubscriptions(ctx context.Context, subs map[string]transport.Socket) error {
	for name, s := range subs {
		rs, ok := s.(transport.ReadySource)
		if !ok || rs.Ready() == nil {
			continue
		}
		select {
		case <-rs.Ready():
		case <-ctx.Done():
			return fmt.Errorf("the controller's %s port completed no handshake: %w", name, ctx.Err())
		}
	}
	return nil
}

// subscribed says whether a SUB has completed its handshake (true when
// its backend cannot tell).
func subscribed(s transport.Socket) bool {
	rs, ok := s.(transport.ReadySource)
	if !ok || rs.Ready() == nil {
		return true
	}
	select {
	case <-rs.Ready():
		return true
	default:
		return false
	}
}

// mergeEngines adds engines from a connection_reply. It never removes one:
// a reply may be older than a registration notification already applied,
// and engines known to be dead are not brought back.
func (c *Client) mergeEngines(m map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, uuid := range m {
		id, err := strconv.Atoi(k)
		if err != nil || c.dead[uuid] {
			continue
		}
		if _, ok := c.engines[id]; !ok {
			c.engines[id] = uuid
			c.known[uuid] = id
			c.broadcastEvent(engineEvent{registered: true, id: id, uuid: uuid})
		}
	}
}

// broadcastEvent tells every watcher; called with c.mu held. Watchers have
// buffered channels and a slow one just misses events (it rechecks the
// engine count on each wake-up anyway).
func (c *Client) broadcastEvent(ev engineEvent) {
	for ch := range c.watchers {
		select {
		case ch <- ev:
		default:
		}
	}
}

// Session returns the client's session id (header.session of everything it
// sends; the hub records it as the client uuid).
func (c *Client) Session() string { return c.session.ID() }

// IDs returns the ids of the registered engines in increasing order.
func (c *Client) IDs() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := make([]int, 0, len(c.engines))
	for id := range c.engines {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// engineID looks up the id of any engine ever seen, live or dead.
func (c *Client) engineID(uuid string) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.known[uuid]
	return id, ok
}

// uuidOf returns the uuid of a live engine.
func (c *Client) uuidOf(id int) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u, ok := c.engines[id]
	if !ok {
		return "", fmt.Errorf("ipp: no engine with id %d (registered: %v)", id, c.idsLocked())
	}
	return u, nil
}

func (c *Client) idsLocked() []int {
	ids := make([]int, 0, len(c.engines))
	for id := range c.engines {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Done is closed when the client has closed: by Close, because the
// controller announced its shutdown, or because the keepalive found the
// controller gone. Err then says which.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is nil while the client is open; once Done is closed it is the
// reason: ErrClosed after Close, ErrHubShutdown after the controller shut
// down, or an error wrapping ErrControllerLost when the controller stopped
// answering. Outstanding requests failed with the same error.
func (c *Client) Err() error { return c.checkOpen() }

// Close disconnects. Requests still outstanding fail with ErrClosed.
func (c *Client) Close() error {
	c.shutdown(ErrClosed)
	return nil
}

// shutdown fails everything outstanding with reason and closes the
// sockets; the IO goroutines end when their Messages channels close. It
// must not be called from an IO goroutine (it waits for them).
func (c *Client) shutdown(reason error) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.closeErr = reason
		futures := c.futures
		waiters := c.waiters
		c.futures = map[string]*future{}
		c.waiters = map[string]*waiter{}
		c.mu.Unlock()
		for _, f := range futures {
			f.fail(reason)
		}
		for _, w := range waiters {
			w.deliver(waitResult{err: reason})
		}
		close(c.done)
		for _, s := range c.sockets {
			s.Close()
		}
		c.wg.Wait()
		c.closeTunnel()
	})
}

// checkOpen returns the reason the client is closed, or nil.
func (c *Client) checkOpen() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.closeErr
	}
	return nil
}

// ---- receiving ----

// serveReplies reads one DEALER (query, mux, task, control or broadcast)
// and hands each reply to the request it answers, by parent msg_id.
func (c *Client) serveReplies(s transport.Socket, name string) {
	defer c.wg.Done()
	for frames := range s.Messages() {
		c.heardNow()
		msg, err := c.session.Parse(frames)
		if err != nil {
			c.log.Warn("dropping bad message", "socket", name, "err", err)
			continue
		}
		id := msg.Parent.MsgID
		if c.takeCoalesced(msg) {
			continue
		}
		c.mu.Lock()
		w := c.waiters[id]
		if w != nil {
			delete(c.waiters, id)
		}
		f := c.futures[id]
		c.mu.Unlock()
		switch {
		case w != nil:
			w.deliver(waitResult{msg: msg})
		case f != nil:
			c.handleReply(f, msg)
		case msg.Parent.MsgType == keepaliveProbe:
			// A keepalive answer: its arrival (heardNow) was all it was for.
		default:
			// A reply after we synthesized a failure (engine death), or to
			// a request of a closed client: Python logs "stale result".
			c.log.Debug("reply for unknown request", "socket", name, "msg_type", msg.Header.MsgType, "parent", id)
		}
	}
}

// serveNotifications follows engine registration and controller shutdown.
func (c *Client) serveNotifications() {
	defer c.wg.Done()
	for frames := range c.notif.Messages() {
		c.heardNow()
		msg, err := c.session.Parse(frames)
		if err != nil {
			c.log.Warn("dropping bad notification", "err", err)
			continue
		}
		switch msg.Header.MsgType {
		case "registration_notification", "unregistration_notification":
			var n struct {
				ID   int    `json:"id"`
				UUID string `json:"uuid"`
			}
			if err := msg.DecodeContent(&n); err != nil {
				c.log.Warn("bad notification", "err", err)
				continue
			}
			if msg.Header.MsgType == "registration_notification" {
				c.registered(n.ID, n.UUID)
			} else {
				c.unregistered(n.ID, n.UUID)
			}
		case "shutdown_notification":
			c.log.Info("controller shut down")
			// shutdown waits for this goroutine, so it runs on its own.
			go c.shutdown(ErrHubShutdown)
		default:
			c.log.Debug("ignoring notification", "msg_type", msg.Header.MsgType)
		}
	}
}

func (c *Client) registered(id int, uuid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.dead, uuid)
	c.engines[id] = uuid
	c.known[uuid] = id
	c.log.Debug("engine registered", "id", id, "uuid", uuid)
	c.broadcastEvent(engineEvent{registered: true, id: id, uuid: uuid})
}

// unregistered removes an engine and fails every direct request and
// control request still routed to it: nothing will ever answer them
// (spec §7.2). Load-balanced tasks are left to the scheduler, which fails or
// retries them itself.
func (c *Client) unregistered(id int, uuid string) {
	c.mu.Lock()
	if cur, ok := c.engines[id]; ok && (uuid == "" || cur == uuid) {
		uuid = cur
		delete(c.engines, id)
	}
	if uuid != "" {
		c.dead[uuid] = true
		c.known[uuid] = id
	}
	var stranded []*future
	for _, f := range c.futures {
		if f.engine == uuid && uuid != "" {
			stranded = append(stranded, f)
		}
	}
	var waiters []*waiter
	for mid, w := range c.waiters {
		if w.engine == uuid && uuid != "" {
			waiters = append(waiters, w)
			delete(c.waiters, mid)
		}
	}
	c.broadcastEvent(engineEvent{registered: false, id: id, uuid: uuid})
	c.mu.Unlock()
	c.log.Debug("engine unregistered", "id", id, "uuid", uuid, "stranded", len(stranded))
	for _, f := range stranded {
		f.engineDied(id)
	}
	for _, w := range waiters {
		w.deliver(waitResult{err: &RemoteError{
			Engine: id, EngineUUID: uuid, EName: "EngineError",
			EValue: fmt.Sprintf("Engine %d died while running %s", id, w.msgType),
		}})
	}
}

// serveIOPub collects outputs for our requests. Everyone's IOPub traffic
// arrives here; only messages whose parent is one of our requests count.
func (c *Client) serveIOPub() {
	defer c.wg.Done()
	sid := c.session.ID()
	for frames := range c.iopub.Messages() {
		c.heardNow()
		msg, err := c.session.Parse(frames)
		if err != nil {
			c.log.Debug("dropping bad iopub message", "err", err)
			continue
		}
		if msg.Parent.Session != sid || msg.Parent.MsgID == "" {
			continue
		}
		c.ownOutput.Store(int64(time.Since(c.born)))
		c.mu.Lock()
		f := c.futures[msg.Parent.MsgID]
		c.mu.Unlock()
		if f != nil {
			f.handleIOPub(msg)
		}
	}
}

// ---- sending ----

// sendRequest builds a request, registers its future before the message
// can possibly be answered, and sends it.
func (c *Client) sendRequest(s transport.Socket, idents [][]byte, msgType string, md, content any, bufs [][]byte, f *future, own ownCopies) error {
	if err := c.checkOpen(); err != nil {
		return err
	}
	bufs = own.of(bufs)
	frames, h, err := c.session.Build(wire.Out{Idents: idents, MsgType: msgType, Metadata: md, Content: content, Buffers: bufs})
	if err != nil {
		return err
	}
	if err := c.checkSize(msgType, frames); err != nil {
		return err
	}
	f.msgID = h.MsgID
	f.md.MsgID = h.MsgID
	if t, err := wire.ParseDate(h.Date); err == nil {
		f.md.Submitted = t
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return c.closeErr
	}
	if f.engine != "" && c.dead[f.engine] {
		c.mu.Unlock()
		return fmt.Errorf("ipp: engine %s is no longer registered", f.engine)
	}
	c.futures[h.MsgID] = f
	c.mu.Unlock()
	if err := s.Send(frames); err != nil {
		c.mu.Lock()
		delete(c.futures, h.MsgID)
		c.mu.Unlock()
		return err
	}
	if c.tun != nil {
		c.tun.remember(h.MsgID, s, frames)
	}
	return nil
}

// ownCopies maps a user's large buffer (its first byte and length) to the
// copy the client sends in its place, so that one buffer sent to several
// engines is copied once. The client's sockets send large frames in place
// (no copy by libzmq into fresh 4 KiB pages), and the user may change a
// buffer as soon as the call that sent it returns: so the client sends
// its own copy, filled into huge pages (transport.OwnCopy).
type ownCopies map[ownKey][]byte

type ownKey struct {
	p *byte
	n int
}

// of returns bufs with every large buffer replaced by its copy; a nil map
// copies without remembering.
func (o ownCopies) of(bufs [][]byte) [][]byte {
	var out [][]byte
	for i, b := range bufs {
		if len(b) < transport.LargeFrame {
			continue
		}
		if out == nil {
			out = slices.Clone(bufs)
		}
		k := ownKey{unsafe.SliceData(b), len(b)}
		c, ok := o[k]
		if !ok {
			c = transport.OwnCopy(b)
			if o != nil {
				o[k] = c
			}
		}
		out[i] = c
	}
	if out == nil {
		return bufs
	}
	return out
}

// request sends a query (hub) or control message and waits for its reply.
// engine is the target uuid for control requests, so that the wait ends if
// that engine dies.
func (c *Client) request(ctx context.Context, s transport.Socket, idents [][]byte, engine, msgType string, content any) (*wire.Message, error) {
	if err := c.checkOpen(); err != nil {
		return nil, err
	}
	frames, h, err := c.session.Build(wire.Out{Idents: idents, MsgType: msgType, Content: content})
	if err != nil {
		return nil, err
	}
	w := &waiter{ch: make(chan waitResult, 1), engine: engine, msgType: msgType}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, c.closeErr
	}
	c.waiters[h.MsgID] = w
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.waiters, h.MsgID)
		c.mu.Unlock()
	}
	if err := s.Send(frames); err != nil {
		forget()
		return nil, err
	}
	select {
	case r := <-w.ch:
		return r.msg, r.err
	case <-ctx.Done():
		forget()
		return nil, ctx.Err()
	}
}

// hubQuery sends a query on the registration socket. Error answers
// (hub_error, or status "error") become a *HubError.
func (c *Client) hubQuery(ctx context.Context, msgType string, content any) (*wire.Message, error) {
	msg, err := c.request(ctx, c.query, nil, "", msgType, content)
	if err != nil {
		return nil, err
	}
	if err := statusError(msg, msgType); err != nil {
		return nil, err
	}
	return msg, nil
}

// statusError turns an error reply into a *HubError.
func statusError(msg *wire.Message, request string) error {
	var ec protocol.ErrorContent
	if err := json.Unmarshal(msg.Content, &ec); err != nil {
		return fmt.Errorf("ipp: %s reply: %w", request, err)
	}
	if msg.Header.MsgType == "hub_error" || ec.Status == "error" {
		return &HubError{Request: request, EName: ec.EName, EValue: ec.EValue, Traceback: ec.Traceback}
	}
	return nil
}

// controlRequest sends a control message to one engine and waits for its
// reply (matched by msg_id only: the nanny's signal reply has msg_type
// "_request").
func (c *Client) controlRequest(ctx context.Context, id int, msgType string, content any) (*wire.Message, error) {
	uuid, err := c.uuidOf(id)
	if err != nil {
		return nil, err
	}
	msg, err := c.request(ctx, c.control, [][]byte{[]byte(uuid)}, uuid, msgType, content)
	if err != nil {
		return nil, err
	}
	var ec protocol.ErrorContent
	if json.Unmarshal(msg.Content, &ec) == nil && ec.Status == "error" {
		return msg, c.remoteError(&ec, msg.Parent.MsgID)
	}
	return msg, nil
}

// controlAll runs a control request on each target concurrently.
func (c *Client) controlAll(ctx context.Context, targets []int, msgType string, content func(id int) any) error {
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, id := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.controlRequest(ctx, id, msgType, content(id))
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// resolveTargets returns explicit targets, or every registered engine.
func (c *Client) resolveTargets(targets []int) ([]int, error) {
	if len(targets) == 0 {
		ids := c.IDs()
		if len(ids) == 0 {
			return nil, ErrNoEngines
		}
		return ids, nil
	}
	for _, id := range targets {
		if _, err := c.uuidOf(id); err != nil {
			return nil, err
		}
	}
	return targets, nil
}

// SignalError reports the engines that did not acknowledge a signal sent
// with SendSignal: those that answered with an error and those that had not
// answered when the context ended (or that died meanwhile).
type SignalError struct {
	// Signal names the signal that was sent ("SIGINT", or the number).
	Signal string
	// Failed maps each engine id that did not acknowledge to the reason.
	Failed map[int]error
}

// Engines returns the ids of the engines that failed, in ascending order.
func (e *SignalError) Engines() []int {
	ids := make([]int, 0, len(e.Failed))
	for id := range e.Failed {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (e *SignalError) Error() string {
	ids := e.Engines()
	parts := make([]string, len(ids))
	for i, id := range ids {
		reason := e.Failed[id]
		if errors.Is(reason, context.DeadlineExceeded) || errors.Is(reason, context.Canceled) {
			parts[i] = fmt.Sprintf("engine %d did not answer (%v)", id, reason)
		} else {
			parts[i] = fmt.Sprintf("engine %d: %v", id, reason)
		}
	}
	return fmt.Sprintf("ipp: %s not acknowledged by engine(s) %s: %s", e.Signal, joinInts(ids), strings.Join(parts, "; "))
}

func joinInts(ids []int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(id)
	}
	return strings.Join(s, ",")
}

// SendSignal sends sig to the given engines (every registered engine when
// none is given) with the engines' signal_request on the control channel,
// and waits until each has answered or ctx ends. SIGINT interrupts the
// request an engine is running (it then replies with an Interrupted error)
// rather than killing the process; other signals are delivered to the
// engine process where the engine's platform allows. A signal that some
// engines did not acknowledge returns a *SignalError naming them.
//
// The signal travels as a number, which Python engines understand too.
// Numbers other than SIGHUP, SIGINT, SIGQUIT, SIGKILL, SIGALRM and SIGTERM
// differ between platforms (SIGUSR1 is 10 on Linux, 30 on macOS): to
// signal a Go engine on another platform use SendSignalName.
func (c *Client) SendSignal(ctx context.Context, sig syscall.Signal, targets ...int) error {
	label := strconv.Itoa(int(sig))
	if sig == syscall.SIGINT {
		label = "SIGINT"
	}
	return c.sendSignal(ctx, int(sig), label, targets)
}

// SendSignalName is SendSignal with the signal given by name ("SIGUSR1",
// "usr1"), which Go engines map to their own platform's number. Python
// engines accept numbers only.
func (c *Client) SendSignalName(ctx context.Context, name string, targets ...int) error {
	return c.sendSignal(ctx, name, name, targets)
}

func (c *Client) sendSignal(ctx context.Context, sig any, label string, targets []int) error {
	ids, err := c.resolveTargets(targets)
	if err != nil {
		return err
	}
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.controlRequest(ctx, id, "signal_request", map[string]any{"sig": sig})
		}()
	}
	wg.Wait()
	var se *SignalError
	for i, err := range errs {
		if err == nil {
			continue
		}
		if se == nil {
			se = &SignalError{Signal: label, Failed: map[int]error{}}
		}
		se.Failed[ids[i]] = err
	}
	if se != nil {
		return se
	}
	return nil
}
