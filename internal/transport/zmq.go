//go:build cgo && !nolibzmq

package transport

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	zmq "github.com/pebbe/zmq4"
)

// libzmq is the cgo backend on top of github.com/pebbe/zmq4.
type libzmq struct{}

func init() {
	// libzmq caps a context at 1023 sockets; a process that talks to many
	// peers (a test with 1,000 fake engines) needs more.
	zmq.SetMaxSockets(65536)
	register(libzmq{})
}

func (libzmq) Name() string { return "zmq" }

// zmqLinger is how long libzmq keeps trying to deliver queued messages
// after Close.
const zmqLinger = time.Second

// The reader has no periodic recheck: an idle socket costs no wake-ups
// at all (an engine has seven sockets; a 250 ms recheck on each was most
// of an idle engine's ~100 wake-ups a second, counting the Go runtime
// threads each timer woke). ZMQ_FD is edge-triggered and says only
// "libzmq's state may have changed", so correctness rests on two rules:
// the reader reads ZMQ_EVENTS last before it parks (collect), and every
// libzmq call made by anyone else is followed by wake (see there).

// batch is the most messages the reader takes from libzmq before handing
// them over, so a flood does not delay pending sends.
const batch = 256

// zsock is a libzmq socket shared by goroutines under a mutex, with a
// reader goroutine parked in Go's netpoller on a duplicate of ZMQ_FD.
//
// Why this shape: libzmq sockets are not thread-safe but may move between
// threads with a full memory barrier, which the mutex provides. Senders
// therefore call zmq_send directly from their own goroutine, and the
// reader needs no OS thread of its own while it waits. An earlier design
// (one locked thread per socket blocked in zmq_poll, sends handed to it
// through an inproc pair) cost two extra thread wake-ups per message hop.
type zsock struct {
	typ Type

	// mu guards every libzmq call on sock, pending and closed.
	mu      sync.Mutex
	sock    *zmq.Socket
	raw     unsafe.Pointer // libzmq's socket inside sock, for our own calls
	inPlace bool           // Options.InPlace: large frames leave without a copy
	pending [][][]byte     // refused for now (EAGAIN); sent in order when writable
	closed  bool

	mon  *monitor  // connection events, when asked for
	recv *receiver // whole messages per cgo call; nil for PUB
	// ready is the monitor's, kept here because a monitor wanted only
	// for it stops (and s.mon is cleared) once it is closed.
	ready  <-chan struct{}
	events <-chan Event // the monitor's, unless it is wanted only for ready

	fd   *os.File // duplicate of ZMQ_FD, registered with the netpoller
	in   chan [][]byte
	stop chan struct{} // closed by Close: the reader must not block
	done chan struct{} // closed when the reader has exited
}

// NewSocket creates and configures a libzmq socket and starts its reader.
func (libzmq) NewSocket(t Type, o Options) (Socket, error) {
	if t < Router || t > XPub {
		return nil, fmt.Errorf("transport: unknown socket type %v", t)
	}
	sock, err := zmq.NewSocket(zmqType(t))
	if err != nil {
		return nil, err
	}
	if err := configure(sock, t, o); err != nil {
		sock.Close()
		return nil, err
	}
	raw, err := sock.GetFd()
	if err != nil {
		sock.Close()
		return nil, err
	}
	// Our own descriptor for the same signal, so the netpoller can watch it
	// and closing it never touches libzmq's.
	dup, err := syscall.Dup(raw)
	if err != nil {
		sock.Close()
		return nil, fmt.Errorf("transport: dup ZMQ_FD: %w", err)
	}
	syscall.CloseOnExec(dup)
	if err := syscall.SetNonblock(dup, true); err != nil {
		syscall.Close(dup)
		sock.Close()
		return nil, err
	}
	s := &zsock{
		typ:     t,
		inPlace: o.InPlace,
		sock:    sock,
		fd:      os.NewFile(uintptr(dup), "zmq-fd"),
		in:      make(chan [][]byte, 4096),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if s.raw, err = rawSocket(sock); err != nil {
		s.fd.Close()
		sock.Close()
		return nil, err
	}
	if t != Pub {
		if s.recv, err = newReceiver(s.raw, o.HoldBuffers); err != nil {
			s.fd.Close()
			sock.Close()
			return nil, err
		}
	}
	if o.Events || o.MaxConnections > 0 || o.Ready {
		var onReady func()
		if !o.Events && o.MaxConnections == 0 {
			// Wanted for readiness only: a monitor holds a thread
			// blocked in libzmq, so it goes once it has said so.
			onReady = s.stopMonitor
		}
		// Before any Bind or Connect, so that no connection is missed.
		m, err := newMonitor(sock, o.MaxConnections, onReady)
		if err != nil {
			s.fd.Close()
			sock.Close()
			return nil, err
		}
		s.mon = m
		if onReady == nil {
			s.events = m.events
		}
		if o.Ready {
			s.ready = m.ready
		}
	}
	go s.read()
	return s, nil
}

func zmqType(t Type) zmq.Type {
	switch t {
	case Router:
		return zmq.ROUTER
	case Dealer:
		return zmq.DEALER
	case Pub:
		return zmq.PUB
	case XPub:
		return zmq.XPUB
	default:
		return zmq.SUB
	}
}

func configure(sock *zmq.Socket, t Type, o Options) error {
	if o.Curve != nil {
		if err := configureCurve(sock, *o.Curve); err != nil {
			return err
		}
	}
	if len(o.Identity) > 0 {
		if err := sock.SetIdentity(string(o.Identity)); err != nil {
			return err
		}
	}
	if o.MaxFrameSize > 0 {
		if err := sock.SetMaxmsgsize(o.MaxFrameSize); err != nil {
			return err
		}
	}
	if err := sock.SetSndhwm(o.SendHWM); err != nil {
		return err
	}
	if err := sock.SetRcvhwm(o.RecvHWM); err != nil {
		return err
	}
	if t == Router {
		// A peer that restarts with the same identity takes over its
		// route, unless identities must stay with their first owner.
		if err := sock.SetRouterHandover(!o.ExclusiveIdentities); err != nil {
			return err
		}
	}
	if t == XPub {
		// Every subscription, not only the first for each prefix: a
		// subscriber is a new client even when another has the same one.
		if err := sock.SetXpubVerbose(1); err != nil {
			return err
		}
	}
	if t == Sub {
		subs := o.Subscribe
		if len(subs) == 0 {
			subs = [][]byte{nil}
		}
		for _, p := range subs {
			if err := sock.SetSubscribe(string(p)); err != nil {
				return err
			}
		}
	}
	return nil
}

// configureCurve sets the CURVE options. They must precede Bind and
// Connect: libzmq fixes a connection's security mechanism when it starts.
func configureCurve(sock *zmq.Socket, c Curve) error {
	if !zmq.HasCurve() {
		return fmt.Errorf("%w (this libzmq was built without CURVE support)", ErrNoCurve)
	}
	c, err := c.resolve()
	if err != nil {
		return err
	}
	if c.Server {
		if err := sock.SetCurveServer(1); err != nil {
			return err
		}
		return sock.SetCurveSecretkey(c.SecretKey)
	}
	if err := sock.SetCurveServerkey(c.ServerKey); err != nil {
		return err
	}
	if err := sock.SetCurvePublickey(c.PublicKey); err != nil {
		return err
	}
	return sock.SetCurveSecretkey(c.SecretKey)
}

// read waits for libzmq's signal, takes what arrived and hands it to the
// consumer. It also flushes sends that libzmq refused earlier.
func (s *zsock) read() {
	defer close(s.done)
	rc, err := s.fd.SyscallConn()
	if err != nil {
		return
	}
	for {
		var got [][][]byte
		var stop bool
		// A wake-up is a read deadline in the past; clear it before
		// looking, so that a later wake-up is not lost. One that came
		// just before is not lost either: collect runs first and sees
		// the state the waker left.
		s.fd.SetReadDeadline(time.Time{})
		err := rc.Read(func(uintptr) bool {
			got, stop = s.collect()
			return len(got) > 0 || stop
		})
		for i, m := range got {
			select {
			case s.in <- m:
			case <-s.stop:
				for _, m := range got[i:] {
					Release(m)
				}
				return
			}
		}
		if stop {
			return
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
	}
}

// collect takes up to a batch of received messages and sends what is
// pending, all without blocking. ZMQ_EVENTS is read last, after every
// other libzmq call, so that libzmq's descriptor signals again for
// whatever comes next: the reader parks only when that last look found
// nothing to do.
func (s *zsock) collect() (got [][][]byte, stop bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, true
	}
	empty := 0
	ev := zmq.POLLOUT // try pending sends first; libzmq refuses if it must
	for {
		progress := false
		if ev&zmq.POLLOUT != 0 && len(s.pending) > 0 {
			before := len(s.pending)
			s.pending = s.flush(s.pending)
			progress = len(s.pending) < before
		}
		for len(got) < batch && s.recv != nil {
			msg, ok := s.recv.recv()
			if !ok {
				break
			}
			got = append(got, msg)
			progress = true
		}
		var err error
		ev, err = s.sock.GetEvents()
		if err != nil {
			return got, true
		}
		if len(got) >= batch {
			return got, false // the reader comes straight back
		}
		// A message or writability may have come between the calls
		// above and this check, and its signal has fired already: go
		// round again rather than park. Every pass but one in a row
		// makes progress, so this ends.
		work := (ev&zmq.POLLIN != 0 && s.recv != nil) || (ev&zmq.POLLOUT != 0 && len(s.pending) > 0)
		if !work {
			return got, false
		}
		if progress {
			empty = 0
		} else if empty++; empty > 1 {
			return got, false
		}
	}
}

// flush sends queued messages until libzmq refuses one with EAGAIN and
// returns the rest, in order. libzmq takes a multipart message whole or
// not at all, so a refusal never leaves half a message on the wire.
func (s *zsock) flush(pending [][][]byte) [][][]byte {
	for len(pending) > 0 {
		if err := sendMessage(s.raw, pending[0], s.inPlace); err == syscall.EAGAIN {
			break
		}
		// Sent, or refused for good (nothing else is possible without
		// ROUTER_MANDATORY): either way it leaves the queue, so that one
		// bad message cannot wedge the socket. Its held frames lose the
		// hold the queue took (libzmq has its own reference if it sent).
		Release(pending[0])
		pending[0] = nil
		pending = pending[1:]
	}
	if len(pending) == 0 {
		return nil
	}
	return pending
}

func (s *zsock) Bind(endpoint string) (string, error) {
	ep := endpoint
	if strings.HasPrefix(ep, "tcp://") && strings.HasSuffix(ep, ":0") {
		ep = strings.TrimSuffix(ep, ":0") + ":*"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", ErrClosed
	}
	if err := s.sock.Bind(ep); err != nil {
		return "", fmt.Errorf("bind %s: %w", endpoint, err)
	}
	s.wake()
	return s.sock.GetLastEndpoint()
}

func (s *zsock) Connect(endpoint string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.sock.Connect(endpoint); err != nil {
		return fmt.Errorf("connect %s: %w", endpoint, err)
	}
	s.wake()
	return nil
}

// Send hands the message to libzmq at once; when libzmq cannot take it
// yet (a DEALER with no peer so far, or at its HWM) it is kept, in order,
// and sent as soon as the socket is writable.
func (s *zsock) Send(frames [][]byte) error {
	if err := checkSend(s.typ, frames); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if len(s.pending) > 0 {
		s.pending = s.flush(s.pending)
		if len(s.pending) > 0 {
			retainHeld(frames)
			s.pending = append(s.pending, frames)
			s.wake()
			return nil
		}
	}
	if err := sendMessage(s.raw, frames, s.inPlace); err == syscall.EAGAIN {
		// Queued: held frames must outlive the caller's Release.
		retainHeld(frames)
		s.pending = append(s.pending, frames)
	}
	s.wake()
	return nil
}

// wake must follow any libzmq call other than the reader's: such a call
// may process the socket's pending commands and so drain ZMQ_FD. If a
// message arrived meanwhile, or the socket became writable while sends
// wait in pending, the reader's epoll wake-up is lost (epoll re-checks
// readiness when it reports, and the descriptor is no longer readable),
// and with no periodic recheck the reader would sleep until the next
// unrelated signal. So look, and wake the reader when it has work: a
// message to take or pending sends libzmq can now accept. When neither
// holds, whatever changes that later signals ZMQ_FD afresh. mu is held.
func (s *zsock) wake() {
	ev, err := s.sock.GetEvents()
	if err != nil {
		return
	}
	readable := ev&zmq.POLLIN != 0 && s.recv != nil
	writable := ev&zmq.POLLOUT != 0 && len(s.pending) > 0
	if readable || writable {
		s.fd.SetReadDeadline(time.Now())
	}
}

func (s *zsock) Messages() <-chan [][]byte { return s.in }

// Events delivers connection events; nil unless the socket was created
// with Options.Events or MaxConnections.
func (s *zsock) Events() <-chan Event {
	return s.events
}

// Ready is closed once a connection has completed its handshake; nil
// unless the socket was created with Options.Ready.
func (s *zsock) Ready() <-chan struct{} { return s.ready }

// stopMonitor ends a monitor that was wanted only for Ready.
func (s *zsock) stopMonitor() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.mon == nil {
		return
	}
	s.mon.stop(s.sock)
	s.mon = nil
	s.wake()
}

func (s *zsock) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.done
		return nil
	}
	s.closed = true
	close(s.stop)
	if s.mon != nil {
		s.mon.stop(s.sock)
	}
	s.mu.Unlock()
	// Wake the reader; it sees closed and exits.
	s.fd.SetReadDeadline(time.Now())
	<-s.done
	s.mu.Lock()
	// Last chance for what libzmq has not accepted yet; what it has
	// accepted gets the linger period.
	for _, m := range s.flush(s.pending) {
		Release(m)
	}
	s.pending = nil
	s.sock.SetLinger(zmqLinger)
	s.sock.Close()
	s.fd.Close()
	if s.recv != nil {
		s.recv.free()
	}
	s.mu.Unlock()
	close(s.in)
	return nil
}

// terminate ends libzmq's context; it blocks until every socket is closed
// and its queued messages are sent or the linger period has passed.
func (libzmq) terminate() {
	done := make(chan struct{})
	go func() { zmq.Term(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * zmqLinger):
		// A socket someone forgot to close would block Term forever; a
		// process on its way out should not hang for it.
	}
}
