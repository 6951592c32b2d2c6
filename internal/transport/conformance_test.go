package transport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/testutil"
)

// knownFailures is the one place where a backend is excused from a
// conformance case: backend name → case name → why. Excused cases still
// run; the test then asserts that they still fail (and logs how), and fails
// if one starts passing, so that this table and docs/transport.md stay true.
var knownFailures = map[string]map[string]string{
	"gozmq": {
		"StalledPeer": "go-zeromq's ROUTER writes to all peers under one mutex with no per-peer queue, " +
			"so the socket's writer blocks on the stalled peer and later messages to healthy peers wait",
		"ShortDisconnect": "go-zeromq keeps no outbound queue: messages sent while the connection is down are dropped (bug 2)",
		"IdentityTakeover": "go-zeromq keeps both connections of a duplicated identity and writes to both; " +
			"there is no ROUTER_HANDOVER (bug 6)",
		"SilentConnection": "go-zeromq's accept loop runs each ZMTP handshake inline with no timeout, " +
			"so one TCP connection that never sends its greeting stops all later accepts",
	},
}

// conformanceCases is the suite every compiled-in backend runs.
var conformanceCases = []struct {
	name string
	run  func(t tester, b Backend)
}{
	{"RouterDealer", caseRouterDealer},
	{"RouterRouter", caseRouterRouter},
	{"ManyAndLargeFrames", caseManyAndLargeFrames},
	{"PubSubPrefix", casePubSubPrefix},
	{"PyzmqDealerToRouter", casePyzmqDealerToRouter},
	{"PyzmqRouterFromDealer", casePyzmqRouterFromDealer},
	{"PyzmqRouterRouter", casePyzmqRouterRouter},
	{"StalledPeer", caseStalledPeer},
	{"PeerRestart", casePeerRestart},
	{"IdentityTakeover", caseIdentityTakeover},
	{"ShortDisconnect", caseShortDisconnect},
	{"SilentConnection", caseSilentConnection},
	{"ConnectBeforeBind", caseConnectBeforeBind},
	{"ReadyAfterHandshake", caseReadyAfterHandshake},
	{"SendBeforeConnect", caseSendBeforeConnect},
	{"ConcurrentSend", caseConcurrentSend},
	{"SlowConsumer", caseSlowConsumer},
	{"Lifecycle", caseLifecycle},
	{"ThousandPeers", caseThousandPeers},
}

func TestConformance(t *testing.T) {
	for _, name := range Names() {
		b, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) {
			for _, c := range conformanceCases {
				t.Run(c.name, func(t *testing.T) { runCase(t, b, c.name, c.run) })
			}
		})
	}
}

func TestDefaultBackend(t *testing.T) {
	want := "gozmq"
	for _, n := range Names() {
		if n == "zmq" {
			want = "zmq"
		}
	}
	if got := Default().Name(); got != want {
		t.Fatalf("Default() = %s, want %s (compiled in: %v)", got, want, Names())
	}
}

// runCase runs one case; for a known failure it runs the case against a
// recorder and turns the outcome around.
func runCase(t *testing.T, b Backend, name string, run func(tester, Backend)) {
	why, excused := knownFailures[b.Name()][name]
	if !excused {
		run(t, b)
		return
	}
	r := &recorder{T: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(r, b)
	}()
	<-done
	switch {
	case r.skip != "":
		t.Skip(r.skip)
	case len(r.errs) == 0:
		t.Errorf("XPASS: %s now passes on %s; remove it from knownFailures and update docs/transport.md (was: %s)",
			name, b.Name(), why)
	default:
		t.Logf("XFAIL (known, %s): %s\n\tobserved: %s", b.Name(), why, strings.Join(r.errs, "; "))
	}
}

// tester is the part of *testing.T the cases use, so that a recorder can
// stand in for known failures.
type tester interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

// recorder collects failures instead of reporting them. Fatalf and Skipf end
// the calling goroutine like their testing counterparts.
type recorder struct {
	*testing.T
	mu   sync.Mutex
	errs []string
	skip string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Skipf(format string, args ...any) {
	r.mu.Lock()
	r.skip = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

// ---------------------------------------------------------------------------
// Helpers

// waitFor polls cond every few milliseconds until it holds (true) or
// timeout passes (false).
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// eventually polls cond until it holds, failing the test with the given
// message when timeout passes first.
func eventually(t tester, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	if !waitFor(timeout, cond) {
		t.Fatalf("not within %v: %s", timeout, fmt.Sprintf(format, args...))
	}
}

// within runs f and fails the test if it has not returned after timeout;
// f then keeps running in the background, which only a failing test allows.
func within(t tester, timeout time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		t.Fatalf("%s did not return within %v", what, timeout)
	}
}

func newSock(t tester, b Backend, typ Type, o Options) Socket {
	t.Helper()
	s, err := b.NewSocket(typ, o)
	if err != nil {
		t.Fatalf("NewSocket(%v): %v", typ, err)
	}
	t.Cleanup(func() { closeSock(t, s) })
	return s
}

// closeSock closes s but does not let a hanging Close hang the whole run.
func closeSock(t tester, s Socket) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Close()
	}()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		t.Errorf("Close did not return within 10s")
	}
}

func bindLocal(t tester, s Socket) string {
	t.Helper()
	ep, err := s.Bind("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatalf("Bind: %v", err)
	}
	if !strings.HasPrefix(ep, "tcp://127.0.0.1:") || strings.HasSuffix(ep, ":0") {
		t.Fatalf("Bind returned %q, want the real tcp://127.0.0.1:PORT", ep)
	}
	return ep
}

func connect(t tester, s Socket, ep string) {
	t.Helper()
	var err error
	within(t, 5*time.Second, "Connect", func() { err = s.Connect(ep) })
	if err != nil {
		t.Fatalf("Connect(%s): %v", ep, err)
	}
}

func send(t tester, s Socket, frames ...[]byte) {
	t.Helper()
	if err := s.Send(frames); err != nil {
		t.Fatalf("Send: %v", err)
	}
}

func strs(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func recvWithin(t tester, s Socket, timeout time.Duration) [][]byte {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case m, ok := <-s.Messages():
		if !ok {
			t.Fatalf("Messages closed while waiting")
		}
		return m
	case <-timer.C:
		t.Fatalf("no message within %v", timeout)
	}
	return nil
}

func recv(t tester, s Socket) [][]byte {
	t.Helper()
	return recvWithin(t, s, 10*time.Second)
}

// recvSkipping is recv that ignores messages whose last frame is probe.
func recvSkipping(t tester, s Socket, probe string) [][]byte {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := recvWithin(t, s, time.Until(deadline))
		if string(m[len(m)-1]) != probe {
			return m
		}
	}
}

// probeUntil calls send every 20 ms until a message arrives on s and
// returns it. Messages to a peer whose handshake has not finished are
// dropped by design, so only repetition tells when a route is up.
func probeUntil(t tester, s Socket, timeout time.Duration, send func()) [][]byte {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	send()
	for {
		select {
		case m, ok := <-s.Messages():
			if !ok {
				t.Fatalf("Messages closed while probing")
			}
			return m
		case <-tick.C:
			send()
		case <-deadline.C:
			t.Fatalf("no answer to probes within %v", timeout)
			return nil
		}
	}
}

func wantFrames(t tester, got [][]byte, want ...[]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d frames %s, want %d %s", len(got), show(got), len(want), show(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d: got %s, want %s", i, show(got), show(want))
		}
	}
}

// show prints frames readably, abbreviating long ones.
func show(frames [][]byte) string {
	parts := make([]string, len(frames))
	for i, f := range frames {
		if len(f) > 24 {
			parts[i] = fmt.Sprintf("%q…(%d B)", f[:16], len(f))
		} else {
			parts[i] = fmt.Sprintf("%q", f)
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// freeEndpoint returns a loopback endpoint nobody listens on (now).
func freeEndpoint(t tester) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return "tcp://" + addr
}

// rawPeer is a hand-made ZMTP 3.0 DEALER: it completes the NULL handshake
// with a given identity and then either never reads (a stalled process) or
// reads and discards everything until the other side closes.
type rawPeer struct {
	conn   net.Conn
	closed atomic.Bool // the other side closed the connection

	mu   sync.Mutex
	data bytes.Buffer // everything read after the handshake
}

// received returns a copy of what the peer has read so far.
func (p *rawPeer) received() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.data.Bytes())
}

func dialRawPeer(t tester, ep, identity string, reads bool) *rawPeer {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(ep, "tcp://"))
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write(testutil.ZMTPGreeting("DEALER", identity)); err != nil {
		t.Fatalf("raw handshake: %v", err)
	}
	// Read the other side's greeting and READY before sending data: libzmq
	// treats anything that arrives before it has sent its own READY as a
	// handshake command and drops the connection.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := readGreetingAndReady(conn); err != nil {
		t.Fatalf("raw handshake: %v", err)
	}
	conn.SetReadDeadline(time.Time{})
	// One single-frame message, so the ROUTER side can see the route is up.
	if _, err := conn.Write([]byte{0x00, 5, 'h', 'e', 'l', 'l', 'o'}); err != nil {
		t.Fatalf("raw hello: %v", err)
	}
	p := &rawPeer{conn: conn}
	if reads {
		go func() {
			buf := make([]byte, 64<<10)
			for {
				n, err := conn.Read(buf)
				p.mu.Lock()
				p.data.Write(buf[:n])
				p.mu.Unlock()
				if err != nil {
					p.closed.Store(true)
					return
				}
			}
		}()
	}
	return p
}

// readGreetingAndReady consumes a ZMTP 3 greeting and the first frame,
// which under the NULL mechanism is the READY command.
func readGreetingAndReady(r io.Reader) error {
	greeting := make([]byte, 64)
	if _, err := io.ReadFull(r, greeting); err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if greeting[0] != 0xff || greeting[9] != 0x7f || greeting[10] != 3 {
		return fmt.Errorf("unexpected greeting %q", greeting[:12])
	}
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return fmt.Errorf("READY: %w", err)
	}
	size := uint64(hdr[1])
	if hdr[0]&0x02 != 0 { // long frame: 8-byte size, first byte already read
		rest := make([]byte, 7)
		if _, err := io.ReadFull(r, rest); err != nil {
			return fmt.Errorf("READY: %w", err)
		}
		size = binary.BigEndian.Uint64(append([]byte{hdr[1]}, rest...))
	}
	cmd := make([]byte, size)
	if _, err := io.ReadFull(r, cmd); err != nil {
		return fmt.Errorf("READY: %w", err)
	}
	if hdr[0]&0x04 == 0 || !bytes.HasPrefix(cmd, []byte("\x05READY")) {
		return fmt.Errorf("expected READY, got flags %#x %q", hdr[0], cmd)
	}
	return nil
}

// tcpPortStates reports which states the local TCP sockets on port are
// in ("LISTEN", "ESTABLISHED", "CLOSE_WAIT"), according to
// /proc/net/tcp{,6}. Without /proc it can only tell whether something
// accepts connections, and reports that as LISTEN.
func tcpPortStates(port string) map[string]bool {
	var p int
	fmt.Sscan(port, &p)
	hexPort := fmt.Sprintf(":%04X", p)
	names := map[string]string{"01": "ESTABLISHED", "08": "CLOSE_WAIT", "0A": "LISTEN"}
	states := map[string]bool{}
	found := false
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		found = true
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 4 {
				continue
			}
			local, remote, state := fields[1], fields[2], fields[3]
			if name, ok := names[state]; ok && (strings.HasSuffix(local, hexPort) || strings.HasSuffix(remote, hexPort)) {
				states[name] = true
			}
		}
	}
	if !found {
		if c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", port)); err == nil {
			c.Close()
			states["LISTEN"] = true
		}
	}
	return states
}

// ---------------------------------------------------------------------------
// Cases

// caseRouterDealer: multipart both ways, the DEALER's identity visible on
// the ROUTER, empty and long (>255 B) frames intact, anonymous DEALERs
// routable.
func caseRouterDealer(t tester, b Backend) {
	r := newSock(t, b, Router, Options{Identity: []byte("router")})
	ep := bindLocal(t, r)
	d := newSock(t, b, Dealer, Options{Identity: []byte("dealer-1")})
	connect(t, d, ep)
	big := bytes.Repeat([]byte("x"), 70000)

	send(t, d, []byte("hello"), nil, big)
	wantFrames(t, recv(t, r), []byte("dealer-1"), []byte("hello"), nil, big)
	send(t, r, []byte("dealer-1"), []byte("reply"), nil, big)
	wantFrames(t, recv(t, d), []byte("reply"), nil, big)

	anon := newSock(t, b, Dealer, Options{})
	connect(t, anon, ep)
	send(t, anon, []byte("anon"))
	m := recv(t, r)
	if len(m) != 2 || len(m[0]) == 0 || string(m[1]) != "anon" {
		t.Fatalf("anonymous DEALER: ROUTER got %s", show(m))
	}
	send(t, r, m[0], []byte("back"))
	wantFrames(t, recv(t, anon), []byte("back"))
}

// caseManyAndLargeFrames: messages longer than one receive call takes
// (libzmq's backend reads 32 frames per cgo call), frames of every size
// class (empty, small ones that share a buffer, large ones of their own)
// arrive intact and in order, and each received frame is its own: append
// to one never overwrites the next.
func caseManyAndLargeFrames(t tester, b Backend) {
	r := newSock(t, b, Router, Options{})
	ep := bindLocal(t, r)
	d := newSock(t, b, Dealer, Options{Identity: []byte("many")})
	connect(t, d, ep)

	var frames [][]byte
	for i := range 70 {
		switch i % 7 {
		case 3:
			frames = append(frames, nil)
		case 5:
			big := make([]byte, 3<<20+i)
			for j := range big {
				big[j] = byte(j*7 + i)
			}
			frames = append(frames, big)
		default:
			frames = append(frames, []byte(fmt.Sprintf("frame %d", i)))
		}
	}
	send(t, d, frames...)
	m := recv(t, r)
	wantFrames(t, m, append([][]byte{[]byte("many")}, frames...)...)
	for i := 1; i+1 < len(m); i++ {
		next := string(m[i+1])
		m[i] = append(m[i], "overwritten"...)
		if string(m[i+1]) != next {
			t.Fatalf("append to frame %d changed frame %d", i, i+1)
		}
	}
	// Around the 32 frames one receive call takes, and a single frame.
	for _, n := range []int{31, 32, 33, 64, 1} {
		send(t, d, make([][]byte, n)...)
		if got := recv(t, r); len(got) != n+1 {
			t.Fatalf("%d frames sent, %d received (with the identity)", n, len(got))
		}
	}
}

// caseRouterRouter is the ipyparallel engine pattern: the engine's ROUTER,
// identity = its uuid, connects to the controller's ROUTER "mux_out".
func caseRouterRouter(t tester, b Backend) {
	const uuid = "5b0c7a4e-2f6d-4c55-9a1e-0d3b8f6e7c21"
	ctrl := newSock(t, b, Router, Options{Identity: []byte("mux_out")})
	ep := bindLocal(t, ctrl)
	eng := newSock(t, b, Router, Options{Identity: []byte(uuid)})
	connect(t, eng, ep)

	m := probeUntil(t, ctrl, 10*time.Second, func() { eng.Send(strs("mux_out", "ready")) })
	wantFrames(t, m, strs(uuid, "ready")...)
	send(t, ctrl, strs(uuid, "req", "payload")...)
	wantFrames(t, recvSkipping(t, eng, "ready"), strs("mux_out", "req", "payload")...)
	send(t, eng, strs("mux_out", "rep")...)
	wantFrames(t, recvSkipping(t, ctrl, "ready"), strs(uuid, "rep")...)
}

// casePubSubPrefix: prefix filtering per subscriber, multipart, order.
func casePubSubPrefix(t tester, b Backend) {
	pub := newSock(t, b, Pub, Options{})
	ep := bindLocal(t, pub)
	subs := map[string]Socket{
		"a":   newSock(t, b, Sub, Options{Subscribe: strs("a.")}),
		"b":   newSock(t, b, Sub, Options{Subscribe: strs("b.")}),
		"all": newSock(t, b, Sub, Options{}),
	}
	allowed := map[string]func(topic string) bool{
		"a":   func(tp string) bool { return strings.HasPrefix(tp, "a.") },
		"b":   func(tp string) bool { return strings.HasPrefix(tp, "b.") },
		"all": func(string) bool { return true },
	}
	for _, s := range subs {
		connect(t, s, ep)
	}

	// Subscriptions travel to the PUB asynchronously; publish probes until
	// every subscriber has seen one.
	ready := map[string]bool{}
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for len(ready) < len(subs) {
		if time.Now().After(deadline) {
			t.Fatalf("subscriptions not propagated within 10s (ready: %v)", ready)
		}
		send(t, pub, strs("a.probe")...)
		send(t, pub, strs("b.probe")...)
		<-tick.C
		for name, s := range subs {
		drain:
			for {
				select {
				case m := <-s.Messages():
					if !allowed[name](string(m[0])) {
						t.Fatalf("SUB %s got %s", name, show(m))
					}
					ready[name] = true
				default:
					break drain
				}
			}
		}
	}

	const n = 100
	for i := 0; i < n; i++ {
		for _, tp := range []string{"a.data", "b.data", "c.data"} {
			send(t, pub, []byte(tp), []byte(fmt.Sprint(i)))
		}
	}
	for _, tp := range []string{"a.end", "b.end", "c.end"} {
		send(t, pub, []byte(tp))
	}

	check := func(name, until string, topics ...string) {
		t.Helper()
		next := map[string]int{}
		for {
			m := recv(t, subs[name])
			tp := string(m[0])
			if !allowed[name](tp) {
				t.Fatalf("SUB %s got %s", name, show(m))
			}
			if strings.HasSuffix(tp, ".probe") {
				continue
			}
			if tp == until {
				break
			}
			if strings.HasSuffix(tp, ".end") {
				continue
			}
			if len(m) != 2 || string(m[1]) != fmt.Sprint(next[tp]) {
				t.Fatalf("SUB %s: got %s, want %s #%d", name, show(m), tp, next[tp])
			}
			next[tp]++
		}
		for _, tp := range topics {
			if next[tp] != n {
				t.Fatalf("SUB %s: %d × %s, want %d (all: %v)", name, next[tp], tp, n, next)
			}
		}
		if len(next) != len(topics) {
			t.Fatalf("SUB %s: topics %v, want %v", name, next, topics)
		}
	}
	check("a", "a.end", "a.data")
	check("b", "b.end", "b.data")
	check("all", "c.end", "a.data", "b.data", "c.data")
}

// python is the interpreter that sees Debian's python3-zmq (not pyenv's).
const python = "/usr/bin/python3"

// needPyzmq skips loudly when pyzmq is missing, except in CI where a
// missing peer is a broken environment.
func needPyzmq(t tester) {
	t.Helper()
	out, err := exec.Command(python, "-c", "import zmq; print(zmq.zmq_version())").CombinedOutput()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("pyzmq interop NOT TESTED: %s cannot import zmq (%v: %s); install python3-zmq",
		python, err, bytes.TrimSpace(out))
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s", msg)
	}
	t.Skipf("%s", msg)
}

// pyPeer runs testdata/pyzmq_peer.py in the given mode.
type pyPeer struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr bytes.Buffer
}

func startPyPeer(t tester, args ...string) *pyPeer {
	t.Helper()
	needPyzmq(t)
	script, err := filepath.Abs(filepath.Join("testdata", "pyzmq_peer.py"))
	if err != nil {
		t.Fatalf("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	p := &pyPeer{cmd: exec.CommandContext(ctx, python, append([]string{script}, args...)...), lines: make(chan string, 16)}
	p.cmd.Stderr = &p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatalf("%v", err)
	}
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", python, err)
	}
	t.Cleanup(func() {
		cancel()
		p.cmd.Wait()
	})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	return p
}

func (p *pyPeer) line(t tester) string {
	t.Helper()
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	select {
	case l, ok := <-p.lines:
		if !ok {
			p.cmd.Wait()
			t.Fatalf("pyzmq peer ended early: %s", p.stderr.String())
		}
		return l
	case <-timer.C:
		t.Fatalf("pyzmq peer said nothing within 20s: %s", p.stderr.String())
	}
	return ""
}

// finish waits for the script's final "ok" and a clean exit.
func (p *pyPeer) finish(t tester) {
	t.Helper()
	if l := p.line(t); l != "ok" {
		t.Fatalf("pyzmq peer: %q, stderr: %s", l, p.stderr.String())
	}
	var err error
	within(t, 20*time.Second, "pyzmq peer exit", func() { err = p.cmd.Wait() })
	if err != nil {
		t.Fatalf("pyzmq peer: %v: %s", err, p.stderr.String())
	}
}

// casePyzmqDealerToRouter: a pyzmq DEALER with an identity talks to our ROUTER.
func casePyzmqDealerToRouter(t tester, b Backend) {
	needPyzmq(t)
	r := newSock(t, b, Router, Options{})
	ep := bindLocal(t, r)
	p := startPyPeer(t, "dealer", ep)
	wantFrames(t, recvWithin(t, r, 20*time.Second), []byte("py-dealer"), []byte("hello"), nil, bytes.Repeat([]byte("x"), 1000))
	send(t, r, []byte("py-dealer"), []byte("reply"), nil, bytes.Repeat([]byte("y"), 1000))
	p.finish(t)
}

// casePyzmqRouterFromDealer: our DEALER with an identity talks to a pyzmq ROUTER.
func casePyzmqRouterFromDealer(t tester, b Backend) {
	needPyzmq(t)
	p := startPyPeer(t, "router")
	ep := p.line(t)
	d := newSock(t, b, Dealer, Options{Identity: []byte("go-dealer")})
	connect(t, d, ep)
	send(t, d, []byte("ping"), nil, bytes.Repeat([]byte("x"), 1000))
	wantFrames(t, recvWithin(t, d, 20*time.Second), []byte("pong"), nil, bytes.Repeat([]byte("y"), 1000))
	p.finish(t)
}

// casePyzmqRouterRouter: our engine-style ROUTER connects to a pyzmq
// controller ROUTER with identity "mux_out".
func casePyzmqRouterRouter(t tester, b Backend) {
	needPyzmq(t)
	p := startPyPeer(t, "router-peer")
	ep := p.line(t)
	eng := newSock(t, b, Router, Options{Identity: []byte("engine-uuid-1")})
	connect(t, eng, ep)
	m := probeUntil(t, eng, 20*time.Second, func() { eng.Send(strs("mux_out", "ready")) })
	wantFrames(t, m, []byte("mux_out"), []byte("req"), nil)
	send(t, eng, strs("mux_out", "rep")...)
	p.finish(t)
}

// caseStalledPeer: a peer that stops reading must not delay messages to
// the other peers of the same ROUTER, nor block the callers of Send.
func caseStalledPeer(t tester, b Backend) {
	r := newSock(t, b, Router, Options{Identity: []byte("ctrl")})
	ep := bindLocal(t, r)
	healthy := newSock(t, b, Dealer, Options{Identity: []byte("healthy")})
	connect(t, healthy, ep)
	send(t, healthy, []byte("hello"))
	dialRawPeer(t, ep, "stalled", false)
	seen := map[string]bool{}
	for len(seen) < 2 {
		m := recv(t, r)
		wantFrames(t, m[1:], []byte("hello"))
		seen[string(m[0])] = true
	}
	if !seen["healthy"] || !seen["stalled"] {
		t.Fatalf("routes seen: %v", seen)
	}

	// 400 × 64 KiB = 25 MiB, far beyond what loopback socket buffers hold.
	const floods = 400
	payload := make([]byte, 64<<10)
	start := time.Now()
	within(t, 5*time.Second, "Send to a stalled peer", func() {
		for i := 0; i < floods; i++ {
			r.Send([][]byte{[]byte("stalled"), payload})
		}
		r.Send(strs("healthy", "still-alive"))
	})
	t.Logf("%d sends returned in %v", floods+1, time.Since(start))
	wantFrames(t, recvWithin(t, healthy, 5*time.Second), []byte("still-alive"))
}

// casePeerRestart: a peer that closes and comes back with the same
// identity receives what is routed to that identity.
func casePeerRestart(t tester, b Backend) {
	r := newSock(t, b, Router, Options{})
	ep := bindLocal(t, r)
	for round := 0; round < 3; round++ {
		d := newSock(t, b, Dealer, Options{Identity: []byte("engine-7")})
		connect(t, d, ep)
		msg := fmt.Sprintf("to-%d", round)
		m := probeUntil(t, d, 10*time.Second, func() { r.Send(strs("engine-7", msg)) })
		wantFrames(t, m, []byte(msg))
		send(t, d, []byte(fmt.Sprintf("from-%d", round)))
		for {
			m := recv(t, r)
			if string(m[0]) != "engine-7" {
				t.Fatalf("ROUTER got %s", show(m))
			}
			if string(m[1]) == fmt.Sprintf("from-%d", round) {
				break
			}
		}
		closeSock(t, d)
	}
}

// caseIdentityTakeover: when a new peer claims the identity of a
// connection that is still open (a crashed node whose TCP connection has
// not timed out yet), the ROUTER routes to the new peer only; the old
// connection gets nothing more.
func caseIdentityTakeover(t tester, b Backend) {
	r := newSock(t, b, Router, Options{})
	ep := bindLocal(t, r)
	old := dialRawPeer(t, ep, "engine-9", true)
	wantFrames(t, recv(t, r), []byte("engine-9"), []byte("hello"))

	d := newSock(t, b, Dealer, Options{Identity: []byte("engine-9")})
	connect(t, d, ep)
	m := probeUntil(t, d, 10*time.Second, func() { r.Send(strs("engine-9", "probe")) })
	wantFrames(t, m, []byte("probe"))
	const n = 20
	for i := 0; i < n; i++ {
		send(t, r, []byte("engine-9"), []byte(fmt.Sprint("after-", i)))
	}
	for i := 0; i < n; i++ {
		wantFrames(t, recvSkipping(t, d, "probe"), []byte(fmt.Sprint("after-", i)))
	}
	// Closing the ROUTER ends the old connection too; TCP delivers whatever
	// was written to it before the end, so the old peer's bytes are then
	// complete and can be checked for absence without guessing a delay.
	closeSock(t, r)
	eventually(t, 10*time.Second, old.closed.Load, "the old connection of engine-9 did not end when the ROUTER closed")
	if k := bytes.Count(old.received(), []byte("after-")); k > 0 {
		t.Fatalf("the old connection of engine-9 also received %d of the %d messages meant for the new peer", k, n)
	}
}

// caseShortDisconnect: a DEALER keeps what it is given while its ROUTER is
// down for about half a second and delivers it all after the ROUTER comes
// back on the same port.
func caseShortDisconnect(t tester, b Backend) {
	ep := freeEndpoint(t)
	r1 := newSock(t, b, Router, Options{})
	if _, err := r1.Bind(ep); err != nil {
		t.Fatalf("Bind(%s): %v", ep, err)
	}
	d := newSock(t, b, Dealer, Options{Identity: []byte("d")})
	connect(t, d, ep)
	send(t, d, []byte("before"))
	wantFrames(t, recv(t, r1), []byte("d"), []byte("before"))

	closeSock(t, r1)
	// A message written into the dying connection is lost with any ZMTP
	// implementation (there are no acknowledgements), so the outage starts
	// only once the DEALER's side of the connection is gone too: then the
	// DEALER has noticed and must queue.
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(ep, "tcp://"))
	eventually(t, 5*time.Second, func() bool { st := tcpPortStates(port); return !st["LISTEN"] && !st["ESTABLISHED"] },
		"port %s still has a listener or an established connection after the ROUTER closed", port)
	// The DEALER has the FIN; closing its end shows it has acted on it.
	// A backend that never does (go-zeromq keeps the dead connection until
	// the redial succeeds) gets a second and then the outage starts anyway.
	if !waitFor(time.Second, func() bool { return !tcpPortStates(port)["CLOSE_WAIT"] }) {
		t.Logf("the DEALER kept its end of the dead connection open (CLOSE_WAIT) for 1s; going on")
	}

	// The outage itself: ten messages, one every 50 ms.
	const n = 10
	tick := time.NewTicker(50 * time.Millisecond)
	for i := 0; i < n; i++ {
		send(t, d, []byte(fmt.Sprint("during-", i)))
		<-tick.C
	}
	tick.Stop()

	r2 := newSock(t, b, Router, Options{})
	eventually(t, 5*time.Second, func() bool { _, err := r2.Bind(ep); return err == nil }, "re-bind %s", ep)
	// A reconnecting DEALER may need a few hundred milliseconds to find the
	// new ROUTER: keep sending "after" until something arrives.
	first := probeUntil(t, r2, 10*time.Second, func() { d.Send(strs("after")) })
	got := []string{string(first[1])}
	for got[len(got)-1] != "after" {
		m := recvWithin(t, r2, 10*time.Second)
		got = append(got, string(m[1]))
	}
	want := []string{}
	for i := 0; i < n; i++ {
		want = append(want, fmt.Sprint("during-", i))
	}
	want = append(want, "after")
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("after the outage the ROUTER got %v, want %v", got, want)
	}
}

// caseSilentConnection: a TCP connection that never says anything (a port
// scanner, a half-dead client) does not keep real peers out.
func caseSilentConnection(t tester, b Backend) {
	r := newSock(t, b, Router, Options{})
	ep := bindLocal(t, r)
	silent, err := net.Dial("tcp", strings.TrimPrefix(ep, "tcp://"))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { silent.Close() })
	d := newSock(t, b, Dealer, Options{Identity: []byte("real")})
	connect(t, d, ep)
	send(t, d, []byte("hello"))
	wantFrames(t, recvWithin(t, r, 5*time.Second), []byte("real"), []byte("hello"))
}

// caseConnectBeforeBind: Connect succeeds while nobody listens and the
// message queued meanwhile arrives once the ROUTER binds.
func caseConnectBeforeBind(t tester, b Backend) {
	ep := freeEndpoint(t)
	d := newSock(t, b, Dealer, Options{Identity: []byte("early")})
	connect(t, d, ep)
	send(t, d, []byte("queued"))
	// Let a few connection attempts fail first: this wait is the scenario
	// (a controller that starts late), not synchronisation.
	time.Sleep(300 * time.Millisecond)
	r := newSock(t, b, Router, Options{})
	if _, err := r.Bind(ep); err != nil {
		t.Fatalf("Bind(%s): %v", ep, err)
	}
	wantFrames(t, recv(t, r), []byte("early"), []byte("queued"))
}

// caseReadyAfterHandshake: a SUB created with Options.Ready says it is
// ready only once the publisher has completed the ZMTP handshake, and by
// then its subscription is on the wire. The publisher is a hand-made
// ZMTP peer, so the test decides when the handshake may complete.
func caseReadyAfterHandshake(t tester, b Backend) {
	plain := newSock(t, b, Sub, Options{})
	if rs, ok := plain.(ReadySource); ok && rs.Ready() != nil {
		t.Errorf("Ready() is not nil on a socket created without Options.Ready")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	sub := newSock(t, b, Sub, Options{Ready: true})
	rs, ok := sub.(ReadySource)
	if !ok || rs.Ready() == nil {
		t.Fatalf("a SUB created with Options.Ready has no Ready channel")
	}
	ready := rs.Ready()
	connect(t, sub, "tcp://"+l.Addr().String())
	l.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	conn, err := l.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	// The SUB's greeting starts with the signature; once it is here the
	// connection is established on its side, and only our silence keeps
	// the handshake from completing. An implementation that signals on
	// the TCP connection alone is caught within this wait; a correct one
	// can never be ready here, however slow the machine.
	sig := make([]byte, 10)
	if _, err := io.ReadFull(conn, sig); err != nil {
		t.Fatalf("reading the SUB's signature: %v", err)
	}
	if waitFor(300*time.Millisecond, func() bool { return isClosed(ready) }) {
		t.Fatalf("Ready before the publisher sent its greeting")
	}
	if _, err := conn.Write(testutil.ZMTPGreeting("PUB", "")); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	if err := readGreetingAndReady(io.MultiReader(bytes.NewReader(sig), conn)); err != nil {
		t.Fatalf("the SUB's handshake: %v", err)
	}
	// ZMTP 3.0 sends a subscription as a message: 0x01 and the prefix
	// (empty: everything).
	sub1 := make([]byte, 3)
	if _, err := io.ReadFull(conn, sub1); err != nil {
		t.Fatalf("no subscription after the handshake: %v", err)
	}
	if !bytes.Equal(sub1, []byte{0x00, 0x01, 0x01}) {
		t.Fatalf("expected the subscription to everything, got %q", sub1)
	}
	eventually(t, 10*time.Second, func() bool { return isClosed(ready) }, "Ready never closed after the handshake")
}

// isClosed tells whether ch is closed, without waiting.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// caseSendBeforeConnect: Send on a DEALER that has no connection at all
// yet neither blocks nor loses the message, and Connect still works.
func caseSendBeforeConnect(t tester, b Backend) {
	d := newSock(t, b, Dealer, Options{Identity: []byte("eager")})
	within(t, 2*time.Second, "Send before Connect", func() { d.Send(strs("first")) })
	r := newSock(t, b, Router, Options{})
	ep := bindLocal(t, r)
	connect(t, d, ep)
	wantFrames(t, recv(t, r), []byte("eager"), []byte("first"))
}

// caseConcurrentSend: Send from many goroutines; nothing lost, each
// goroutine's messages in its order.
func caseConcurrentSend(t tester, b Backend) {
	r := newSock(t, b, Router, Options{})
	ep := bindLocal(t, r)
	d := newSock(t, b, Dealer, Options{Identity: []byte("multi")})
	connect(t, d, ep)
	const senders, each = 8, 500
	var wg sync.WaitGroup
	for g := 0; g < senders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				d.Send([][]byte{[]byte(fmt.Sprint(g)), []byte(fmt.Sprint(i))})
			}
		}()
	}
	wg.Wait()
	next := make([]int, senders)
	for k := 0; k < senders*each; k++ {
		m := recv(t, r)
		var g, i int
		fmt.Sscan(string(m[1]), &g)
		fmt.Sscan(string(m[2]), &i)
		if i != next[g] {
			t.Fatalf("sender %d: got #%d, want #%d", g, i, next[g])
		}
		next[g]++
	}
}

// caseSlowConsumer: while nobody drains Messages (more arrive than its
// buffer holds), the same socket still sends, and nothing received is lost.
func caseSlowConsumer(t tester, b Backend) {
	r := newSock(t, b, Router, Options{})
	ep := bindLocal(t, r)
	d := newSock(t, b, Dealer, Options{Identity: []byte("slow")})
	connect(t, d, ep)
	send(t, d, []byte("hello"))
	wantFrames(t, recv(t, r), []byte("slow"), []byte("hello"))
	const n = 10000 // beyond the 4096 messages a Messages channel buffers
	for i := 0; i < n; i++ {
		send(t, r, []byte("slow"), []byte(fmt.Sprint(i)))
	}
	// Let the flood pile up on the DEALER's side before it sends.
	eventually(t, 10*time.Second, func() bool { return len(d.Messages()) == cap(d.Messages()) },
		"the DEALER's Messages buffer never filled (%d of %d)", len(d.Messages()), cap(d.Messages()))
	send(t, d, []byte("still-sending"))
	wantFrames(t, recvWithin(t, r, 5*time.Second), []byte("slow"), []byte("still-sending"))
	for i := 0; i < n; i++ {
		wantFrames(t, recv(t, d), []byte(fmt.Sprint(i)))
	}
}

// caseLifecycle: argument checks and what Close does.
func caseLifecycle(t tester, b Backend) {
	r := newSock(t, b, Router, Options{})
	ep := bindLocal(t, r)
	if err := r.Send(strs("only-an-id")); err == nil {
		t.Errorf("ROUTER Send without a body: no error")
	}
	if err := r.Send(nil); err == nil {
		t.Errorf("empty Send: no error")
	}
	sub := newSock(t, b, Sub, Options{})
	if err := sub.Send(strs("x")); err == nil {
		t.Errorf("SUB Send: no error")
	}
	d := newSock(t, b, Dealer, Options{})
	if err := d.Connect("nonsense"); err == nil {
		t.Errorf("Connect(nonsense): no error")
	}
	connect(t, d, ep)
	if _, err := b.NewSocket(Type(42), Options{}); err == nil {
		t.Errorf("NewSocket(Type(42)): no error")
	}

	within(t, 5*time.Second, "Close", func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := d.Send(strs("late")); err != ErrClosed {
		t.Errorf("Send after Close: %v, want ErrClosed", err)
	}
	if err := d.Connect(ep); err != ErrClosed {
		t.Errorf("Connect after Close: %v, want ErrClosed", err)
	}
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-d.Messages():
			if !ok {
				return
			}
		case <-timer.C:
			t.Fatalf("Messages not closed 5s after Close")
		}
	}
}

// caseThousandPeers: one ROUTER, 1000 DEALERs with distinct identities;
// each sends one message and gets one answer.
func caseThousandPeers(t tester, b Backend) {
	const n = 1000
	// Each peer costs two TCP descriptors plus, with libzmq, three mailbox
	// descriptors; raise the soft limit if the environment is stingy.
	need := uint64(n*6 + 256)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < need {
		if lim.Max < need {
			t.Fatalf("RLIMIT_NOFILE hard limit %d < %d needed", lim.Max, need)
		}
		old := lim.Cur
		lim.Cur = need
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatalf("raise RLIMIT_NOFILE: %v", err)
		}
		t.Logf("raised RLIMIT_NOFILE from %d to %d", old, need)
	}

	r := newSock(t, b, Router, Options{})
	ep := bindLocal(t, r)
	start := time.Now()
	dealers := make([]Socket, n)
	for i := range dealers {
		s, err := b.NewSocket(Dealer, Options{Identity: []byte(fmt.Sprintf("peer-%04d", i))})
		if err != nil {
			t.Fatalf("DEALER %d: %v", i, err)
		}
		dealers[i] = s
	}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, s := range dealers {
			if s != nil {
				wg.Add(1)
				go func() {
					defer wg.Done()
					closeSock(t, s)
				}()
			}
		}
		wg.Wait()
	})
	for i, s := range dealers {
		if err := s.Connect(ep); err != nil {
			t.Fatalf("DEALER %d Connect: %v", i, err)
		}
		send(t, s, []byte(fmt.Sprintf("hello-%04d", i)))
	}
	seen := map[string]bool{}
	for len(seen) < n {
		m := recvWithin(t, r, 30*time.Second)
		id := string(m[0])
		if len(m) != 2 || "hello-"+strings.TrimPrefix(id, "peer-") != string(m[1]) || seen[id] {
			t.Fatalf("ROUTER got %s (seen %d)", show(m), len(seen))
		}
		seen[id] = true
		send(t, r, m[0], []byte("welcome"), m[0])
	}
	for i, s := range dealers {
		wantFrames(t, recvWithin(t, s, 30*time.Second), []byte("welcome"), []byte(fmt.Sprintf("peer-%04d", i)))
	}
	t.Logf("%d peers connected, greeted and answered in %v", n, time.Since(start))
}
