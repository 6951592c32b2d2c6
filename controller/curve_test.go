package controller_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/engine"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// needCurve skips when the build has no libzmq (CURVE is libzmq's).
func needCurve(t *testing.T) {
	t.Helper()
	if _, err := transport.Lookup("zmq"); err != nil {
		t.Skipf("SKIP: CURVE needs the libzmq backend, not in this build: %v", err)
	}
}

// curveCluster starts Go engines against c and connects a Go client,
// all in this process and all over whatever c's files say.
func curveCluster(t *testing.T, c *controller.Controller, n int) *ipp.Client {
	t.Helper()
	startEngines(t, c, n)
	return connectClient(t, c, n)
}

// startEngines runs n Go engines (default transport) on c's engine info
// until the test ends.
func startEngines(t *testing.T, c *controller.Controller, n int) {
	t.Helper()
	reg := engine.NewRegistry()
	if err := reg.Register("square", func(x int) int { return x * x }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, n)
	t.Cleanup(func() {
		cancel()
		for range n {
			<-done
		}
	})
	for range n {
		go func() {
			defer func() { done <- struct{}{} }()
			err := engine.Run(ctx, engine.Config{Info: c.EngineInfo(), RequestedID: -1, Functions: reg,
				Logger: newLogger(&testutil.SyncBuffer{})})
			if err != nil && ctx.Err() == nil {
				t.Errorf("engine: %v", err)
			}
		}()
	}
}

func connectClient(t *testing.T, c *controller.Controller, n int) *ipp.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := ipp.ConnectInfo(ctx, c.ClientInfo(), ipp.WithLogger(newLogger(&testutil.SyncBuffer{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	if err := cl.WaitForEngines(ctx, n, ipp.WaitOptions{Progress: ipp.ProgressOff}); err != nil {
		t.Fatal(err)
	}
	return cl
}

// runWork checks real work in three ways: a direct apply on every engine,
// a load-balanced map and a Go snippet printing output over IOPub.
func runWork(t *testing.T, cl *ipp.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ar, err := cl.All().Apply(ctx, "square", 7)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ipp.GetAll[int](ctx, ar)
	if err != nil || len(got) != len(cl.IDs()) || got[0] != 49 {
		t.Fatalf("square(7) on all engines = %v, %v", got, err)
	}
	for i := range 10 {
		lb, err := cl.LoadBalanced().Apply(ctx, "square", i)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := ipp.Get[int](ctx, lb); err != nil || v != i*i {
			t.Fatalf("load-balanced square(%d) = %v, %v", i, v, err)
		}
	}
	ex, err := cl.All().Execute(ctx, `fmt.Println("over curve")`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ex.Get(ctx); err != nil {
		t.Fatal(err)
	}
	for _, out := range ex.Stdout() {
		if out != "over curve\n" {
			t.Fatalf("stdout %q", ex.Stdout())
		}
	}
}

// TestCurveGoClusterLoopback: Curve=On on loopback; both connection files
// carry the server key, and Go engines and a Go client run work through it.
func TestCurveGoClusterLoopback(t *testing.T) {
	needCurve(t)
	dir := t.TempDir()
	c, _ := startController(t, controller.Config{ProfileDir: dir, Curve: controller.CurveOn})
	if !c.CurveEnabled() {
		t.Fatal("Curve=On but CurveEnabled() is false")
	}
	ci, err := wire.LoadClientInfo(c.ClientFile())
	if err != nil {
		t.Fatal(err)
	}
	ei, err := wire.LoadEngineInfo(c.EngineFile())
	if err != nil {
		t.Fatal(err)
	}
	if ci.CurveServerKey == nil || ei.CurveServerKey == nil || len(*ci.CurveServerKey) != 40 || *ci.CurveServerKey != *ei.CurveServerKey {
		t.Fatalf("connection files lack one 40-character curve_serverkey: client %v, engine %v", ci.CurveServerKey, ei.CurveServerKey)
	}
	if ci.Key == "" {
		t.Fatal("the HMAC key must stay on alongside CURVE")
	}
	cl := curveCluster(t, c, 2)
	runWork(t, cl)
}

// TestCurveAutoFollowsAddress: Curve's default is on for a wildcard bind
// and off on loopback. Peers reach the wildcard controller through
// Location 127.0.0.1, never an external address.
func TestCurveAutoFollowsAddress(t *testing.T) {
	needCurve(t)
	loop, _ := startController(t, controller.Config{})
	if loop.CurveEnabled() || loop.ClientInfo().CurveServerKey != nil {
		t.Fatal("CURVE is on by default on loopback; it must be off there")
	}
	c, _ := startController(t, controller.Config{IP: "0.0.0.0", Location: "127.0.0.1"})
	if !c.CurveEnabled() {
		t.Fatal("a controller bound to 0.0.0.0 with Curve auto has CURVE off")
	}
	ci := c.ClientInfo()
	if ci.CurveServerKey == nil || c.EngineInfo().CurveServerKey == nil {
		t.Fatal("connection info lacks curve_serverkey")
	}
	if url := ci.URL(ci.Registration); url != fmt.Sprintf("tcp://127.0.0.1:%d", ci.Registration) {
		t.Fatalf("peers would connect to %s, want loopback", url)
	}
	runWork(t, curveCluster(t, c, 2))
}

// TestCurveOffStaysOff: Curve=Off on a wildcard bind writes no server key.
func TestCurveOffStaysOff(t *testing.T) {
	c, _ := startController(t, controller.Config{IP: "0.0.0.0", Location: "127.0.0.1", Curve: controller.CurveOff})
	if c.CurveEnabled() || c.ClientInfo().CurveServerKey != nil || c.EngineInfo().CurveServerKey != nil {
		t.Fatal("Curve=Off still uses CURVE")
	}
}

// TestCurveKeylessPeerGetsNothing connects a plain-ZMTP peer (no CURVE) to
// every port a CURVE controller's files name and sends well-formed
// registration and connection requests, both unsigned and signed with the
// real HMAC key (so that CURVE alone is what stops them). No reply, no
// heartbeat, no notification reaches it, and the engine list is unchanged.
func TestCurveKeylessPeerGetsNothing(t *testing.T) {
	needCurve(t)
	c, _ := startController(t, controller.Config{Curve: controller.CurveOn, HeartbeatPeriod: 100 * time.Millisecond})
	cl := curveCluster(t, c, 2)
	before := engineIDs(c)

	ci, ei := c.ClientInfo(), c.EngineInfo()
	plain, err := transport.Lookup("zmq")
	if err != nil {
		t.Fatal(err)
	}
	type port struct {
		name string
		url  string
		typ  transport.Type // the attacker's socket type for this port
	}
	ports := []port{
		{"client registration", ci.URL(ci.Registration), transport.Dealer},
		{"client mux", ci.URL(ci.Mux), transport.Dealer},
		{"client control", ci.URL(ci.Control), transport.Dealer},
		{"client task", ci.URL(ci.Task), transport.Dealer},
		{"client broadcast", ci.URL(ci.Broadcast), transport.Dealer},
		{"client notification", ci.URL(ci.Notification), transport.Sub},
		{"client iopub", ci.URL(ci.IOPub), transport.Sub},
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
	unsigned := wire.NewSession(nil, "attacker")
	signed := wire.NewSession([]byte(ci.Key), "attacker")
	var socks []transport.Socket
	for _, p := range ports {
		s, err := plain.NewSocket(p.typ, transport.Options{Identity: []byte("attacker-" + p.name)})
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
		for _, sess := range []*wire.Session{unsigned, signed} {
			for _, msg := range []wire.Out{
				{MsgType: "registration_request", Content: map[string]any{"uuid": "attacker", "ready_probe": true}},
				{MsgType: "connection_request", Content: map[string]any{}},
				{MsgType: "queue_request", Content: map[string]any{"targets": nil, "verbose": false}},
			} {
				frames, _, err := sess.Build(msg)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Send(frames); err != nil {
					t.Fatalf("%s: %v", p.name, err)
				}
			}
		}
	}

	// The legitimate client still works while the attackers wait, and
	// proves the controller is serving (and publishing heartbeats every
	// 100 ms, which the SUB peers would otherwise see).
	runWork(t, cl)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); <-tick.C {
		for i, s := range socks {
			select {
			case m := <-s.Messages():
				t.Fatalf("a keyless peer on the %s port received %q", ports[i].name, m)
			default:
			}
		}
	}
	if after := engineIDs(c); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("engine list changed from %v to %v", before, after)
	}
	// A fresh, normal client sees the same engines.
	fresh := connectClient(t, c, len(before))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	engines, err := fresh.Engines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(engines) != len(before) {
		t.Fatalf("a normal client sees %d engines %v, want %v", len(engines), engines, before)
	}
}

func engineIDs(c *controller.Controller) []int {
	var ids []int
	for _, e := range c.Engines() {
		ids = append(ids, e.ID)
	}
	sort.Ints(ids)
	return ids
}

// TestCurvePureGoPeersRefuse: engines and clients on the pure-Go transport
// fail at once with ErrNoCurve against a CURVE controller instead of
// hanging in a handshake the server never completes.
func TestCurvePureGoPeersRefuse(t *testing.T) {
	needCurve(t)
	c, _ := startController(t, controller.Config{Curve: controller.CurveOn})
	gozmq, err := transport.Lookup("gozmq")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err = engine.Run(ctx, engine.Config{Info: c.EngineInfo(), Transport: gozmq, RequestedID: -1,
		Logger: newLogger(&testutil.SyncBuffer{})})
	if !errors.Is(err, transport.ErrNoCurve) {
		t.Fatalf("gozmq engine against a CURVE controller: %v, want ErrNoCurve", err)
	}
	_, err = ipp.ConnectInfo(ctx, c.ClientInfo(), ipp.WithTransport("gozmq"))
	if !errors.Is(err, ipp.ErrNoCurve) {
		t.Fatalf("gozmq client against a CURVE controller: %v, want ErrNoCurve", err)
	}
	// A pure-Go controller that would default to CURVE refuses to start.
	pure, err := controller.New(controller.Config{IP: "0.0.0.0", Location: "127.0.0.1", Transport: gozmq})
	if err != nil {
		t.Fatal(err)
	}
	if err := pure.Start(); !errors.Is(err, transport.ErrNoCurve) {
		pure.Close()
		t.Fatalf("pure-Go controller on 0.0.0.0: Start = %v, want ErrNoCurve", err)
	}
	pure.Close()
	if time.Since(start) > 20*time.Second {
		t.Fatalf("refusing took %v; it must not wait for a handshake", time.Since(start))
	}
}
