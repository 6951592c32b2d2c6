package transport

import (
	"errors"
	"fmt"
	"sort"
	"sync"
)

// Type is a ZeroMQ socket type.
type Type int

// The socket types IPython Parallel uses.
const (
	Router Type = iota
	Dealer
	Pub
	Sub
	// XPub is a PUB that also hands the subscriptions its subscribers send
	// to Messages, one single-frame message each (first byte 1 to
	// subscribe, 0 to unsubscribe, then the prefix): every subscription
	// (libzmq's XPUB_VERBOSE), and an unsubscription once a prefix's last
	// subscriber has left. Only the libzmq backend has it; the others
	// refuse it with ErrNoXPub.
	XPub
)

// ErrNoXPub is returned by backends that cannot report subscriptions.
var ErrNoXPub = errors.New("transport: this backend has no XPUB sockets")

func (t Type) String() string {
	switch t {
	case Router:
		return "ROUTER"
	case Dealer:
		return "DEALER"
	case Pub:
		return "PUB"
	case Sub:
		return "SUB"
	case XPub:
		return "XPUB"
	}
	return fmt.Sprintf("Type(%d)", int(t))
}

// Options configure a socket at creation time.
type Options struct {
	// Identity is the routing id the peer's ROUTER sees; empty lets the
	// library pick one (what ipyparallel clients do).
	Identity []byte
	// SendHWM and RecvHWM bound the queues in messages; 0 is unlimited,
	// which is what ipyparallel uses on every relay socket.
	SendHWM, RecvHWM int
	// Subscribe lists SUB prefixes; a SUB with none subscribes to everything.
	Subscribe [][]byte
	// Curve, when set, makes the socket a CurveZMQ server or client;
	// backends that cannot do CURVE refuse it with ErrNoCurve.
	Curve *Curve
	// ExclusiveIdentities makes a ROUTER refuse a peer whose identity is
	// already connected, instead of handing the route over to it (the
	// default, so that a restarted peer takes its route back). Sockets
	// facing untrusted peers need it: with handover, anyone who learns an
	// identity can steal that peer's traffic.
	ExclusiveIdentities bool
	// MaxFrameSize bounds each received frame in bytes; a peer that sends
	// a larger one is disconnected (libzmq's ZMQ_MAXMSGSIZE). 0: no bound.
	MaxFrameSize int64
	// MaxConnections caps the peers connected to a bound socket at once;
	// newer connections beyond it are closed as they are accepted. 0: no
	// cap. Backends without connection events ignore it.
	MaxConnections int
	// Events asks for connection events, read with Events (see
	// EventSource); backends without them never deliver any.
	Events bool
	// InPlace lets the backend send large frames straight from the
	// caller's memory, without a copy, until it has written them. Only for
	// sockets whose callers never touch a frame again after Send (a relay
	// forwarding what it received); elsewhere a caller that reuses or
	// changes its buffer after Send would change what is sent. libzmq's
	// backend copies otherwise; gozmq's always queues the caller's frames.
	InPlace bool
	// Ready asks for ReadySource's channel on a connecting socket.
	Ready bool
	// HoldBuffers leaves received Jupyter buffer frames of HoldMin bytes
	// or more in the backend's memory instead of copying them into Go's
	// (held.go): whoever reads Messages must Release them and copy what
	// it keeps. For relays that forward large buffers without keeping
	// them. Only the libzmq backend holds; the others deliver Go memory,
	// which Release ignores.
	HoldBuffers bool
}

// ReadySource is implemented by connecting sockets created with
// Options.Ready. The channel is closed once the socket's first connection
// has completed its handshake, which for a SUB means its subscriptions are
// on their way to the publisher. A PUB drops what it publishes before a
// subscription reaches it, so a subscriber that must not miss the answer
// to its own first request waits for this before asking.
type ReadySource interface {
	Ready() <-chan struct{}
}

// EventKind is what happened to one connection of a socket.
type EventKind int

const (
	// EventAccepted: a peer connected to a bound socket.
	EventAccepted EventKind = iota + 1
	// EventDisconnected: a peer's connection closed (it exited, was
	// killed, or its host went away), or was refused.
	EventDisconnected
	// EventRefused: an accepted connection was closed at once because the
	// socket had MaxConnections peers already.
	EventRefused
	// EventConnected: a connecting socket's connection was established
	// (again, after a drop: its peer restarted on the same address).
	EventConnected
)

func (k EventKind) String() string {
	switch k {
	case EventAccepted:
		return "accepted"
	case EventDisconnected:
		return "disconnected"
	case EventRefused:
		return "refused"
	case EventConnected:
		return "connected"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one connection event. Connections carry no peer identity at
// this level: an event says that some peer came or went.
type Event struct {
	Kind EventKind
	// Open is how many peers were connected after the event.
	Open int
}

// EventSource is implemented by sockets that can report connection events
// (libzmq's, created with Options.Events). The channel is buffered; when
// the reader falls behind, events are dropped rather than block the
// socket, so consumers must treat them as hints.
type EventSource interface {
	Events() <-chan Event
}

// Socket is one ZeroMQ-style socket.
//
// Send is safe for concurrent use and never waits for a peer: messages are
// queued and written by the backend. Messages delivers what arrives, one
// multipart message per element; the channel is closed by Close.
type Socket interface {
	// Bind listens on endpoint ("tcp://127.0.0.1:0" picks a free port) and
	// returns the endpoint actually bound.
	Bind(endpoint string) (string, error)
	// Connect dials endpoint; backends retry in the background until it is up.
	Connect(endpoint string) error
	// Send queues one multipart message. For a ROUTER, frame 0 is the peer's
	// routing id and at least one frame must follow; unknown ids are
	// dropped, as in libzmq. A SUB cannot send. The backend keeps the
	// frames until they are written, without copying: the caller must not
	// modify them after Send.
	Send(frames [][]byte) error
	// Messages is the stream of received multipart messages. For a ROUTER,
	// frame 0 is the sender's routing id.
	Messages() <-chan [][]byte
	// Close stops the socket; queued outgoing messages get a short grace
	// period to leave.
	Close() error
}

// Backend creates sockets.
type Backend interface {
	// Name identifies the backend ("zmq" or "gozmq").
	Name() string
	// NewSocket creates a socket of type t.
	NewSocket(t Type, o Options) (Socket, error)
}

// ErrClosed is returned by operations on a closed socket.
var ErrClosed = errors.New("transport: socket closed")

// checkSend rejects messages no backend can deliver, so that both report
// the mistake instead of one dropping it silently.
func checkSend(t Type, frames [][]byte) error {
	switch {
	case len(frames) == 0:
		return errors.New("transport: empty message")
	case t == Router && len(frames) < 2:
		return errors.New("transport: ROUTER message needs a routing id and a body")
	case t == Sub:
		return errors.New("transport: SUB sockets cannot send")
	}
	return nil
}

var (
	mu       sync.Mutex
	backends = map[string]Backend{}
	// preference orders Default's choice: libzmq first where compiled in.
	preference = []string{"zmq", "gozmq"}
)

// register adds a backend; called from each backend's init.
func register(b Backend) {
	mu.Lock()
	defer mu.Unlock()
	backends[b.Name()] = b
}

// Lookup returns the backend with the given name.
func Lookup(name string) (Backend, error) {
	mu.Lock()
	defer mu.Unlock()
	if b, ok := backends[name]; ok {
		return b, nil
	}
	if name == "zmq" {
		// The one backend that can be missing: say what leaves it out.
		return nil, fmt.Errorf("transport: no backend \"zmq\" in this build: it needs cgo and libzmq, "+
			"and this binary was built with CGO_ENABLED=0 or -tags nolibzmq (have %v)", names())
	}
	return nil, fmt.Errorf("transport: no backend %q in this build (have %v)", name, names())
}

// Names lists the backends compiled into this binary.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	return names()
}

func names() []string {
	var out []string
	for n := range backends {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Default returns the preferred backend: libzmq when the binary was built
// with cgo and libzmq, else the pure-Go one. The IPP_TRANSPORT environment
// variable is honoured by callers through Lookup, not here.
func Default() Backend {
	mu.Lock()
	defer mu.Unlock()
	for _, n := range preference {
		if b, ok := backends[n]; ok {
			return b
		}
	}
	panic("transport: no backend compiled in")
}

// terminator is implemented by backends whose library keeps delivering
// queued messages in background threads after Close (libzmq's linger).
type terminator interface{ terminate() }

// Shutdown waits, briefly, for messages still queued on closed sockets to
// leave, then releases the backends. Call it at the end of main, after
// every socket is closed: a process that exits right after Close can
// otherwise lose its last messages (an engine's unregistration). No socket
// may be created afterwards.
func Shutdown() {
	mu.Lock()
	bs := make([]Backend, 0, len(backends))
	for _, b := range backends {
		bs = append(bs, b)
	}
	mu.Unlock()
	for _, b := range bs {
		if t, ok := b.(terminator); ok {
			t.terminate()
		}
	}
}

// LargeFrame is the size from which OwnCopy copies a frame: below it the
// copy that libzmq makes on a socket without Options.InPlace costs little.
const LargeFrame = 64 << 10

// OwnCopy returns b itself when it is smaller than LargeFrame, else a copy
// in memory advised for transparent huge pages (copyLarge: from 64 MB on,
// the memory of earlier copies, collected, when they are garbage). A
// caller that must not hand its user's buffer to an InPlace socket (the
// user may change it once the call returns) sends the copy instead:
// filling 100 MB of huge pages costs a few milliseconds, where libzmq's
// own copy into fresh malloc'd memory faults 4 KiB at a time (~0.5 s on
// the VMs measured). The copy is the caller's to send in place and must
// not be modified.
func OwnCopy(b []byte) []byte {
	if len(b) < LargeFrame {
		return b
	}
	return copyLarge(b)
}

// copyChunk is how much of a large buffer copyPreemptible copies between
// two points where the goroutine can be preempted.
const copyChunk = 256 << 10

// copyPreemptible is copy for large buffers, done in pieces of copyChunk.
// runtime.memmove cannot be preempted, and a garbage collection that
// starts during one 100 MB copy into fresh memory (100–200 ms on the VMs
// measured) spins a thread in the collector's suspendG until the copy
// ends: in CPU profiles of a 100 MB push that spinning was 11–18 % of each
// process's CPU, taken from the others on a machine with two cores. A
// piece takes ~25 µs warm and ~1 ms into fresh pages, so the collector
// waits at most that long.
func copyPreemptible(dst, src []byte) int {
	n := min(len(dst), len(src))
	for off := 0; off < n; off += copyChunk {
		copy(dst[off:n], src[off:min(off+copyChunk, n)])
	}
	return n
}
