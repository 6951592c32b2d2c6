package cli

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

func TestCurveFlags(t *testing.T) {
	var st *StartOptions
	if err := run(NewCmdStart(&Factory{}, func(o *StartOptions) error { st = o; return nil }), "--curve"); err != nil {
		t.Fatal(err)
	}
	if !st.Curve || st.NoCurve || !slices.Equal(st.CurveFlags.args(), []string{"--curve"}) {
		t.Errorf("start --curve: %+v, passes %q", st.CurveFlags, st.CurveFlags.args())
	}
	if err := run(NewCmdStart(&Factory{}, func(o *StartOptions) error { st = o; return nil }), "--no-curve"); err != nil {
		t.Fatal(err)
	}
	if st.Curve || !st.NoCurve || !slices.Equal(st.CurveFlags.args(), []string{"--no-curve"}) {
		t.Errorf("start --no-curve: %+v, passes %q", st.CurveFlags, st.CurveFlags.args())
	}
	if err := run(NewCmdStart(&Factory{}, func(o *StartOptions) error { st = o; return nil })); err != nil {
		t.Fatal(err)
	}
	if st.Curve || st.NoCurve || st.CurveFlags.args() != nil {
		t.Errorf("start defaults: %+v", st.CurveFlags)
	}
	if err := startRun(context.Background(), &StartOptions{F: &Factory{}, N: 1, CurveFlags: CurveFlags{true, true}}); err == nil ||
		!strings.Contains(err.Error(), "contradict") {
		t.Errorf("start --curve --no-curve: %v", err)
	}

	var co *ControllerOptions
	capture := func(o *ControllerOptions) error { co = o; return nil }
	t.Setenv(protocol.EnvEnableCurve, "")
	t.Setenv(protocol.EnvCurveSecretKey, "")
	t.Setenv(protocol.EnvCurvePublicKey, "")
	mode := func(args ...string) controller.CurveMode {
		t.Helper()
		if err := run(NewCmdController(&Factory{}, capture), args...); err != nil {
			t.Fatal(err)
		}
		co.PingMS = 100
		cfg, err := co.config()
		if err != nil {
			t.Fatalf("controller %v: %v", args, err)
		}
		return cfg.Curve
	}
	if m := mode(); m != controller.CurveAuto {
		t.Errorf("controller defaults to %v, want auto", m)
	}
	if m := mode("--curve"); m != controller.CurveOn {
		t.Errorf("--curve gives %v", m)
	}
	if m := mode("--no-curve"); m != controller.CurveOff {
		t.Errorf("--no-curve gives %v", m)
	}
	t.Setenv(protocol.EnvEnableCurve, "1")
	if m := mode(); m != controller.CurveOn {
		t.Errorf("IPP_ENABLE_CURVE=1 gives %v", m)
	}
	if m := mode("--no-curve"); m != controller.CurveOff {
		t.Errorf("--no-curve must beat IPP_ENABLE_CURVE=1, got %v", m)
	}
	run(NewCmdController(&Factory{}, capture), "--curve", "--no-curve")
	co.PingMS = 100
	if _, err := co.config(); err == nil {
		t.Error("controller --curve --no-curve accepted")
	}

	pub, sec, _ := transport.NewCurveKeyPair()
	other, _, _ := transport.NewCurveKeyPair()
	t.Setenv(protocol.EnvCurveSecretKey, sec)
	t.Setenv(protocol.EnvCurvePublicKey, pub)
	run(NewCmdController(&Factory{}, capture))
	co.PingMS = 100
	if cfg, err := co.config(); err != nil || cfg.CurveSecretKey != sec {
		t.Errorf("IPP_CURVE_SECRETKEY not used: %q, %v", cfg.CurveSecretKey, err)
	}
	t.Setenv(protocol.EnvCurvePublicKey, other)
	if _, err := co.config(); err == nil || !strings.Contains(err.Error(), protocol.EnvCurvePublicKey) {
		t.Errorf("a public key of another pair: %v", err)
	}
}

func TestCurveNotice(t *testing.T) {
	key := strings.Repeat("k", 40)
	var b strings.Builder
	curveNotice(&b, &wire.Common{Interface: "tcp://127.0.0.1", CurveServerKey: &key})
	if out := b.String(); strings.Count(out, "\n") != 1 || !strings.Contains(out, "CURVE encryption is on") ||
		!strings.Contains(out, "7.1") || !strings.Contains(out, "--no-curve") {
		t.Errorf("notice when on: %q", out)
	}
	b.Reset()
	curveNotice(&b, &wire.Common{Interface: "tcp://0.0.0.0"})
	out := b.String()
	for _, want := range []string{"WARNING", "off", "code", "pushed data", "results", "outputs", "signatures"} {
		if !strings.Contains(out, want) {
			t.Errorf("warning when off off-host lacks %q: %q", want, out)
		}
	}
	for _, iface := range []string{"tcp://127.0.0.1", "tcp://localhost", "tcp://[::1]"} {
		b.Reset()
		curveNotice(&b, &wire.Common{Interface: iface})
		if b.Len() != 0 {
			t.Errorf("off on loopback %s should be silent: %q", iface, b.String())
		}
	}
}

// TestStartCurve starts a real cluster with --curve on loopback: the flag
// reaches the controller through the launcher (on loopback only the flag
// turns CURVE on), start says so once, the engines register over CURVE
// with a real client watching, and exec runs code through it.
func TestStartCurve(t *testing.T) {
	if _, err := transport.Lookup("zmq"); err != nil {
		t.Skipf("SKIP: CURVE needs the libzmq backend: %v", err)
	}
	e := newTestEnv(t)
	t.Setenv(childEnv, "real")
	e.f.Connect = e.f.connectIPP
	ctx := context.Background()
	var pids []int
	killAll(t, &pids)
	opts := startOpts(e, 2)
	opts.Curve = true
	if err := startRun(ctx, opts); err != nil {
		t.Fatalf("start --curve: %v\n%s", err, e.err)
	}
	pids = recordedPIDs(t, wire.ClusterFile(e.profileDir(), ""))
	defer func() {
		if err := stopRun(ctx, &StopOptions{F: e.f, StopGrace: 2 * time.Second}); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()
	if n := strings.Count(e.err.String(), "CURVE encryption is on"); n != 1 {
		t.Errorf("start printed the CURVE notice %d times:\n%s", n, e.err)
	}
	ci, err := wire.LoadClientInfo(wire.ClientFile(e.profileDir(), ""))
	if err != nil {
		t.Fatal(err)
	}
	if ci.CurveServerKey == nil || len(*ci.CurveServerKey) != 40 {
		t.Fatalf("client file has no curve_serverkey: %v", ci.CurveServerKey)
	}
	e.out = &testutil.SyncBuffer{}
	e.f.IO.Out = e.out
	if err := execRun(ctx, &ExecOptions{F: e.f, Code: `fmt.Println("enc")`, Timeout: 30 * time.Second}); err != nil {
		t.Fatalf("exec over CURVE: %v\n%s", err, e.err)
	}
	if got := strings.Count(e.out.String(), "enc"); got != 2 {
		t.Errorf("exec output from %d engines, want 2:\n%s", got, e.out)
	}
}
