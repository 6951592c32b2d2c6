package ipp

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/transport"
)

// holdProxy forwards TCP connections to target, but only once released:
// until then it accepts and holds them, as a controller whose publisher is
// slow to answer looks from the client.
type holdProxy struct {
	l        net.Listener
	target   string
	release  chan struct{}
	mu       sync.Mutex
	accepted int
	conns    []net.Conn
}

func newHoldProxy(t *testing.T, target string) *holdProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdProxy{l: l, target: target, release: make(chan struct{})}
	t.Cleanup(func() {
		l.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.accepted++
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			go p.forward(c)
		}
	}()
	return p
}

func (p *holdProxy) forward(c net.Conn) {
	<-p.release
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
	c.Close()
}

func (p *holdProxy) port() int { return p.l.Addr().(*net.TCPAddr).Port }

func (p *holdProxy) held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// TestConnectWaitsForIOPubSubscription: Connect does not return while the
// IOPub SUB's handshake is incomplete, even though the hub has answered.
// A client that sent its first request then could lose that request's
// output to a PUB that drops what nobody is subscribed to yet (seen
// against Python's controller under load: no output, no idle, the request
// completing only after the output grace).
func TestConnectWaitsForIOPubSubscription(t *testing.T) {
	if _, ok := any(mustSub(t)).(transport.ReadySource); !ok {
		t.Skip("this transport cannot tell when a subscription is in place")
	}
	h := newFakeHub(t, map[int]string{0: uuidA})
	info := *h.info
	proxy := newHoldProxy(t, "127.0.0.1:"+strconv.Itoa(info.IOPub))
	info.IOPub = proxy.port()
	type result struct {
		c   *Client
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ConnectInfo(ctxT(t, 30*time.Second), &info, testOptions()...)
		done <- result{c, err}
	}()
	testutil.Eventually(t, 10*time.Second, func() bool {
		h.mu.Lock()
		asked := slices.Contains(h.queries, "connection_request")
		h.mu.Unlock()
		return asked && proxy.held() > 0
	}, "the client never asked the hub, or never dialled IOPub")
	// The hub has answered; only the held IOPub handshake is missing. A
	// client that does not wait returns within milliseconds of the reply.
	select {
	case r := <-done:
		if r.c != nil {
			r.c.Close()
		}
		t.Fatalf("Connect returned (err %v) before its IOPub subscription could be in place", r.err)
	case <-time.After(500 * time.Millisecond):
	}
	close(proxy.release)
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		r.c.Close()
	case <-time.After(20 * time.Second):
		t.Fatal("Connect did not return after the IOPub handshake")
	}
}

// TestConnectIOPubUnreachable: a hub that answers while its IOPub port
// never completes a handshake makes Connect fail, naming the port, within
// the connect timeout.
func TestConnectIOPubUnreachable(t *testing.T) {
	if _, ok := any(mustSub(t)).(transport.ReadySource); !ok {
		t.Skip("this transport cannot tell when a subscription is in place")
	}
	h := newFakeHub(t, nil)
	info := *h.info
	proxy := newHoldProxy(t, "127.0.0.1:"+strconv.Itoa(info.IOPub)) // never released
	info.IOPub = proxy.port()
	_, err := ConnectInfo(context.Background(), &info, append(testOptions(), WithConnectTimeout(time.Second))...)
	if err == nil || !strings.Contains(err.Error(), "iopub") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want a timeout naming the iopub port, got %v", err)
	}
}

// mustSub returns a SUB of the default transport, for capability checks.
func mustSub(t *testing.T) transport.Socket {
	t.Helper()
	s, err := transport.Default().NewSocket(transport.Sub, transport.Options{Ready: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
