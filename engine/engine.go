package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipp-hpc/ipp/internal/interp"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// executorGrace is how long Run waits, when stopping, for a running
// request to notice its cancelled context. A registered function that
// ignores its context cannot be stopped, and Run must return anyway.
const executorGrace = 2 * time.Second

// busyWait is how long a request waits for an interrupted snippet still
// blocked in compiled code before it is answered with a Busy error: the
// engine says it cannot run the request rather than hold it unanswered.
const busyWait = 5 * time.Second

// engine is the state of one Run.
type engine struct {
	// streams counts stream messages published, so a quiet Go apply can
	// tell whether it printed anything.
	streams atomic.Int64
	// mpiInterrupted is set by SIGINT on an MPI engine until MPI waits
	// may block again (see begin).
	mpiInterrupted atomic.Bool

	cfg  Config
	log  *slog.Logger
	sess *wire.Session
	uuid string

	// Set by registration, read-only afterwards.
	id       int
	hbPeriod time.Duration
	probe    probeMode

	// round is the registration whose ready probes are running; a new
	// one starts when the engine registers again (reconnect.go).
	round atomic.Pointer[registrationRound]
	recon reconnect
	// silenced is watchHeart's: the controller went silent.
	silenced bool
	// trimOnce: start-up memory is given back once (Config.TrimMemory).
	trimOnce sync.Once
	// ioMeta is the metadata of every IOPub message, encoded once.
	ioMeta []byte
	// heartPoke makes watchHeart look again at once (registerAgain).
	heartPoke chan struct{}
	// serving is the msg_id the executor took from the queue.
	serving atomic.Pointer[string]

	reg, shell, control, iopub, hbPing, hbPong transport.Socket
	// curve, when the controller uses CURVE, makes every socket a CURVE
	// client with one key pair for the engine's lifetime.
	curve *transport.Curve

	// ns is safe for concurrent use: clear_request from the control
	// goroutine waits for the executor's snippet.
	ns *interp.Namespace

	stdout, stderr *outputStream
	flushMu        sync.Mutex // guards streamParent and orders stream publishing
	streamParent   []byte

	queue *queue
	// execCount is the execution counter; only the executor touches it.
	execCount int

	runMu   sync.Mutex
	running *running // the request being executed, for signal_request

	lastPing atomic.Int64 // unix nanoseconds of the latest heartbeat ping
	pings    atomic.Int64 // heartbeat pings received

	stopOnce sync.Once
	stopCh   chan struct{}
	stopErr  error
	closing  chan struct{} // closed when Run starts tearing down
}

// running is the request in progress.
type running struct {
	msgID       string
	cancel      context.CancelFunc
	interrupted atomic.Bool
}

// Run registers an engine with the controller described by cfg.Info and
// serves it until ctx is cancelled, a control shutdown_request arrives, or
// the controller stops sending heartbeats. In every case it sends
// unregistration_request before returning, so clients learn at once. It
// returns nil for a requested stop (ctx or shutdown_request), an error when
// registration fails or the controller is lost (wrapping ErrControllerLost).
func Run(ctx context.Context, cfg Config) error {
	c, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	// The uuid comes first: MPI ranks adopt rank 0's as their world id.
	uuid := wire.NewID()
	if c.MPI {
		if err := startMPI(&c, uuid); err != nil {
			return err
		}
		defer stopMPI(&c)
	}
	curve, err := curveClient(c.Info.ServerKey())
	if err != nil {
		return err
	}
	e := &engine{
		curve:   curve,
		cfg:     c,
		log:     c.Logger.With("uuid", uuid),
		sess:    wire.NewSession([]byte(c.Info.Key), uuid),
		uuid:    uuid,
		ioMeta:  ioMetadata(uuid),
		id:      -1,
		queue:   newQueue(),
		stopCh:  make(chan struct{}),
		closing: make(chan struct{}),

		heartPoke: make(chan struct{}, 1),
	}
	e.round.Store(newRound(false))
	return e.run(ctx)
}

func (e *engine) run(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	e.stdout = newOutputStream("stdout", wake)
	e.stderr = newOutputStream("stderr", wake)
	if err := e.openNamespace(); err != nil {
		return err
	}
	if err := e.register(ctx); err != nil {
		e.closeNamespace()
		e.closeSockets()
		if ctx.Err() != nil {
			return nil // a requested stop, as after registration
		}
		return err
	}
	e.log = e.log.With("engine", e.id)
	if err := e.openChannels(); err != nil {
		e.unregister()
		e.closeNamespace()
		e.closeSockets()
		return err
	}
	e.log.Info("engine registered", "hb_period", e.hbPeriod, "registration", e.cfg.Info.URL(e.cfg.Info.Registration))

	// reqCtx is the parent of every request's context, so stopping the
	// engine interrupts whatever is running.
	reqCtx, cancelRequests := context.WithCancel(context.Background())
	defer cancelRequests()

	var wg sync.WaitGroup
	spawn := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}
	spawn(e.heart)
	spawn(e.watchHeart)
	spawn(e.listenRegistration)
	spawn(e.receiveShell)
	spawn(e.serveControl)
	spawn(func() { e.flusher(e.closing, wake) })
	first := e.round.Load()
	spawn(func() { e.sendReadyProbes(first) })
	execDone := make(chan struct{})
	go func() {
		defer close(execDone)
		e.executor(reqCtx)
	}()

	var reason error
	select {
	case <-ctx.Done():
		e.log.Info("stopping: context cancelled")
	case <-e.stopCh:
		reason = e.stopErr
	}
	close(e.closing)
	cancelRequests()
	e.queue.close()
	select {
	case <-execDone:
	case <-time.After(executorGrace):
		e.log.Warn("a request is still running; leaving it behind", "grace", executorGrace)
	}
	e.closeNamespace()
	e.flushStreams(true)
	e.unregister()
	e.closeSockets()
	wg.Wait()
	return reason
}

// stop ends Run with err as its result (nil for a requested shutdown); the
// first call wins.
func (e *engine) stop(err error) {
	e.stopOnce.Do(func() {
		e.stopErr = err
		close(e.stopCh)
	})
}

func (e *engine) openNamespace() error {
	opts := e.cfg.Interp
	opts.Stdout, opts.Stderr = e.stdout, e.stderr
	if !e.cfg.Sandbox {
		opts.Unrestricted = true
	}
	if opts.BusyWait == 0 {
		opts.BusyWait = busyWait
	}
	// The namespace recovers the panic and publishes it as the engine's
	// stderr; the log keeps a trace for whoever runs the engine.
	userHook := opts.OnGoroutinePanic
	opts.OnGoroutinePanic = func(pe *interp.Error) {
		e.log.Error("a goroutine of interpreted code panicked after its request ended; recovered", "panic", pe.Message)
		if userHook != nil {
			userHook(pe)
		}
	}
	ns, err := interp.New(opts)
	if err != nil {
		return fmt.Errorf("engine: cannot create the Go interpreter: %w", err)
	}
	e.ns = ns
	if e.cfg.Setup != nil {
		if err := e.cfg.Setup(ns); err != nil {
			return fmt.Errorf("engine: Config.Setup: %w", err)
		}
	}
	return nil
}

// closeNamespace releases the interpreter's output pipes, delivering what
// goroutines of earlier snippets printed, but does not wait long for a
// snippet that cannot be stopped.
func (e *engine) closeNamespace() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.ns.Close()
	}()
	select {
	case <-done:
	case <-time.After(executorGrace):
		e.log.Warn("the interpreter did not close in time")
	}
}

// newSocket creates a socket with the engine's uuid as its identity, as
// every engine socket carries it (spec §1.3), and connects it.
func (e *engine) newSocket(t transport.Type, endpoints ...string) (transport.Socket, error) {
	s, err := e.cfg.Transport.NewSocket(t, transport.Options{Identity: []byte(e.uuid), Curve: e.curve})
	if err != nil {
		return nil, fmt.Errorf("engine: %s socket: %w", t, err)
	}
	for _, ep := range endpoints {
		if err := s.Connect(ep); err != nil {
			s.Close()
			return nil, fmt.Errorf("engine: %s socket: %w", t, err)
		}
	}
	return s, nil
}

// openChannels creates the sockets used after registration (spec §4.2).
func (e *engine) openChannels() error {
	info := e.cfg.Info
	leaf := info.Broadcast[e.id%len(info.Broadcast)]
	var err error
	open := func(dst *transport.Socket, t transport.Type, endpoints ...string) {
		if err == nil {
			*dst, err = e.newSocket(t, endpoints...)
		}
	}
	open(&e.shell, transport.Router, info.URL(info.Mux), info.URL(info.Task), info.URL(leaf))
	open(&e.control, transport.Router, info.URL(info.Control))
	open(&e.iopub, transport.Pub, info.URL(info.IOPub))
	open(&e.hbPong, transport.Dealer, info.URL(info.HBPong))
	if err == nil {
		// A SUB with no prefixes subscribes to everything; it needs no
		// identity, but a PUB ping carries no routing anyway.
		e.hbPing, err = e.cfg.Transport.NewSocket(transport.Sub, transport.Options{Curve: e.curve})
		if err == nil {
			err = e.hbPing.Connect(info.URL(info.HBPing))
		}
	}
	return err
}

func (e *engine) closeSockets() {
	for _, s := range []transport.Socket{e.shell, e.control, e.iopub, e.hbPing, e.hbPong, e.reg} {
		if s != nil {
			s.Close()
		}
	}
}

// unregister tells the controller this engine is leaving; there is no
// reply to wait for.
func (e *engine) unregister() {
	if e.reg == nil {
		return
	}
	var id any
	if e.id >= 0 {
		id = e.id
	} else if e.cfg.RequestedID >= 0 {
		id = e.cfg.RequestedID
	}
	frames, _, err := e.sess.Build(wire.Out{MsgType: "unregistration_request", Content: map[string]any{"id": id}})
	if err == nil {
		err = e.reg.Send(frames)
	}
	if err != nil && !errors.Is(err, transport.ErrClosed) {
		e.log.Warn("cannot send unregistration_request", "err", err)
	}
}
