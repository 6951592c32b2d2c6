package controller_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// splitConfig is the layout the split exists for: engines on compute
// nodes reach a wildcard bind (CURVE on by CurveAuto), clients stay on
// loopback (CURVE off). Peers reach the wildcard side through Location
// 127.0.0.1, never through an external address.
func splitConfig(dir string) controller.Config {
	return controller.Config{IP: "*", Location: "127.0.0.1", ClientIP: "127.0.0.1", ProfileDir: dir,
		HeartbeatPeriod: 500 * time.Millisecond}
}

// listening returns the local address (as /proc/net/tcp spells it, e.g.
// 0100007F for 127.0.0.1) that TCP port is listening on, or "" if none.
func listening(t *testing.T, port int) string {
	t.Helper()
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Skipf("SKIP: cannot read the listening sockets here: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// sl local_address rem_address st ...; 0A is LISTEN.
		if len(fields) < 4 || fields[3] != "0A" {
			continue
		}
		addr, p, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(p, 16, 16); err == nil && int(n) == port {
			return addr
		}
	}
	return ""
}

// TestClientIPSplit: with IP "*" and ClientIP 127.0.0.1 the two
// connection files describe two sides: the engine side on every interface
// with CURVE, the client side on loopback without. Go engines (libzmq)
// register with CURVE, a pure-Go client runs work through the client
// side, and a peer without the server key gets nothing from any engine
// port.
func TestClientIPSplit(t *testing.T) {
	needCurve(t)
	dir := t.TempDir()
	c, logs := startController(t, splitConfig(dir))
	if !c.CurveEnabled() || c.ClientCurveEnabled() {
		t.Fatalf("engine side CURVE %v, client side %v; want on and off", c.CurveEnabled(), c.ClientCurveEnabled())
	}
	ci, err := wire.LoadClientInfo(c.ClientFile())
	if err != nil {
		t.Fatal(err)
	}
	ei, err := wire.LoadEngineInfo(c.EngineFile())
	if err != nil {
		t.Fatal(err)
	}
	if ei.CurveServerKey == nil || len(*ei.CurveServerKey) != 40 {
		t.Fatalf("engine file lacks curve_serverkey: %v", ei.CurveServerKey)
	}
	if ci.CurveServerKey != nil {
		t.Fatalf("client file has curve_serverkey %q; the loopback client side must not use CURVE", *ci.CurveServerKey)
	}
	if ci.Interface != "tcp://127.0.0.1" || ei.Interface != "tcp://0.0.0.0" {
		t.Fatalf("interfaces: client %q, engine %q", ci.Interface, ei.Interface)
	}
	if ci.Key == "" || ci.Key != ei.Key {
		t.Fatal("both files must carry the same HMAC key")
	}
	if ci.Registration == ei.Registration {
		t.Fatal("clients and engines share the registration port; clients need their own on the client side")
	}

	// Every port listens where its file says, and nowhere else.
	clientPorts := map[string]int{"registration": ci.Registration, "mux": ci.Mux, "control": ci.Control,
		"task": ci.Task, "iopub": ci.IOPub, "notification": ci.Notification, "broadcast": ci.Broadcast}
	enginePorts := map[string]int{"registration": ei.Registration, "mux": ei.Mux, "control": ei.Control,
		"task": ei.Task, "iopub": ei.IOPub, "hb_ping": ei.HBPing, "hb_pong": ei.HBPong}
	for i, p := range ei.Broadcast {
		enginePorts[fmt.Sprintf("broadcast[%d]", i)] = p
	}
	for name, p := range clientPorts {
		if got := listening(t, p); got != "0100007F" {
			t.Errorf("client %s port %d listens on %q, want 127.0.0.1 (0100007F)", name, p, got)
		}
	}
	for name, p := range enginePorts {
		if got := listening(t, p); got != "00000000" {
			t.Errorf("engine %s port %d listens on %q, want 0.0.0.0 (00000000)", name, p, got)
		}
	}

	// Go engines (libzmq) register over CURVE; the client runs on the
	// pure-Go transport, which has no CURVE at all.
	startEngines(t, c, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := ipp.ConnectInfo(ctx, c.ClientInfo(), ipp.WithTransport("gozmq"), ipp.WithLogger(newLogger(&testutil.SyncBuffer{})))
	if err != nil {
		t.Fatalf("pure-Go client on the loopback client side: %v", err)
	}
	t.Cleanup(func() { cl.Close() })
	if err := cl.WaitForEngines(ctx, 2, ipp.WaitOptions{Progress: ipp.ProgressOff}); err != nil {
		t.Fatal(err)
	}
	before := engineIDs(c)

	// Peers without the server key, with the real HMAC key (so that CURVE
	// alone stops them), on every engine-side port.
	plain, err := transport.Lookup("zmq")
	if err != nil {
		t.Fatal(err)
	}
	type port struct {
		name string
		url  string
		typ  transport.Type
	}
	ports := []port{
		{"engine registration", ei.URL(ei.Registration), transport.Dealer},
		{"engine mux", ei.URL(ei.Mux), transport.Dealer},
		{"engine control", ei.URL(ei.Control), transport.Dealer},
		{"engine task", ei.URL(ei.Task), transport.Dealer},
		{"engine hb_pong", ei.URL(ei.HBPong), transport.Dealer},
		{"engine hb_ping", ei.URL(ei.HBPing), transport.Sub},
		{"engine iopub", ei.URL(ei.IOPub), transport.Pub},
	}
	for i, p := range ei.Broadcast {
		ports = append(ports, port{fmt.Sprintf("engine broadcast %d", i), ei.URL(p), transport.Dealer})
	}
	signed := wire.NewSession([]byte(ci.Key), "keyless")
	var socks []transport.Socket
	for _, p := range ports {
		s, err := plain.NewSocket(p.typ, transport.Options{Identity: []byte("keyless-" + p.name)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if err := s.Connect(p.url); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		socks = append(socks, s)
		if p.typ == transport.Sub {
			continue
		}
		for _, msg := range []wire.Out{
			{MsgType: "connection_request", Content: map[string]any{}},
			{MsgType: "registration_request", Content: map[string]any{"uuid": "keyless", "ready_probe": true}},
			{MsgType: "queue_request", Content: map[string]any{"targets": nil, "verbose": false}},
		} {
			frames, _, err := signed.Build(msg)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Send(frames); err != nil {
				t.Fatalf("%s: %v", p.name, err)
			}
		}
	}

	// Real work through the client side while they wait: direct, load
	// balanced, and output over IOPub. Heartbeats go out every 500 ms
	// meanwhile, which the hb_ping peer would see without CURVE.
	runWork(t, cl)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(1500 * time.Millisecond); time.Now().Before(deadline); <-tick.C {
		for i, s := range socks {
			select {
			case m := <-s.Messages():
				t.Fatalf("a peer without the server key on the %s port received %q", ports[i].name, m)
			default:
			}
		}
	}
	if after := engineIDs(c); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("engine list changed from %v to %v", before, after)
	}
	for _, want := range []string{"engine side open to the network, encrypted (CURVE)", "client side bound to loopback, unencrypted"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("controller log does not say %q:\n%s", want, logs.String())
		}
	}
}

// TestClientIPQueryPort: the client side's own query ROUTER answers on
// the socket a request came in on, verifies every message like the other
// ports, and tells an engine that registers there where to go instead of
// leaving it to time out.
func TestClientIPQueryPort(t *testing.T) {
	c, _ := startController(t, controller.Config{IP: "*", Location: "127.0.0.1", ClientIP: "127.0.0.1", Curve: controller.CurveOff})
	ci := c.ClientInfo()
	q := dial(t, transport.Dealer, ci.URL(ci.Registration), []byte(ci.Key), "")
	h := q.send(nil, "connection_request", map[string]any{})
	if m := q.recv(10 * time.Second); m.Header.MsgType != "connection_reply" || m.Parent.MsgID != h.MsgID {
		t.Fatalf("got %s for %s", m.Header.MsgType, m.Parent.MsgID)
	}

	// Wrong key, and a byte-identical replay: refused, counted, unanswered.
	refused := c.Refused()
	bad := dial(t, transport.Dealer, ci.URL(ci.Registration), []byte("wrong-key"), "")
	bad.send(nil, "connection_request", map[string]any{})
	frames, _, _ := q.sess.Build(wire.Out{MsgType: "queue_request", Content: map[string]any{"targets": nil, "verbose": false}})
	q.sock.Send(frames)
	if m := q.recv(10 * time.Second); m.Header.MsgType != "queue_reply" {
		t.Fatalf("queue_request: got %s %s", m.Header.MsgType, m.Content)
	}
	q.sock.Send(frames)
	testutil.Eventually(t, 10*time.Second, func() bool { return c.Refused() >= refused+2 },
		"the wrong-key request and the replay were not both refused")
	bad.quiet(200 * time.Millisecond)
	q.quiet(200 * time.Millisecond)

	// An engine that registers on the client port gets a clear error and
	// is not added.
	eng := dial(t, transport.Dealer, ci.URL(ci.Registration), []byte(ci.Key), "would-be-engine")
	eng.send(nil, "registration_request", map[string]any{"uuid": "would-be-engine", "ready_probe": true})
	m := eng.recv(10 * time.Second)
	if m.Header.MsgType != "registration_reply" || !strings.Contains(string(m.Content), `"error"`) ||
		!strings.Contains(string(m.Content), "engine connection file") {
		t.Fatalf("registration on the client port: %s %s", m.Header.MsgType, m.Content)
	}
	if ids := engineIDs(c); len(ids) != 0 {
		t.Fatalf("engines %v after a registration on the client port", ids)
	}

	// The engine side still takes registrations.
	ei := c.EngineInfo()
	reg := dial(t, transport.Dealer, ei.URL(ei.Registration), []byte(ei.Key), "real-engine")
	reg.send(nil, "registration_request", map[string]any{"uuid": "real-engine"})
	m = reg.recv(10 * time.Second)
	if m.Header.MsgType != "registration_reply" || !strings.Contains(string(m.Content), `"ok"`) {
		t.Fatalf("registration on the engine port: %s %s", m.Header.MsgType, m.Content)
	}
}

// TestClientIPDefaultsToIP: without ClientIP (or with one naming the
// same address) nothing changes: one registration port for both files, one
// interface, one CURVE decision. "localhost" binds 127.0.0.1, which libzmq
// would otherwise take for an interface name.
func TestClientIPDefaultsToIP(t *testing.T) {
	needCurve(t)
	for _, cfg := range []controller.Config{{}, {IP: "*", Location: "127.0.0.1"}, {ClientIP: "localhost"},
		{IP: "localhost", ClientIP: "127.0.0.1"}, {IP: "0.0.0.0", ClientIP: "*", Location: "127.0.0.1"}} {
		c, _ := startController(t, cfg)
		ci, ei := c.ClientInfo(), c.EngineInfo()
		if ci.Registration != ei.Registration || ci.Interface != ei.Interface ||
			(ci.CurveServerKey == nil) != (ei.CurveServerKey == nil) || c.CurveEnabled() != c.ClientCurveEnabled() {
			t.Errorf("IP %q, ClientIP %q: client %+v, engine %+v", cfg.IP, cfg.ClientIP, ci.Common, ei.Common)
		}
	}
}

// TestClientIPCurveOnAppliesToBothSides: an explicit CurveOn is never
// half-applied; the loopback client side is encrypted too.
func TestClientIPCurveOnAppliesToBothSides(t *testing.T) {
	needCurve(t)
	c, _ := startController(t, controller.Config{IP: "*", Location: "127.0.0.1", ClientIP: "127.0.0.1", Curve: controller.CurveOn})
	if !c.CurveEnabled() || !c.ClientCurveEnabled() || c.ClientInfo().CurveServerKey == nil {
		t.Fatal("Curve=On with ClientIP on loopback left the client side unencrypted")
	}
	if *c.ClientInfo().CurveServerKey != *c.EngineInfo().CurveServerKey {
		t.Fatal("the two sides must share one server key")
	}
}

// clientIPPyClient is a Python client on the unencrypted client side of
// a split controller whose engine side is CURVE.
const clientIPPyClient = `
import sys, ipyparallel as ipp
c = ipp.Client(sys.argv[1], timeout=30)
assert not c.curve_serverkey, "the client file of the loopback side must not ask for CURVE"
c.wait_for_engines(1, timeout=60)
dv = c[:]
ar = dv.execute("print('split', 6*7)", block=True)
print(dv.apply_sync(lambda: 6 * 7)[0], ar.stdout[0].strip())
`

// TestClientIPPython: ipyparallel 7.1's engine registers on the CURVE
// engine side and its client works with the plain client file.
func TestClientIPPython(t *testing.T) {
	needCurve(t)
	py := testutil.NeedPython(t, "ipyparallel", "zmq")
	dir := t.TempDir()
	c, _ := startController(t, splitConfig(dir))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	engineLog := startPythonEngine(t, ctx, py, c.EngineFile(), dir, "engine.log", "INFO")
	cmd := exec.CommandContext(ctx, py, "-c", clientIPPyClient, c.ClientFile())
	cmd.Env = append(os.Environ(), "IPYTHONDIR="+filepath.Join(dir, "ipython"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python client on the client side: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if got := lines[len(lines)-1]; got != "42 split 42" {
		t.Fatalf("python client printed %q, want %q", out, "42 split 42")
	}
	b, _ := os.ReadFile(engineLog)
	if !strings.Contains(string(b), "Using CurveZMQ security") {
		t.Errorf("the Python engine did not use CURVE on the engine side:\n%s", b)
	}
}
