package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	zmq4 "github.com/go-zeromq/zmq4"
)

// goZMQ is the pure-Go backend on top of github.com/go-zeromq/zmq4. It is
// always compiled in, so CGO_ENABLED=0 binaries have a transport; Default
// prefers libzmq whenever that is present too.
//
// What the wrapper adds to the library: Send only appends to a queue that
// a per-socket writer goroutine empties, so callers never wait for a peer;
// Connect returns at once and dials in the background with unlimited
// retries; Bind accepts port 0 and reports the port it got. What it cannot
// fix without replacing the library's socket layer (see docs/transport.md):
// the writer itself still blocks while a ROUTER or PUB writes to a peer
// that stopped reading, which delays every later message of that socket;
// messages sent while a connection is down are dropped; a peer reusing a
// live identity does not take the route over.
type goZMQ struct{}

func init() { register(goZMQ{}) }

func (goZMQ) Name() string { return "gozmq" }

// gozmqCloseGrace bounds how long Close lets queued messages leave, the
// counterpart of the one-second linger of the libzmq backend.
const gozmqCloseGrace = time.Second

// errOneEndpoint explains the single-endpoint restriction: go-zeromq keeps
// one listener and re-dials only the last endpoint, so a second Bind or
// Connect would silently break the first one.
var errOneEndpoint = errors.New("transport: a gozmq socket binds or connects exactly once")

func (goZMQ) NewSocket(t Type, o Options) (Socket, error) {
	if t == XPub {
		// go-zeromq's XPUB does not hand subscriptions to the reader.
		return nil, ErrNoXPub
	}
	if t < Router || t > Sub {
		return nil, fmt.Errorf("transport: unknown socket type %v", t)
	}
	if o.Curve != nil {
		// go-zeromq implements only the NULL mechanism; connecting without
		// CURVE would hang in a handshake the server never completes.
		return nil, ErrNoCurve
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &gsock{
		typ:        t,
		opts:       o,
		ctx:        ctx,
		cancel:     cancel,
		wake:       make(chan struct{}, 1),
		attached:   make(chan struct{}),
		in:         make(chan [][]byte, 4096),
		writerDone: make(chan struct{}),
		readerDone: make(chan struct{}),
	}
	if o.Ready {
		s.ready = make(chan struct{})
	}
	go s.writer()
	return s, nil
}

type gsock struct {
	typ  Type
	opts Options

	// ctx is the parent of the library socket's context: cancelling it
	// stops background dials, reconnects and blocked library sends.
	ctx    context.Context
	cancel context.CancelFunc

	// mu guards zs, out and closed.
	mu     sync.Mutex
	zs     zmq4.Socket // nil until the first Bind or Connect
	out    [][][]byte
	closed bool
	reader bool // whether a reader goroutine was started

	wake     chan struct{} // capacity 1: there is work for the writer
	attached chan struct{} // closed once zs is set
	in       chan [][]byte

	writerDone chan struct{}
	readerDone chan struct{}
	// ready is closed when the first Dial has returned: go-zeromq's Dial
	// completes the handshake (and a SUB's subscriptions) before it does.
	ready chan struct{}
}

// Ready is closed once the socket's connection is up; nil unless the
// socket was created with Options.Ready.
func (s *gsock) Ready() <-chan struct{} { return s.ready }

// newLibSocket creates the library socket. The socket type, identity and
// reconnect policy are construction-time options in go-zeromq, which is why
// the socket is created only when Bind or Connect tells us its role.
func (s *gsock) newLibSocket(dialer bool) (zmq4.Socket, error) {
	var opts []zmq4.Option
	if len(s.opts.Identity) > 0 {
		opts = append(opts, zmq4.WithID(zmq4.SocketIdentity(s.opts.Identity)))
	}
	if dialer {
		// Only a dialing socket may reconnect: the library re-dials the
		// socket's last endpoint whenever any connection drops, and for a
		// listener that endpoint is its own address.
		opts = append(opts, zmq4.WithAutomaticReconnect(true), zmq4.WithDialerMaxRetries(-1))
	}
	var zs zmq4.Socket
	switch s.typ {
	case Router:
		zs = zmq4.NewRouter(s.ctx, opts...)
	case Dealer:
		zs = zmq4.NewDealer(s.ctx, opts...)
	case Pub:
		zs = zmq4.NewPub(s.ctx, opts...)
		if s.opts.SendHWM > 0 {
			if err := zs.SetOption(zmq4.OptionHWM, s.opts.SendHWM); err != nil {
				zs.Close()
				return nil, err
			}
		}
	case Sub:
		zs = zmq4.NewSub(s.ctx, opts...)
		subs := s.opts.Subscribe
		if len(subs) == 0 {
			subs = [][]byte{nil}
		}
		// Stored now and sent by the library on every (re)connection.
		for _, p := range subs {
			if err := zs.SetOption(zmq4.OptionSubscribe, string(p)); err != nil {
				zs.Close()
				return nil, err
			}
		}
	}
	return zs, nil
}

// attach records the library socket and starts the goroutines that need
// it. Called with s.mu held.
func (s *gsock) attach(zs zmq4.Socket) {
	s.zs = zs
	close(s.attached)
	if s.typ != Pub {
		// A go-zeromq PUB's Recv fails at once instead of blocking, so a
		// reader there would spin; PUB never receives anyway.
		s.reader = true
		go s.read(zs)
	}
}

func (s *gsock) Bind(endpoint string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", ErrClosed
	}
	if s.zs != nil {
		return "", errOneEndpoint
	}
	zs, err := s.newLibSocket(false)
	if err != nil {
		return "", err
	}
	if err := zs.Listen(endpoint); err != nil {
		zs.Close()
		return "", fmt.Errorf("bind %s: %w", endpoint, err)
	}
	bound := endpoint
	if a, ok := zs.Addr().(*net.TCPAddr); ok {
		bound = tcpEndpoint(endpoint, a)
	}
	s.attach(zs)
	return bound, nil
}

// tcpEndpoint spells the bound address the way libzmq's LAST_ENDPOINT does,
// so both backends hand the same strings to connection files: a wildcard
// bind reports 0.0.0.0 although Go listens dual-stack on [::].
func tcpEndpoint(requested string, a *net.TCPAddr) string {
	host, _, err := net.SplitHostPort(strings.TrimPrefix(requested, "tcp://"))
	if err == nil && (host == "*" || host == "" || host == "0.0.0.0") {
		return fmt.Sprintf("tcp://0.0.0.0:%d", a.Port)
	}
	return "tcp://" + a.String()
}

// checkEndpoint rejects what libzmq's zmq_connect would reject at once; the
// dial itself happens in the background, where errors cannot be returned.
func checkEndpoint(endpoint string) error {
	scheme, addr, ok := strings.Cut(endpoint, "://")
	if !ok || addr == "" {
		return fmt.Errorf("connect %s: invalid endpoint", endpoint)
	}
	switch scheme {
	case "tcp":
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("connect %s: %w", endpoint, err)
		}
	case "ipc", "inproc":
	default:
		return fmt.Errorf("connect %s: unsupported transport %q", endpoint, scheme)
	}
	return nil
}

func (s *gsock) Connect(endpoint string) error {
	if err := checkEndpoint(endpoint); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.zs != nil {
		return errOneEndpoint
	}
	zs, err := s.newLibSocket(true)
	if err != nil {
		return err
	}
	s.attach(zs)
	go s.dial(zs, endpoint)
	return nil
}

// dial runs the library's Dial, which blocks until the peer is up (it
// retries refused connections forever with our options), so that Connect
// can return at once like zmq_connect.
func (s *gsock) dial(zs zmq4.Socket, endpoint string) {
	// An error here is a failed handshake (e.g. an incompatible socket
	// type) or a cancelled context; libzmq would keep retrying the former,
	// but go-zeromq leaks the TCP connection on every failed handshake, so
	// retrying a misconfiguration would exhaust file descriptors.
	err := zs.Dial(endpoint)
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if err == nil && s.ready != nil {
		close(s.ready)
	}
	if closed {
		// Close may have run between the dial's success and the library
		// adding the connection; closing again catches that connection.
		zs.Close()
	}
}

// signal wakes the writer without ever blocking.
func (s *gsock) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// writer hands queued messages to the library one by one. This goroutine,
// not the callers of Send, is what waits when the library blocks: before
// the first connection of a DEALER (the library parks the send until a
// peer appears, like libzmq's queue) and while a peer does not read.
func (s *gsock) writer() {
	defer close(s.writerDone)
	select {
	case <-s.attached:
	case <-s.ctx.Done():
		return
	}
	s.mu.Lock()
	zs := s.zs
	s.mu.Unlock()
	for {
		s.mu.Lock()
		batch, closed := s.out, s.closed
		s.out = nil
		s.mu.Unlock()
		for _, m := range batch {
			if s.ctx.Err() != nil {
				return
			}
			// Errors mean the peer's connection broke mid-write or the
			// socket is closing; libzmq drops in both cases as well.
			_ = zs.SendMulti(zmq4.NewMsgFrom(m...))
		}
		if len(batch) > 0 {
			continue
		}
		if closed {
			return
		}
		select {
		case <-s.wake:
		case <-s.ctx.Done():
			return
		}
	}
}

// read moves received messages to the Messages channel.
func (s *gsock) read(zs zmq4.Socket) {
	defer close(s.readerDone)
	for {
		msg, err := zs.Recv()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			// DEALER and SUB report each broken connection once; the
			// socket itself lives on and reconnects.
			continue
		}
		if msg.Type == zmq4.CmdMsg {
			// ZMTP commands (PING and the like) are not application data.
			continue
		}
		select {
		case s.in <- msg.Frames:
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *gsock) Send(frames [][]byte) error {
	if err := checkSend(s.typ, frames); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.out = append(s.out, frames)
	s.mu.Unlock()
	s.signal()
	return nil
}

func (s *gsock) Messages() <-chan [][]byte { return s.in }

func (s *gsock) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	zs, reader := s.zs, s.reader
	s.mu.Unlock()
	s.signal()
	if zs != nil {
		// Let the writer empty the queue, within the grace period.
		grace := time.NewTimer(gozmqCloseGrace)
		select {
		case <-s.writerDone:
		case <-grace.C:
		}
		grace.Stop()
	}
	s.cancel()
	if zs != nil {
		// Closing the connections also frees a writer stuck on a peer
		// that does not read.
		zs.Close()
	}
	<-s.writerDone
	if reader {
		<-s.readerDone
	}
	close(s.in)
	return nil
}
