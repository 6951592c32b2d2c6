package ipp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/engine"
	"github.com/ipp-hpc/ipp/internal/procid"
	"github.com/ipp-hpc/ipp/internal/testutil"
)

// The test binary doubles as a controller process (with one engine in it)
// for the tests that SIGKILL their controller: childRoleEnv names the role,
// childDirEnv the profile directory to write the connection files to.
const (
	childRoleEnv = "IPP_CLIENT_TEST_ROLE"
	childDirEnv  = "IPP_CLIENT_TEST_DIR"
	// childLocationEnv sets the controller's location (default: this
	// host's name).
	childLocationEnv = "IPP_CLIENT_TEST_LOCATION"
)

// childRole runs the role asked for by childRoleEnv; ok is false in the
// test process itself.
func childRole() (code int, ok bool) {
	if os.Getenv(childRoleEnv) != "controller" {
		return 0, false
	}
	ctrl, err := controller.New(controller.Config{ProfileDir: os.Getenv(childDirEnv), Location: os.Getenv(childLocationEnv), Logger: testLogger()})
	if err == nil {
		err = ctrl.Start()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child controller:", err)
		return 1, true
	}
	reg := engine.NewRegistry()
	if err := reg.Register("sleep", func(ctx context.Context, ms int) (int, error) {
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			return ms, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}); err != nil {
		fmt.Fprintln(os.Stderr, "child controller:", err)
		return 1, true
	}
	// Bounded, so that a test that dies before killing us leaves nothing.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	go func() {
		_ = engine.Run(ctx, engine.Config{Info: ctrl.EngineInfo(), RequestedID: -1, Functions: reg, Logger: testLogger()})
	}()
	<-ctx.Done()
	ctrl.Close()
	return 0, true
}

// testExecutable is the test binary, which doubles as a controller
// process (childRole).
func testExecutable(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// startChildController starts cmd (the test binary with -test.run=^$) as
// a controller writing its connection files to dir, with env added to its
// environment, and kills it when the test ends. The channel is closed once
// it has exited and been reaped.
func startChildController(t *testing.T, cmd *exec.Cmd, dir string, env ...string) <-chan struct{} {
	t.Helper()
	cmd.Env = append(append(os.Environ(), childRoleEnv+"=controller", childDirEnv+"="+dir), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(waited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-waited
	})
	return waited
}

// TestControllerKilledFailsPending SIGKILLs a controller in another
// process while a request runs and a hub query waits: both must fail with
// ErrControllerLost under the default keepalive, instead of hanging.
func TestControllerKilledFailsPending(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(testExecutable(t), "-test.run=^$")
	waited := startChildController(t, cmd, dir)
	ctx := ctxT(t, 60*time.Second)
	c, err := ConnectProfile(ctx, dir, "", testOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.WaitForEngines(ctx, 1, WaitOptions{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	ar, err := c.View(c.IDs()[0]).Apply(ctx, "sleep", 30_000)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Err(); err != nil {
		t.Fatalf("Err before the kill: %v", err)
	}

	cmd.Process.Signal(syscall.SIGKILL)
	<-waited
	killed := time.Now()
	// A query sent after the controller is gone waits on a reply that can
	// never come: it must fail the same way.
	// Generous bounds, so that a client without a keepalive fails here
	// instead of hanging.
	qerr := make(chan error, 1)
	go func() {
		_, err := c.QueueStatus(ctxT(t, 30*time.Second))
		qerr <- err
	}()
	_, err = ar.Get(ctxT(t, 30*time.Second))
	took := time.Since(killed)
	if !errors.Is(err, ErrControllerLost) {
		t.Fatalf("Get after SIGKILL of the controller: %v, want ErrControllerLost", err)
	}
	t.Logf("Get failed %v after the kill: %v", took, err)
	if took > 15*time.Second {
		t.Errorf("controller loss reported after %v, want a few seconds", took)
	}
	if !strings.Contains(err.Error(), c.info.URL(c.info.Registration)) || !strings.Contains(err.Error(), "stopped answering") {
		t.Errorf("error does not say which controller stopped answering: %v", err)
	}
	if err := <-qerr; !errors.Is(err, ErrControllerLost) {
		t.Errorf("pending hub query: %v, want ErrControllerLost", err)
	}
	select {
	case <-c.Done():
	default:
		t.Error("Done not closed after the controller was lost")
	}
	if err := c.Err(); !errors.Is(err, ErrControllerLost) {
		t.Errorf("Err after loss: %v", err)
	}
	if _, err := c.View(0).Apply(ctx, "sleep", 1); !errors.Is(err, ErrControllerLost) {
		t.Errorf("request after loss: %v, want ErrControllerLost", err)
	}
}

// TestKeepaliveQuietOnLiveController runs a tight keepalive against a
// healthy cluster: a long request with no other traffic (only the hub's
// answers to the probes show it is alive) and then a steady stream of
// work must not be mistaken for a dead controller.
func TestKeepaliveQuietOnLiveController(t *testing.T) {
	gc, _ := startGoCluster(t, 1)
	ctx := ctxT(t, 60*time.Second)
	c, err := ConnectInfo(ctx, gc.ctrl.ClientInfo(), append(testOptions(), WithKeepalive(250*time.Millisecond, 4))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.WaitForEngines(ctx, 1, WaitOptions{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	id := c.IDs()[0]
	ar, err := c.View(id).Apply(ctx, "sleep", 2500)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := Get[int](ctx, ar); err != nil || v != 2500 {
		t.Fatalf("long request: %v, %v", v, err)
	}
	if c.probes.Load() == 0 {
		t.Error("no keepalive probe was sent during a silent 2.5 s request")
	}
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		ar, err := c.View(id).Apply(ctx, "square", 3)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := Get[int](ctx, ar); err != nil || v != 9 {
			t.Fatalf("square: %v, %v", v, err)
		}
	}
	if err := c.Err(); err != nil {
		t.Fatalf("keepalive fired on a live controller: %v", err)
	}
}

// TestKeepaliveAnyTrafficIsLiveness mutes a fake hub: while IOPub traffic
// keeps arriving the client must stay open although no probe is
// answered; once everything is silent it must close with
// ErrControllerLost and fail what waits. Disabled, it never probes.
func TestKeepaliveAnyTrafficIsLiveness(t *testing.T) {
	h := newFakeHub(t, map[int]string{0: uuidA})
	c := fakeClient(t, h, WithKeepalive(100*time.Millisecond, 5))
	off := fakeClient(t, h, WithKeepalive(0, 0))
	ctx := ctxT(t, 30*time.Second)
	ar, err := c.View(0).Execute(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	req := h.next(h.muxIn)
	// IOPub is a SUB socket too: make sure our subscription is live.
	testutil.Eventually(t, 10*time.Second, func() bool {
		h.pub(req, uuidA, "stream", map[string]any{"name": "stdout", "text": "."})
		return ar.Stdout()[0] != ""
	}, "no IOPub message reached the client")
	h.mu.Lock()
	h.mute = true
	h.mu.Unlock()
	sent := c.probes.Load()
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		h.pub(req, uuidA, "stream", map[string]any{"name": "stdout", "text": "."})
	}
	if err := c.Err(); err != nil {
		t.Fatalf("keepalive fired while IOPub traffic arrived: %v", err)
	}
	start := time.Now()
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("client still open with a silent controller")
	}
	t.Logf("lost after %v of silence (%d probes)", time.Since(start), c.probes.Load()-sent)
	if _, err := ar.Get(ctx); !errors.Is(err, ErrControllerLost) {
		t.Errorf("outstanding request: %v", err)
	}
	if off.probes.Load() != 0 || off.Err() != nil {
		t.Errorf("disabled keepalive: %d probes, Err %v", off.probes.Load(), off.Err())
	}
}

// TestPythonKeepalive: Python's hub answers the probes (status-only
// result_request) without logging an error, so a tight keepalive stays
// quiet through a silent two-second request.
func TestPythonKeepalive(t *testing.T) {
	sharedPython(t)
	ctx := ctxT(t, 60*time.Second)
	c, err := ConnectProfile(ctx, sharedPy.dir, "", append(testOptions(), WithKeepalive(200*time.Millisecond, 4))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.WaitForEngines(ctx, 1, WaitOptions{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	ar, err := c.View(c.IDs()[0]).Execute(ctx, "import time; time.sleep(2)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if c.probes.Load() == 0 || c.Err() != nil {
		t.Errorf("%d probes, Err %v", c.probes.Load(), c.Err())
	}
	logText, err := os.ReadFile(sharedPy.logPath("controller"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(logText), "Bad Message Type") {
		t.Errorf("the Python hub did not know the probe:\n%s", logText)
	}
}

// TestKeepaliveWaitsForBusyController stops (SIGSTOP) a controller in
// another process: a client on its host must take the silent controller
// for busy while its process runs, keep probing past the misses, and work
// again once it resumes; a client with a short busy limit must give up
// after it, saying that the process still runs.
func TestKeepaliveWaitsForBusyController(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(testExecutable(t), "-test.run=^$")
	startChildController(t, cmd, dir)
	ctx := ctxT(t, 90*time.Second)
	const misses = 3
	connect := func(limit time.Duration) *Client {
		opts := append(testOptions(), WithKeepalive(100*time.Millisecond, misses), func(c *clientConfig) { c.busyLimit = limit })
		c, err := ConnectProfile(ctx, dir, "", opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	patient, hasty := connect(time.Hour), connect(1500*time.Millisecond)
	if err := patient.WaitForEngines(ctx, 1, WaitOptions{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	if p := patient.ctlProc; p == nil || p.PID != cmd.Process.Pid {
		t.Fatalf("the client file does not name the controller's process %d: %+v", cmd.Process.Pid, p)
	}

	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	t.Cleanup(func() {
		if stopped {
			cmd.Process.Signal(syscall.SIGCONT)
		}
	})
	sent := patient.probes.Load()
	select {
	case <-hasty.Done():
	case <-ctx.Done():
		t.Fatal("a client with a 1.5 s busy limit still waits for a stopped controller")
	}
	if err := hasty.Err(); !errors.Is(err, ErrControllerLost) || !strings.Contains(err.Error(), "still runs") {
		t.Errorf("past the busy limit: %v, want ErrControllerLost saying the process still runs", err)
	}
	// The patient client probed past its misses (the old rule closed it
	// after 3) and is still open.
	testutil.Eventually(t, 30*time.Second, func() bool { return patient.probes.Load() >= sent+misses+5 || patient.Err() != nil },
		"the patient client stopped probing")
	if err := patient.Err(); err != nil {
		t.Fatalf("a client on the controller's host gave up on a stopped (busy) controller: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	ar, err := patient.View(patient.IDs()[0]).Apply(ctx, "sleep", 1)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := Get[int](ctx, ar); err != nil || v != 1 {
		t.Fatalf("after the controller resumed: %v, %v", v, err)
	}
	if err := patient.Err(); err != nil {
		t.Fatalf("Err after the controller resumed: %v", err)
	}
}

// TestBusyHoldNeedsTheControllersProcess: a connection file may name a
// process that is not the controller (a recycled pid, a file from another
// host or namespace, or a hostile one naming init): the keepalive then
// decides alone, as without the fields.
func TestBusyHoldNeedsTheControllersProcess(t *testing.T) {
	self, err := procid.Self()
	if err != nil {
		t.Skip("no process identities here:", err)
	}
	for name, p := range map[string]*procid.ID{
		"none":        nil,
		"recycled":    {PID: self.PID, Start: self.Start + 1, Host: self.Host},
		"other host":  {PID: self.PID, Start: self.Start, Host: "elsewhere/" + self.Host},
		"init, wrong": {PID: 1, Start: 12345, Host: self.Host},
	} {
		c := &Client{ctlProc: p, cfg: clientConfig{busyLimit: time.Hour}}
		if hold, detail := c.busyHold(10 * time.Second); hold || detail != "" {
			t.Errorf("%s: busyHold = %v, %q; want no hold and no detail", name, hold, detail)
		}
	}
	c := &Client{ctlProc: &self, cfg: clientConfig{busyLimit: time.Minute}}
	if hold, _ := c.busyHold(10 * time.Second); !hold {
		t.Error("a running controller process silent for less than the limit is not held")
	}
	if hold, detail := c.busyHold(2 * time.Minute); hold || !strings.Contains(detail, "still runs") {
		t.Errorf("past the limit: busyHold = %v, %q; want no hold, saying it still runs", hold, detail)
	}
}
