//go:build cgo && !nolibzmq

package transport

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

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

var wakeSeq atomic.Uint64

// zmqLinger is how long libzmq keeps trying to deliver queued messages
// after Close.
const zmqLinger = time.Second

// heldRetry is how often the loop retries handing a received message to a
// consumer whose Messages buffer is full. Meanwhile it keeps sending and
// leaves further arrivals in libzmq's queue, where RecvHWM applies.
const heldRetry = 2 * time.Millisecond

// NewSocket creates the socket on its own goroutine, locked to one OS thread,
// because a libzmq socket must not be used from two threads.
func (libzmq) NewSocket(t Type, o Options) (Socket, error) {
	if t < Router || t > Sub {
		return nil, fmt.Errorf("transport: unknown socket type %v", t)
	}
	s := &zsock{
		typ:  t,
		in:   make(chan [][]byte, 4096),
		done: make(chan struct{}),
	}
	ready := make(chan error, 1)
	go s.loop(o, ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return s, nil
}

type zsock struct {
	typ Type

	// mu guards the queues, the closed flag and the wake socket's write side.
	mu     sync.Mutex
	out    [][][]byte
	ops    []func(*zmq.Socket)
	woken  bool
	closed bool
	wakeTx *zmq.Socket

	in   chan [][]byte
	done chan struct{}
}

func zmqType(t Type) zmq.Type {
	switch t {
	case Router:
		return zmq.ROUTER
	case Dealer:
		return zmq.DEALER
	case Pub:
		return zmq.PUB
	default:
		return zmq.SUB
	}
}

func (s *zsock) setup(o Options) (sock, wakeRx *zmq.Socket, err error) {
	sock, err = zmq.NewSocket(zmqType(s.typ))
	if err != nil {
		return nil, nil, err
	}
	fail := func(e error) (*zmq.Socket, *zmq.Socket, error) {
		sock.Close()
		if wakeRx != nil {
			wakeRx.Close()
		}
		if s.wakeTx != nil {
			s.wakeTx.Close()
		}
		return nil, nil, e
	}
	if len(o.Identity) > 0 {
		if err := sock.SetIdentity(string(o.Identity)); err != nil {
			return fail(err)
		}
	}
	if err := sock.SetSndhwm(o.SendHWM); err != nil {
		return fail(err)
	}
	if err := sock.SetRcvhwm(o.RecvHWM); err != nil {
		return fail(err)
	}
	if s.typ == Router {
		// A peer that restarts with the same identity takes over its route.
		if err := sock.SetRouterHandover(true); err != nil {
			return fail(err)
		}
	}
	if s.typ == Sub {
		subs := o.Subscribe
		if len(subs) == 0 {
			subs = [][]byte{nil}
		}
		for _, p := range subs {
			if err := sock.SetSubscribe(string(p)); err != nil {
				return fail(err)
			}
		}
	}
	addr := fmt.Sprintf("inproc://ipp-wake-%d", wakeSeq.Add(1))
	if wakeRx, err = zmq.NewSocket(zmq.PAIR); err != nil {
		return fail(err)
	}
	if err := wakeRx.Bind(addr); err != nil {
		return fail(err)
	}
	if s.wakeTx, err = zmq.NewSocket(zmq.PAIR); err != nil {
		return fail(err)
	}
	if err := s.wakeTx.Connect(addr); err != nil {
		return fail(err)
	}
	return sock, wakeRx, nil
}

// loop owns the libzmq socket: it waits on the socket and on the wake pair,
// writes queued messages in batches and hands received ones to s.in.
//
// Neither direction may block the loop, or one would starve the other and
// Bind/Connect/Close would hang: sends use DONTWAIT and what libzmq refuses
// for now (a DEALER with no connection yet, or at its HWM) waits in pending
// until the socket polls writable; a received message the consumer has no
// room for waits in held while the loop retries every heldRetry.
func (s *zsock) loop(o Options, ready chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(s.done)
	sock, wakeRx, err := s.setup(o)
	ready <- err
	if err != nil {
		close(s.in)
		return
	}
	var (
		pending [][][]byte
		held    [][]byte
	)
	defer func() {
		// Last chance for what libzmq has not accepted yet; what it has
		// accepted gets the linger period.
		flush(sock, pending)
		sock.SetLinger(zmqLinger)
		sock.Close()
		wakeRx.Close()
		s.mu.Lock()
		// Also reached when Poll fails: later Sends must see a closed
		// socket rather than write to a closed wake socket.
		s.closed = true
		s.wakeTx.Close()
		s.mu.Unlock()
		close(s.in)
	}()
	poller := zmq.NewPoller()
	sockID := poller.Add(sock, zmq.POLLIN)
	poller.Add(wakeRx, zmq.POLLIN)
	for {
		var events zmq.State
		if held == nil {
			events |= zmq.POLLIN
		}
		if len(pending) > 0 {
			events |= zmq.POLLOUT
		}
		poller.Update(sockID, events)
		timeout := time.Duration(-1)
		if held != nil {
			timeout = heldRetry
		}
		polled, err := poller.Poll(timeout)
		if err != nil {
			if zmq.AsErrno(err) == zmq.Errno(syscall.EINTR) {
				continue
			}
			return
		}
		if held != nil {
			select {
			case s.in <- held:
				held = nil
			default:
			}
		}
		for _, p := range polled {
			if p.Socket == wakeRx {
				for {
					if _, err := wakeRx.RecvBytes(zmq.DONTWAIT); err != nil {
						break
					}
				}
				s.mu.Lock()
				out, ops, closed := s.out, s.ops, s.closed
				s.out, s.ops, s.woken = nil, nil, false
				s.mu.Unlock()
				for _, op := range ops {
					op(sock)
				}
				pending = flush(sock, append(pending, out...))
				if closed {
					return
				}
				continue
			}
			if p.Events&zmq.POLLOUT != 0 {
				pending = flush(sock, pending)
			}
			if p.Events&zmq.POLLIN != 0 && held == nil {
				held = s.drain(sock)
			}
		}
	}
}

// flush sends queued messages until libzmq refuses one with EAGAIN and
// returns the rest, in order. libzmq takes a multipart message whole or
// not at all, so a refusal never leaves half a message on the wire.
func flush(sock *zmq.Socket, pending [][][]byte) [][][]byte {
	for len(pending) > 0 {
		_, err := sock.SendMessageDontwait(pending[0])
		if err != nil && zmq.AsErrno(err) == zmq.Errno(syscall.EAGAIN) {
			break
		}
		// Sent, or refused for good (nothing else is possible without
		// ROUTER_MANDATORY): either way it leaves the queue, so that one
		// bad message cannot wedge the socket.
		pending[0] = nil
		pending = pending[1:]
	}
	if len(pending) == 0 {
		return nil
	}
	return pending
}

// drain reads what is ready without blocking, at most a batch, so that
// queued sends are not starved by a flood of arrivals. It returns the
// message the consumer had no room for, if any.
func (s *zsock) drain(sock *zmq.Socket) [][]byte {
	for i := 0; i < 1024; i++ {
		msg, err := sock.RecvMessageBytes(zmq.DONTWAIT)
		if err != nil {
			return nil
		}
		select {
		case s.in <- msg:
		default:
			return msg
		}
	}
	return nil
}

// enqueue adds work for the loop and wakes it once per batch.
func (s *zsock) enqueue(msg [][]byte, op func(*zmq.Socket)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if msg != nil {
		s.out = append(s.out, msg)
	}
	if op != nil {
		s.ops = append(s.ops, op)
	}
	if !s.woken {
		s.woken = true
		if _, err := s.wakeTx.Send("", 0); err != nil {
			return err
		}
	}
	return nil
}

// call runs op on the loop goroutine and waits for its result.
func (s *zsock) call(op func(*zmq.Socket) error) error {
	res := make(chan error, 1)
	if err := s.enqueue(nil, func(z *zmq.Socket) { res <- op(z) }); err != nil {
		return err
	}
	select {
	case err := <-res:
		return err
	case <-s.done:
		return ErrClosed
	}
}

func (s *zsock) Bind(endpoint string) (string, error) {
	var bound string
	err := s.call(func(z *zmq.Socket) error {
		ep := endpoint
		if strings.HasPrefix(ep, "tcp://") && strings.HasSuffix(ep, ":0") {
			ep = strings.TrimSuffix(ep, ":0") + ":*"
		}
		if err := z.Bind(ep); err != nil {
			return fmt.Errorf("bind %s: %w", endpoint, err)
		}
		last, err := z.GetLastEndpoint()
		bound = last
		return err
	})
	return bound, err
}

func (s *zsock) Connect(endpoint string) error {
	return s.call(func(z *zmq.Socket) error {
		if err := z.Connect(endpoint); err != nil {
			return fmt.Errorf("connect %s: %w", endpoint, err)
		}
		return nil
	})
}

func (s *zsock) Send(frames [][]byte) error {
	if err := checkSend(s.typ, frames); err != nil {
		return err
	}
	return s.enqueue(frames, nil)
}

func (s *zsock) Messages() <-chan [][]byte { return s.in }

func (s *zsock) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if !s.woken {
		s.woken = true
		s.wakeTx.Send("", 0)
	}
	s.mu.Unlock()
	<-s.done
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
