//go:build cgo && !nolibzmq

package transport

import (
	"fmt"
	"sync/atomic"
	"syscall"

	zmq "github.com/pebbe/zmq4"
)

// monitor follows one socket's connections through libzmq's socket
// monitor: an inproc PAIR on which libzmq reports accepted and closed
// connections with their file descriptors. It counts open connections,
// closes those beyond the cap, and passes events on.
//
// Why descriptors are shut down rather than closed: the descriptor
// belongs to libzmq's I/O thread. shutdown(2) makes that thread see the
// connection end and clean up as for any peer that hung up, while the
// number stays allocated, so it cannot be reused under libzmq's feet.
type monitor struct {
	pair   *zmq.Socket
	events chan Event
	max    int
	done   chan struct{}
	// ready is closed at the first completed handshake; then onReady,
	// when set, is called (on its own goroutine: it may stop us).
	ready   chan struct{}
	onReady func()
}

var monitorSeq atomic.Uint64

// newMonitor starts monitoring sock; call it before Bind or Connect.
func newMonitor(sock *zmq.Socket, max int, onReady func()) (*monitor, error) {
	addr := fmt.Sprintf("inproc://ipp-monitor-%d", monitorSeq.Add(1))
	if err := sock.Monitor(addr, zmq.EVENT_ACCEPTED|zmq.EVENT_CONNECTED|zmq.EVENT_DISCONNECTED|
		zmq.EVENT_HANDSHAKE_SUCCEEDED|zmq.EVENT_MONITOR_STOPPED); err != nil {
		return nil, fmt.Errorf("transport: monitor: %w", err)
	}
	pair, err := zmq.NewSocket(zmq.PAIR)
	if err != nil {
		sock.Monitor("", 0)
		return nil, err
	}
	if err := pair.Connect(addr); err != nil {
		pair.Close()
		sock.Monitor("", 0)
		return nil, err
	}
	m := &monitor{pair: pair, events: make(chan Event, 1024), max: max, done: make(chan struct{}),
		ready: make(chan struct{}), onReady: onReady}
	go m.run()
	return m, nil
}

// run reads events until libzmq says monitoring stopped. It blocks in
// libzmq, on a thread of its own, which is fine for the few sockets that
// are monitored.
func (m *monitor) run() {
	defer close(m.done)
	defer m.pair.Close()
	open := map[int]bool{}
	for {
		ev, _, fd, err := m.pair.RecvEvent(0)
		if err != nil {
			if zmq.AsErrno(err) == zmq.Errno(syscall.EINTR) {
				continue
			}
			return
		}
		var out Event
		switch ev {
		case zmq.EVENT_ACCEPTED:
			if m.max > 0 && len(open) >= m.max {
				syscall.Shutdown(fd, syscall.SHUT_RDWR)
				out = Event{Kind: EventRefused, Open: len(open)}
				break
			}
			open[fd] = true
			out = Event{Kind: EventAccepted, Open: len(open)}
		case zmq.EVENT_CONNECTED:
			// A connecting socket: its connections count the same way,
			// so that their drops are reported.
			open[fd] = true
			out = Event{Kind: EventConnected, Open: len(open)}
		case zmq.EVENT_DISCONNECTED:
			if !open[fd] {
				// One we refused, or accepted before monitoring began.
				continue
			}
			delete(open, fd)
			out = Event{Kind: EventDisconnected, Open: len(open)}
		case zmq.EVENT_HANDSHAKE_SUCCEEDED:
			select {
			case <-m.ready:
			default:
				close(m.ready)
				if m.onReady != nil {
					go m.onReady()
				}
			}
			continue
		case zmq.EVENT_MONITOR_STOPPED:
			return
		default:
			continue
		}
		select {
		case m.events <- out:
		default:
		}
	}
}

// stop ends monitoring; sock's mutex is held by the caller. libzmq sends
// MONITOR_STOPPED, on which run returns.
func (m *monitor) stop(sock *zmq.Socket) {
	sock.Monitor("", 0)
	<-m.done
}
