package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// waitTimeout bounds every wait in these tests; generous because CI
// machines are slow, and only reached when something is broken.
const waitTimeout = 10 * time.Second

// inbox collects messages from a goroutine and lets the test wait for one
// matching a predicate, without sleeping.
type inbox struct {
	mu      sync.Mutex
	msgs    []*wire.Message
	changed chan struct{}
}

func newInbox() *inbox { return &inbox{changed: make(chan struct{})} }

func (b *inbox) add(m *wire.Message) {
	b.mu.Lock()
	b.msgs = append(b.msgs, m)
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

// all returns a snapshot of everything received.
func (b *inbox) all() []*wire.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*wire.Message(nil), b.msgs...)
}

// wait returns the first message satisfying pred, failing the test if
// none arrives within timeout.
func (b *inbox) wait(t testing.TB, timeout time.Duration, what string, pred func(*wire.Message) bool) *wire.Message {
	t.Helper()
	m, ok := b.waitFor(timeout, pred)
	if !ok {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
	return m
}

// waitFor returns the first message satisfying pred, or false after timeout.
func (b *inbox) waitFor(timeout time.Duration, pred func(*wire.Message) bool) (*wire.Message, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		for _, m := range b.msgs {
			if pred(m) {
				b.mu.Unlock()
				return m, true
			}
		}
		changed := b.changed
		b.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			return nil, false
		}
	}
}

// has reports whether a message satisfying pred has arrived.
func (b *inbox) has(pred func(*wire.Message) bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.msgs {
		if pred(m) {
			return true
		}
	}
	return false
}

func replyTo(id string) func(*wire.Message) bool {
	return func(m *wire.Message) bool { return m.Parent.MsgID == id }
}

// fakeOptions shape the fake controller's behaviour.
type fakeOptions struct {
	refuse      string        // answer registration with this error evalue
	mute        bool          // never answer registration_request
	pythonLike  bool          // ignore probes, never send registration_complete
	ackProbe    *bool         // "ready_probe" in the reply; nil leaves it out
	hbPeriodMS  int           // announced hb_period (default 100)
	pingEvery   time.Duration // ping period (default 20 ms)
	leaves      int           // broadcast leaves (default 2)
	key         string        // HMAC key (default a fixed test key)
	assignID    int           // engine id to assign (default 0)
	noHeartbeat bool          // never ping
	known       bool          // answer a registration again with "known": true, as our controller does for an engine it still has
}

// fake is a tiny in-test controller: the engine-facing sockets of
// ipyparallel's controller, bound on loopback port 0, with just enough
// behaviour to register one engine and route requests to it.
type fake struct {
	t      testing.TB
	opts   fakeOptions
	hub    *wire.Session // the controller's own messages
	client *wire.Session // requests, as a client would send them
	info   *wire.EngineInfo

	reg, mux, task, control, hbPing, hbPong, iopubSub transport.Socket
	leaves                                            []transport.Socket

	// Messages other than probes, per socket, and everything on IOPub.
	muxIn, taskIn, controlIn, regIn, iopub *inbox
	leafIn                                 []*inbox

	mu        sync.Mutex
	uuid      string
	regReq    map[string]json.RawMessage
	probes    map[string]int
	completed chan struct{}
	complOnce sync.Once

	pinging atomic.Bool
	pongs   atomic.Int64
	done    chan struct{}
}

func newFake(t testing.TB, opts fakeOptions) *fake {
	t.Helper()
	if opts.hbPeriodMS == 0 {
		opts.hbPeriodMS = 100
	}
	if opts.pingEvery == 0 {
		opts.pingEvery = 20 * time.Millisecond
	}
	if opts.leaves == 0 {
		opts.leaves = 2
	}
	if opts.key == "" {
		opts.key = "test-key-0123456789"
	}
	f := &fake{
		t:         t,
		opts:      opts,
		hub:       wire.NewSession([]byte(opts.key), ""),
		client:    wire.NewSession([]byte(opts.key), ""),
		muxIn:     newInbox(),
		taskIn:    newInbox(),
		controlIn: newInbox(),
		regIn:     newInbox(),
		iopub:     newInbox(),
		probes:    map[string]int{},
		completed: make(chan struct{}),
		done:      make(chan struct{}),
	}
	b := transport.Default()
	bind := func(typ transport.Type, ident string, subscribe bool) (transport.Socket, int) {
		o := transport.Options{}
		if ident != "" {
			o.Identity = []byte(ident)
		}
		s, err := b.NewSocket(typ, o)
		if err != nil {
			t.Fatal(err)
		}
		ep, err := s.Bind("tcp://127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port, err := strconv.Atoi(ep[strings.LastIndex(ep, ":")+1:])
		if err != nil {
			t.Fatal(err)
		}
		return s, port
	}
	info := &wire.EngineInfo{}
	info.Interface = "tcp://127.0.0.1"
	info.Key = opts.key
	info.SignatureScheme = "hmac-sha256"
	info.Location = "127.0.0.1"
	f.reg, info.Registration = bind(transport.Router, "", false)
	f.mux, info.Mux = bind(transport.Router, "mux_out", false)
	f.task, info.Task = bind(transport.Router, "task_out", false)
	f.control, info.Control = bind(transport.Router, "control_out", false)
	f.iopubSub, info.IOPub = bind(transport.Sub, "", true)
	f.hbPing, info.HBPing = bind(transport.Pub, "", false)
	f.hbPong, info.HBPong = bind(transport.Router, "", false)
	for i := 0; i < opts.leaves; i++ {
		s, port := bind(transport.Router, leafIdentity(i, opts.leaves), false)
		f.leaves = append(f.leaves, s)
		f.leafIn = append(f.leafIn, newInbox())
		info.Broadcast = append(info.Broadcast, port)
	}
	info.Defaults()
	f.info = info

	go f.serveRegistration()
	go f.collect(f.mux, "mux_out", f.muxIn)
	go f.collect(f.task, "task_out", f.taskIn)
	go f.collect(f.control, "control_out", f.controlIn)
	for i, s := range f.leaves {
		go f.collect(s, leafIdentity(i, opts.leaves), f.leafIn[i])
	}
	go f.collectIOPub()
	go func() {
		for range f.hbPong.Messages() {
			f.pongs.Add(1)
		}
	}()
	f.pinging.Store(!opts.noHeartbeat)
	go f.ping()
	t.Cleanup(f.close)
	return f
}

func (f *fake) close() {
	close(f.done)
	for _, s := range append([]transport.Socket{f.reg, f.mux, f.task, f.control, f.hbPing, f.hbPong, f.iopubSub}, f.leaves...) {
		s.Close()
	}
}

func (f *fake) ping() {
	start := time.Now()
	tick := time.NewTicker(f.opts.pingEvery)
	defer tick.Stop()
	for {
		select {
		case <-f.done:
			return
		case <-tick.C:
		}
		if !f.pinging.Load() {
			continue
		}
		if !f.opts.pythonLike {
			// Like our controller, which answers the engine's probes long
			// before its 3 s heartbeat: with pings every 20 ms an engine
			// whose probe sockets connect slowly (a loaded machine) would
			// otherwise take this for a Python controller after two pings.
			select {
			case <-f.completed:
			default:
				continue
			}
		}
		f.hbPing.Send([][]byte{[]byte(fmt.Sprint(time.Since(start).Seconds()))})
	}
}

func (f *fake) serveRegistration() {
	for frames := range f.reg.Messages() {
		m, err := f.hub.Parse(frames)
		if err != nil {
			f.t.Errorf("fake controller: bad registration message: %v", err)
			continue
		}
		if m.Header.MsgType != "registration_request" {
			f.regIn.add(m)
			continue
		}
		var c map[string]json.RawMessage
		if err := m.DecodeContent(&c); err != nil {
			f.t.Errorf("fake controller: %v", err)
			continue
		}
		f.mu.Lock()
		f.regReq = c
		f.uuid = string(m.Idents[0])
		f.mu.Unlock()
		if f.opts.mute {
			continue
		}
		var content any
		if f.opts.refuse != "" {
			content = map[string]any{"status": "error", "ename": "KeyError", "evalue": f.opts.refuse, "traceback": []string{"KeyError: " + f.opts.refuse}, "engine_info": map[string]any{}}
		} else {
			r := map[string]any{"status": "ok", "id": f.opts.assignID, "hb_period": f.opts.hbPeriodMS}
			if f.opts.ackProbe != nil {
				r["ready_probe"] = *f.opts.ackProbe
			}
			if f.opts.known && string(c["reregister"]) == "true" {
				r["known"] = true
			}
			content = r
		}
		f.sendHub(f.reg, [][]byte{m.Idents[0]}, "registration_reply", content)
	}
}

func (f *fake) sendHub(s transport.Socket, idents [][]byte, msgType string, content any) {
	frames, _, err := f.hub.Build(wire.Out{Idents: idents, MsgType: msgType, Content: content})
	if err != nil {
		f.t.Errorf("fake controller: %v", err)
		return
	}
	s.Send(frames)
}

// collect sorts what arrives on an engine-facing ROUTER: probes are
// counted (and complete the registration once every route has one), the
// rest goes to the test.
func (f *fake) collect(s transport.Socket, route string, in *inbox) {
	for frames := range s.Messages() {
		m, err := f.hub.Parse(frames)
		if err != nil {
			f.t.Errorf("fake controller: bad message on %s: %v", route, err)
			continue
		}
		if m.Header.MsgType != "engine_ready" {
			in.add(m)
			continue
		}
		f.mu.Lock()
		f.probes[route]++
		all := len(f.probes) == 4
		uuid := f.uuid
		f.mu.Unlock()
		if all && !f.opts.pythonLike {
			f.complOnce.Do(func() {
				f.sendHub(f.reg, [][]byte{[]byte(uuid)}, "registration_complete", map[string]any{"status": "ok", "id": f.opts.assignID})
				close(f.completed)
			})
		}
	}
}

func (f *fake) probeCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.probes {
		n += c
	}
	return n
}

func (f *fake) collectIOPub() {
	for frames := range f.iopubSub.Messages() {
		m, err := f.hub.Parse(frames)
		if err != nil {
			f.t.Errorf("fake controller: bad iopub message: %v", err)
			continue
		}
		f.iopub.add(m)
	}
}

func (f *fake) engineUUID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.uuid
}

// clientID is the routing id a client's DEALER would have at the relay.
var clientID = []byte{0, 'c', 'l', 'i'}

// send routes a request to the engine through s, as the mux/control relay
// does: [engine uuid, client id, DELIM, ...].
func (f *fake) send(s transport.Socket, msgType string, content, metadata any, buffers [][]byte, extraIdents ...[]byte) wire.Header {
	f.t.Helper()
	idents := [][]byte{[]byte(f.engineUUID())}
	idents = append(idents, extraIdents...)
	idents = append(idents, clientID)
	frames, h, err := f.client.Build(wire.Out{Idents: idents, MsgType: msgType, Content: content, Metadata: metadata, Buffers: buffers})
	if err != nil {
		f.t.Fatal(err)
	}
	if err := s.Send(frames); err != nil {
		f.t.Fatal(err)
	}
	return h
}

// until waits for the IOPub idle of msgID and returns the request's IOPub
// messages in arrival order.
func (f *fake) until(msgID string) []*wire.Message {
	f.t.Helper()
	f.iopub.wait(f.t, waitTimeout, "IOPub idle for "+msgID, func(m *wire.Message) bool {
		return m.Parent.MsgID == msgID && m.Header.MsgType == "status" && strings.Contains(string(m.Content), "idle")
	})
	var out []*wire.Message
	for _, m := range f.iopub.all() {
		if m.Parent.MsgID == msgID {
			out = append(out, m)
		}
	}
	return out
}

// warmUp waits until the engine's IOPub messages reach the fake: a PUB
// drops what it sends before the SUB's subscription arrives, so the first
// request of a test could otherwise lose its busy status.
func (f *fake) warmUp() {
	f.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		h := f.send(f.mux, "kernel_info_request", nil, nil, nil)
		if _, ok := f.iopub.waitFor(300*time.Millisecond, func(m *wire.Message) bool { return m.Parent.MsgID == h.MsgID }); ok {
			return
		}
	}
	f.t.Fatal("engine IOPub never reached the fake controller")
}

// runEngine starts Run against f and returns a function that waits for Run
// to return (with its error). The engine is stopped at the end of the test.
func runEngine(t testing.TB, f *fake, mod func(*Config)) (wait func() error, logs *logSink) {
	t.Helper()
	logs = &logSink{t: t}
	cfg := Config{
		Info:                f.info,
		Logger:              slog.New(logs),
		RequestedID:         -1,
		RegistrationTimeout: 5 * time.Second,
		Functions:           NewRegistry(),
	}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, cfg) }()
	var once sync.Once
	var err error
	wait = func() error {
		once.Do(func() {
			select {
			case err = <-errc:
			case <-time.After(waitTimeout):
				t.Errorf("Run did not return within %v", waitTimeout)
			}
		})
		return err
	}
	t.Cleanup(func() {
		cancel()
		wait()
		logs.stop()
	})
	return wait, logs
}

// start is the common preamble: a fake controller, a running engine that
// has completed registration, and a live IOPub.
func start(t testing.TB, opts fakeOptions, mod func(*Config)) (*fake, func() error, *logSink) {
	t.Helper()
	f := newFake(t, opts)
	wait, logs := runEngine(t, f, mod)
	select {
	case <-f.completed:
	case <-time.After(waitTimeout):
		t.Fatalf("registration did not complete; probes: %v", f.probes)
	}
	f.warmUp()
	return f, wait, logs
}

// logSink is a slog.Handler that keeps records for assertions and echoes
// them to the test log while the test runs.
type logSink struct {
	t       testing.TB
	mu      sync.Mutex
	lines   []string
	stopped bool
}

func (l *logSink) Enabled(context.Context, slog.Level) bool { return true }

func (l *logSink) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, b.String())
	if !l.stopped {
		l.t.Log(b.String())
	}
	return nil
}

func (l *logSink) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logSink) WithGroup(string) slog.Handler      { return l }

func (l *logSink) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
}

func (l *logSink) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}
