package cli

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/launchers"
)

// TestClientIPFlag: --client-ip reaches controller.Config on the
// controller role, and start hands it to the controller it launches.
func TestClientIPFlag(t *testing.T) {
	var co *ControllerOptions
	if err := run(NewCmdController(&Factory{}, func(o *ControllerOptions) error { co = o; return nil }),
		"--ip=*", "--client-ip=127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	co.PingMS = 100
	cfg, err := co.config()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.IP != "*" || cfg.ClientIP != "127.0.0.1" {
		t.Errorf("controller --ip='*' --client-ip=127.0.0.1 gives IP %q, ClientIP %q", cfg.IP, cfg.ClientIP)
	}
	var st *StartOptions
	if err := run(NewCmdStart(&Factory{}, func(o *StartOptions) error { st = o; return nil }), "--client-ip", "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if st.ClientIP != "127.0.0.1" {
		t.Errorf("start --client-ip: %q", st.ClientIP)
	}
	for _, help := range []string{NewCmdStart(&Factory{}, nil).Flags().Lookup("client-ip").Usage,
		NewCmdController(&Factory{}, nil).Flags().Lookup("client-ip").Usage} {
		if !strings.Contains(help, "CGO_ENABLED=0") || !strings.Contains(help, "ssh tunnel") {
			t.Errorf("--client-ip help does not say what it is for: %q", help)
		}
	}
}

// TestCurveNoticesSplit: a split controller's notice says where engines
// and clients connect and which side is encrypted.
func TestCurveNoticesSplit(t *testing.T) {
	key := strings.Repeat("k", 40)
	var b strings.Builder
	curveNotices(&b, &wire.Common{Interface: "tcp://127.0.0.1"}, &wire.Common{Interface: "tcp://0.0.0.0", CurveServerKey: &key})
	out := b.String()
	for _, want := range []string{"Engines connect on tcp://0.0.0.0 (CURVE encrypted), clients on tcp://127.0.0.1 (unencrypted)",
		"CURVE encryption is on for engines"} {
		if !strings.Contains(out, want) {
			t.Errorf("split notice lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "WARNING") {
		t.Errorf("a loopback client side needs no warning:\n%s", out)
	}
	b.Reset()
	curveNotices(&b, &wire.Common{Interface: "tcp://10.0.0.1"}, &wire.Common{Interface: "tcp://0.0.0.0", CurveServerKey: &key})
	if !strings.Contains(b.String(), "WARNING: CURVE encryption is off on tcp://10.0.0.1") {
		t.Errorf("an unencrypted client side on the network is not warned about:\n%s", b.String())
	}
	b.Reset()
	curveNotices(&b, &wire.Common{Interface: "tcp://0.0.0.0", CurveServerKey: &key}, &wire.Common{Interface: "tcp://0.0.0.0", CurveServerKey: &key})
	if strings.Contains(b.String(), "clients on") || !strings.Contains(b.String(), "CURVE encryption is on") {
		t.Errorf("one side: %q", b.String())
	}
}

// TestStartClientIPCurveSplit starts a real cluster with --ip '*'
// --client-ip 127.0.0.1 (peers reach the wildcard through --location
// 127.0.0.1): the engines register over CURVE on the engine side, while
// start itself and exec talk to the controller through a pure-Go client
// on the unencrypted loopback client side; the cluster file keeps the
// flag for the controller's next start.
func TestStartClientIPCurveSplit(t *testing.T) {
	if _, err := transport.Lookup("zmq"); err != nil {
		t.Skipf("SKIP: CURVE needs the libzmq backend: %v", err)
	}
	e := newTestEnv(t)
	t.Setenv(childEnv, "real")
	e.f.Connect = func(ctx context.Context, clientFile string) (Client, error) {
		c, err := ipp.Connect(ctx, clientFile, ipp.WithTransport("gozmq"))
		if err != nil {
			return nil, err
		}
		return ippClient{c}, nil
	}
	ctx := context.Background()
	var pids []int
	killAll(t, &pids)
	opts := startOpts(e, 2)
	opts.IP, opts.Location, opts.ClientIP = "*", "127.0.0.1", "127.0.0.1"
	if err := startRun(ctx, opts); err != nil {
		t.Fatalf("start --ip='*' --client-ip=127.0.0.1: %v\n%s", err, e.err)
	}
	pids = recordedPIDs(t, wire.ClusterFile(e.profileDir(), ""))
	defer func() {
		if err := stopRun(ctx, &StopOptions{F: e.f, StopGrace: 2 * time.Second}); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()
	ci, err := wire.LoadClientInfo(wire.ClientFile(e.profileDir(), ""))
	if err != nil {
		t.Fatal(err)
	}
	ei, err := wire.LoadEngineInfo(wire.EngineFile(e.profileDir(), ""))
	if err != nil {
		t.Fatal(err)
	}
	if ci.CurveServerKey != nil || ci.Interface != "tcp://127.0.0.1" {
		t.Errorf("client file: interface %q, curve_serverkey %v; want loopback without CURVE", ci.Interface, ci.CurveServerKey)
	}
	if ei.CurveServerKey == nil || ei.Interface != "tcp://0.0.0.0" {
		t.Errorf("engine file: interface %q, curve_serverkey %v; want the wildcard with CURVE", ei.Interface, ei.CurveServerKey)
	}
	if !strings.Contains(e.err.String(), "Engines connect on tcp://0.0.0.0 (CURVE encrypted), clients on tcp://127.0.0.1 (unencrypted)") {
		t.Errorf("start does not say where each side is:\n%s", e.err)
	}
	f, err := launchers.ReadClusterFile(wire.ClusterFile(e.profileDir(), ""))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(f.Cluster.ControllerArgs, "--client-ip=127.0.0.1") {
		t.Errorf("cluster file controller_args %q lack --client-ip", f.Cluster.ControllerArgs)
	}
	e.out = &testutil.SyncBuffer{}
	e.f.IO.Out = e.out
	if err := execRun(ctx, &ExecOptions{F: e.f, Code: `fmt.Println("split")`, Timeout: 30 * time.Second}); err != nil {
		t.Fatalf("exec from a pure-Go client: %v\n%s", err, e.err)
	}
	if got := strings.Count(e.out.String(), "split"); got != 2 {
		t.Errorf("exec output from %d engines, want 2:\n%s", got, e.out)
	}
}
