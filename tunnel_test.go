package ipp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/shellwords"
	"github.com/ipp-hpc/ipp/internal/sshx"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// tunnelSSH starts an sshd of the test's own (so that killing its master
// connection disturbs no other test) and returns its root host, with
// IPP_SSH_ARGS set for the rest of the test so that package sshx uses its
// configuration.
func tunnelSSH(t *testing.T) string {
	t.Helper()
	s := testutil.SSH(t).Private(t)
	s.SetEnv(t)
	host := s.Hosts[0]
	t.Cleanup(func() { endMaster(t, host) })
	return host
}

// sshArgs are the words of IPP_SSH_ARGS.
func sshArgs(t *testing.T) []string {
	words, err := shellwords.Split(os.Getenv(protocol.EnvSSHArgs))
	if err != nil {
		t.Fatal(err)
	}
	return words
}

// controlArgs address the master connection package sshx opens for
// host, under its control directory.
func controlArgs(t *testing.T, host string, op string) []string {
	return append(sshArgs(t), "-o", fmt.Sprintf("ControlPath=/tmp/ipp-ssh-%d/%%C", os.Getuid()), "-O", op, host)
}

// masterPID asks host's master connection for its pid.
func masterPID(t *testing.T, host string) int {
	t.Helper()
	out, err := exec.Command("ssh", controlArgs(t, host, "check")...).CombinedOutput()
	m := regexp.MustCompile(`pid=(\d+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("ssh -O check %s: %v: %s", host, err, out)
	}
	pid, _ := strconv.Atoi(string(m[1]))
	return pid
}

// endMaster stops host's master connection, and removes its control
// socket if a killed master left it behind: sshx (as of this writing)
// removes a stale socket only while a tunnel of its own reconnects, and
// a new master cannot bind over one.
func endMaster(t *testing.T, host string) {
	_ = exec.Command("ssh", controlArgs(t, host, "exit")...).Run()
	out, _ := exec.Command("ssh", append(sshArgs(t), "-o", fmt.Sprintf("ControlPath=/tmp/ipp-ssh-%d/%%C", os.Getuid()), "-G", host)...).Output()
	for _, line := range strings.Split(string(out), "\n") {
		if p, ok := strings.CutPrefix(line, "controlpath "); ok {
			if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
				_ = os.Remove(p)
			}
		}
	}
}

// startLoginCluster runs a Go controller and n engines in this process,
// with a location that is not this host's name (as on a login node), and
// returns it with its client connection info naming sshHost.
func startLoginCluster(t *testing.T, n int, sshHost string) (*goCluster, *wire.ClientInfo) {
	t.Helper()
	ctrl, err := controller.New(controller.Config{Logger: testLogger(), Location: "login-node"})
	if err != nil {
		t.Fatal(err)
	}
	if err := ctrl.Start(); err != nil {
		t.Fatal(err)
	}
	gc := &goCluster{ctrl: ctrl, reg: testRegistry(t)}
	t.Cleanup(func() {
		for _, cancel := range gc.cancels {
			cancel()
		}
		gc.wg.Wait()
		ctrl.Close()
	})
	for range n {
		gc.addEngine(t)
	}
	info := *ctrl.ClientInfo()
	info.SSH = sshHost
	return gc, &info
}

// TestTunnelFromConnectionFile connects with a client file whose ssh field
// names the ssh server, as ipyparallel writes it: every controller port is
// reached through a local forward, and direct, load-balanced and broadcast
// requests and hub queries work.
func TestTunnelFromConnectionFile(t *testing.T) {
	host := tunnelSSH(t)
	_, info := startLoginCluster(t, 2, host)
	path := filepath.Join(t.TempDir(), "ipcontroller-client.json")
	if err := wire.WritePrivateJSON(path, info); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 90*time.Second)
	c, err := Connect(ctx, path, testOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if c.Tunnel() != host {
		t.Fatalf("Tunnel() = %q, want %q", c.Tunnel(), host)
	}
	remote := map[int]bool{}
	for _, p := range []int{info.Registration, info.Mux, info.Task, info.Control, info.IOPub, info.Notification, info.Broadcast} {
		remote[p] = true
	}
	for name, p := range map[string]int{"registration": c.info.Registration, "mux": c.info.Mux, "task": c.info.Task,
		"control": c.info.Control, "iopub": c.info.IOPub, "notification": c.info.Notification, "broadcast": c.info.Broadcast} {
		if p == 0 || remote[p] {
			t.Errorf("%s port %d is not a local forward (controller ports %v)", name, p, remote)
		}
	}
	if c.info.Interface != "tcp://127.0.0.1" {
		t.Errorf("client connects to %s", c.info.Interface)
	}
	if err := c.WaitForEngines(ctx, 2, WaitOptions{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	ar, err := c.All().Apply(ctx, "square", 7)
	if err != nil {
		t.Fatal(err)
	}
	if vs, err := GetAll[int](ctx, ar); err != nil || len(vs) != 2 || vs[0] != 49 || vs[1] != 49 {
		t.Fatalf("direct apply through the tunnel: %v, %v", vs, err)
	}
	ex, err := c.All().Execute(ctx, `fmt.Println("through", 6*7)`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ex.Get(ctx); err != nil {
		t.Fatal(err)
	}
	for i, out := range ex.Stdout() {
		if out != "through 42\n" {
			t.Errorf("execute stdout[%d] = %q (IOPub through the tunnel)", i, out)
		}
	}
	lb, err := c.LoadBalanced().Apply(ctx, "add", 1.5, 2.0)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := Get[float64](ctx, lb); err != nil || v != 3.5 {
		t.Fatalf("load-balanced apply: %v, %v", v, err)
	}
	bc, err := c.Broadcast().Apply(ctx, "square", 3)
	if err != nil {
		t.Fatal(err)
	}
	if vs, err := GetAll[int](ctx, bc); err != nil || len(vs) != 2 {
		t.Fatalf("broadcast apply: %v, %v", vs, err)
	}
	if qs, err := c.QueueStatus(ctx); err != nil || len(qs.Engines) != 2 {
		t.Fatalf("queue status: %+v, %v", qs, err)
	}

	// Close removes the forwards.
	reg := c.tun.regLocal
	c.Close()
	testutil.Eventually(t, 10*time.Second, func() bool {
		conn, err := dialTCP(reg)
		if err == nil {
			conn.Close()
		}
		return err != nil
	}, "local forward %s still accepts connections after Close", reg)
}

// TestTunnelMasterKilledMidRun SIGKILLs the ssh master connection that
// carries the tunnel while requests run. The tunnel comes back on the
// same ports, and every result arrives: those whose replies the
// controller sent to the dead connection are recovered from the hub.
func TestTunnelMasterKilledMidRun(t *testing.T) {
	host := tunnelSSH(t)
	_, info := startLoginCluster(t, 2, host)
	ctx := ctxT(t, 120*time.Second)
	c, err := ConnectInfo(ctx, info, testOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.WaitForEngines(ctx, 2, WaitOptions{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	pid := masterPID(t, host)
	// Direct requests queue on each engine, tasks on the scheduler:
	// some finish before the kill, some while the tunnel is down, some
	// after it is back.
	var ars []*AsyncResult
	var want []int
	for i := range 6 {
		ar, err := c.View(c.IDs()[i%2]).Apply(ctx, "sleep", 800+i)
		if err != nil {
			t.Fatal(err)
		}
		ars, want = append(ars, ar), append(want, 800+i)
		lb, err := c.LoadBalanced().Apply(ctx, "sleep", 600+i)
		if err != nil {
			t.Fatal(err)
		}
		ars, want = append(ars, lb), append(want, 600+i)
	}
	// Kill once the controller has every request: their replies then go
	// to connections that are about to die.
	var ids []string
	for _, ar := range ars {
		ids = append(ids, ar.MsgIDs()...)
	}
	testutil.Eventually(t, 30*time.Second, func() bool {
		_, err := c.ResultStatus(ctx, ids...)
		return err == nil
	}, "the controller never had all the requests")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed ssh master %d", pid)
	for i, ar := range ars {
		v, err := Get[int](ctx, ar)
		if err != nil || v != want[i] {
			t.Errorf("request %d after the tunnel dropped: %v, %v (want %d)", i, v, err, want[i])
		}
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return c.Reconnects() >= 1 }, "the tunnel was never re-established")
	if c.tun.recovered.Load() == 0 {
		t.Error("no result was recovered from the hub: the drop lost nothing, so the test proved nothing")
	}
	if pid2 := masterPID(t, host); pid2 == pid {
		t.Errorf("master pid unchanged (%d): it was not killed", pid)
	}
	// New requests work through the new connection.
	ar, err := c.All().Apply(ctx, "square", 5)
	if err != nil {
		t.Fatal(err)
	}
	if vs, err := GetAll[int](ctx, ar); err != nil || len(vs) != 2 || vs[0] != 25 {
		t.Fatalf("apply after the reconnection: %v, %v", vs, err)
	}
	if err := c.Err(); err != nil {
		t.Fatalf("client closed: %v", err)
	}
}

// blockingSSH installs an ssh wrapper (IPP_SSH) that fails like an
// unreachable host between block and unblock, to keep a tunnel down for
// as long as a test wants. Local operations (-G, -O) still work.
func blockingSSH(t *testing.T) (block func(), unblock func()) {
	dir := t.TempDir()
	flag := filepath.Join(dir, "down")
	script := filepath.Join(dir, "ssh")
	body := fmt.Sprintf(`#!/bin/sh
for a in "$@"; do case $a in -G|-O) exec ssh "$@";; esac; done
if [ -e %s ]; then echo 'ssh: connect to host blocked port 22: Connection refused' >&2; exit 255; fi
exec ssh "$@"
`, flag)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(protocol.EnvSSH, script)
	return func() {
			if err := os.WriteFile(flag, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, func() {
			if err := os.Remove(flag); err != nil {
				t.Fatal(err)
			}
		}
}

// TestTunnelDownLongerThanKeepalive keeps the tunnel down for longer than
// the keepalive's limit: the client must wait for it (not fail with
// ErrControllerLost), get every result when it is back, and give up only
// after the reconnect timeout when it never comes back.
func TestTunnelDownLongerThanKeepalive(t *testing.T) {
	host := tunnelSSH(t)
	block, unblock := blockingSSH(t)
	_, info := startLoginCluster(t, 1, host)
	ctx := ctxT(t, 120*time.Second)
	c, err := ConnectInfo(ctx, info, append(testOptions(), WithKeepalive(250*time.Millisecond, 3), WithReconnectTimeout(30*time.Second))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.WaitForEngines(ctx, 1, WaitOptions{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	ar, err := c.View(c.IDs()[0]).Apply(ctx, "sleep", 500)
	if err != nil {
		t.Fatal(err)
	}
	block()
	if err := syscall.Kill(masterPID(t, host), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Down for well over the keepalive's limit (3 unanswered probes): the
	// client holds.
	testutil.Eventually(t, 30*time.Second, func() bool { return c.tun.t.Err() != nil }, "the tunnel never tried to reconnect")
	p0 := c.probes.Load()
	testutil.Eventually(t, 30*time.Second, func() bool { return c.probes.Load() >= p0+12 || c.Err() != nil },
		"the keepalive stopped probing while the tunnel was down")
	if err := c.Err(); err != nil {
		t.Fatalf("client gave up while the tunnel was reconnecting: %v", err)
	}
	// Sent while the tunnel is down: queued, delivered after.
	during, err := c.View(c.IDs()[0]).Apply(ctx, "square", 9)
	if err != nil {
		t.Fatal(err)
	}
	unblock()
	if v, err := Get[int](ctx, ar); err != nil || v != 500 {
		t.Errorf("request from before the drop: %v, %v", v, err)
	}
	if v, err := Get[int](ctx, during); err != nil || v != 81 {
		t.Errorf("request sent while the tunnel was down: %v, %v", v, err)
	}

	// Down for good: ErrControllerLost after the reconnect timeout, naming
	// the tunnel.
	c2, err := ConnectInfo(ctx, info, append(testOptions(), WithKeepalive(250*time.Millisecond, 3), WithReconnectTimeout(3*time.Second))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c2.Close() })
	pending, err := c2.View(c2.IDs()[0]).Apply(ctx, "sleep", 20_000)
	if err != nil {
		t.Fatal(err)
	}
	block()
	if err := syscall.Kill(masterPID(t, host), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, err = pending.Get(ctx)
	if !errors.Is(err, ErrControllerLost) || !strings.Contains(err.Error(), "WithReconnectTimeout") || !strings.Contains(err.Error(), host) {
		t.Fatalf("tunnel down for good: %v, want ErrControllerLost naming the tunnel and the limit", err)
	}
	unblock()
}

// TestTunnelUnreachableSSH: a client file whose ssh server cannot be
// reached fails at once with ssh's reason, not after the 10 s hub timeout.
func TestTunnelUnreachableSSH(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		testutil.Missing(t, "no ssh client")
	}
	_, info := startLoginCluster(t, 0, "root@127.0.0.1:1")
	t.Setenv(protocol.EnvSSHArgs, "-o BatchMode=yes")
	start := time.Now()
	_, err := ConnectInfo(ctxT(t, 60*time.Second), info, testOptions()...)
	took := time.Since(start)
	var se *sshx.Error
	if !errors.As(err, &se) || se.Kind != sshx.Unreachable || !strings.Contains(err.Error(), "root@127.0.0.1:1") {
		t.Fatalf("unreachable ssh server: %v, want an sshx Unreachable error naming it", err)
	}
	if strings.Contains(err.Error(), "timed out") {
		t.Errorf("generic timeout instead of ssh's reason: %v", err)
	}
	t.Logf("failed after %v: %v", took, err)
	if took > 9*time.Second {
		t.Errorf("took %v, as long as the hub timeout", took)
	}
}

// TestTunnelHostileSSHField: an ssh field that ssh would read as an option
// (another user may have written the file) is refused before ssh runs.
func TestTunnelHostileSSHField(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "pwned")
	for _, bad := range []string{"-oProxyCommand=touch " + marker, "-oProxyCommand=touch${IFS}" + marker, "host\nProxyCommand x"} {
		_, info := startLoginCluster(t, 0, bad)
		_, err := ConnectInfo(ctxT(t, 30*time.Second), info, testOptions()...)
		if err == nil || !strings.Contains(err.Error(), "refusing host") {
			t.Errorf("ssh field %q: %v, want a refusal", bad, err)
		}
		_, err = ConnectInfo(ctxT(t, 30*time.Second), info, append(testOptions(), WithSSH(bad))...)
		if err == nil || !strings.Contains(err.Error(), "refusing host") {
			t.Errorf("WithSSH(%q): %v, want a refusal", bad, err)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the ProxyCommand ran")
	}
}

// TestTunnelSkipped: the file's ssh field is not used when the file says
// the controller runs on this host, and WithSSH("") turns it off; in both
// cases an ssh server that does not exist is never contacted.
func TestTunnelSkipped(t *testing.T) {
	t.Setenv(protocol.EnvSSH, "/nonexistent/ssh")
	hostname, _ := os.Hostname()
	ctrl, err := controller.New(controller.Config{Logger: testLogger(), Location: hostname})
	if err != nil {
		t.Fatal(err)
	}
	if err := ctrl.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctrl.Close() })
	ctx := ctxT(t, 30*time.Second)
	info := *ctrl.ClientInfo()
	info.SSH = "nosuchhost.invalid"
	c, err := ConnectInfo(ctx, &info, testOptions()...)
	if err != nil {
		t.Fatalf("controller on this host with an ssh field: %v", err)
	}
	if c.Tunnel() != "" {
		t.Errorf("tunnelled through %q to a controller on this host", c.Tunnel())
	}
	c.Close()

	info.Location = "login-node"
	c, err = ConnectInfo(ctx, &info, append(testOptions(), WithSSH(""))...)
	if err != nil {
		t.Fatalf("WithSSH(\"\"): %v", err)
	}
	if c.Tunnel() != "" {
		t.Errorf("WithSSH(\"\") tunnelled through %q", c.Tunnel())
	}
	c.Close()
	// Without the override the field is used, and the missing ssh named.
	_, err = ConnectInfo(ctx, &info, testOptions()...)
	if err == nil || !strings.Contains(err.Error(), "nosuchhost.invalid") {
		t.Errorf("ssh field of a remote controller: %v, want an ssh error naming the host", err)
	}
}

// TestTunnelTarget checks where the ssh host is asked to connect.
func TestTunnelTarget(t *testing.T) {
	for iface, want := range map[string]string{
		"tcp://127.0.0.1": "127.0.0.1", "tcp://*": "127.0.0.1", "tcp://0.0.0.0": "127.0.0.1",
		"tcp://10.1.2.3": "10.1.2.3", "tcp://[::]": "::1", "tcp://login1.internal": "login1.internal",
	} {
		got, err := tunnelTarget(&wire.ClientInfo{Common: wire.Common{Interface: iface}})
		if err != nil || got != want {
			t.Errorf("tunnelTarget(%s) = %q, %v; want %q", iface, got, err, want)
		}
	}
	if _, err := tunnelTarget(&wire.ClientInfo{Common: wire.Common{Interface: "ipc:///tmp/x"}}); err == nil || !strings.Contains(err.Error(), "only tcp") {
		t.Errorf("ipc interface: %v", err)
	}
}

// TestTunnelControllerGone SIGKILLs a controller behind a working tunnel:
// the tunnel is up but the controller's port is closed, which is reported
// as quickly as without a tunnel, not after the reconnect timeout.
func TestTunnelControllerGone(t *testing.T) {
	host := tunnelSSH(t)
	dir := t.TempDir()
	cmd := exec.Command(testExecutable(t), "-test.run=^$")
	waited := startChildController(t, cmd, dir)
	ctx := ctxT(t, 90*time.Second)
	c, err := ConnectProfile(ctx, dir, "", append(testOptions(), WithSSH(host))...)
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
	cmd.Process.Signal(syscall.SIGKILL)
	<-waited
	killed := time.Now()
	_, err = ar.Get(ctxT(t, 60*time.Second))
	took := time.Since(killed)
	if !errors.Is(err, ErrControllerLost) || !strings.Contains(err.Error(), "refuses connections") {
		t.Fatalf("controller killed behind the tunnel: %v, want ErrControllerLost saying its port refuses connections", err)
	}
	t.Logf("reported after %v: %v", took, err)
	if took > 30*time.Second {
		t.Errorf("reported after %v: the reconnect timeout, not the keepalive", took)
	}
}

func dialTCP(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, time.Second) }

// TestTunnelLoginNamespace runs the controller (and an engine) inside the
// "login node" network namespace, listening on that namespace's loopback:
// the client cannot reach it directly, and reaches it through the ssh
// field of its connection file.
func TestTunnelLoginNamespace(t *testing.T) {
	ns := testutil.LoginNamespace(t)
	ns.SSH.SetEnv(t)
	dir := t.TempDir()
	cmd := ns.Command(context.Background(), testExecutable(t), "-test.run=^$")
	startChildController(t, cmd, dir, childLocationEnv+"=login-node")
	var info *wire.ClientInfo
	var err error
	testutil.Eventually(t, 30*time.Second, func() bool {
		info, err = wire.LoadClientInfo(wire.ClientFile(dir, ""))
		return err == nil
	}, "the controller in namespace %s wrote no client file: %v", ns.Name, err)
	if info.Interface != "tcp://127.0.0.1" {
		t.Fatalf("controller listens on %s, want the namespace's loopback", info.Interface)
	}
	ctx := ctxT(t, 90*time.Second)

	// Directly: this machine's 127.0.0.1 is not the namespace's.
	if _, err := ConnectInfo(ctx, info, append(testOptions(), WithSSH(""), WithConnectTimeout(2*time.Second))...); err == nil {
		t.Fatal("connected directly to a controller on the namespace's loopback")
	}

	info.SSH = ns.Host
	path := filepath.Join(t.TempDir(), "ipcontroller-client.json")
	if err := wire.WritePrivateJSON(path, info); err != nil {
		t.Fatal(err)
	}
	c, err := Connect(ctx, path, testOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if c.Tunnel() != ns.Host {
		t.Fatalf("Tunnel() = %q", c.Tunnel())
	}
	if err := c.WaitForEngines(ctx, 1, WaitOptions{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	ar, err := c.View(c.IDs()[0]).Apply(ctx, "sleep", 10)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := Get[int](ctx, ar); err != nil || v != 10 {
		t.Fatalf("apply through the tunnel into the namespace: %v, %v", v, err)
	}
}

// lossySocket loses the first message sent on it, as a connection that
// drops right after a request was written into it does.
type lossySocket struct {
	transport.Socket
	sends atomic.Int32
}

func (s *lossySocket) Send(frames [][]byte) error {
	if s.sends.Add(1) == 1 {
		return nil
	}
	return s.Socket.Send(frames)
}

// TestTunnelResendsLostRequest: a request that never reached the
// controller (the hub has no record of it after a reconnection) is sent
// again, once, and its result arrives.
func TestTunnelResendsLostRequest(t *testing.T) {
	host := tunnelSSH(t)
	_, info := startLoginCluster(t, 1, host)
	ctx := ctxT(t, 90*time.Second)
	c, err := ConnectInfo(ctx, info, testOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.WaitForEngines(ctx, 1, WaitOptions{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	lossy := &lossySocket{Socket: c.mux}
	c.mux = lossy
	ar, err := c.View(c.IDs()[0]).Apply(ctx, "square", 12)
	if err != nil {
		t.Fatal(err)
	}
	c.reconnected("test: the connection dropped")
	if v, err := Get[int](ctx, ar); err != nil || v != 144 {
		t.Fatalf("lost request: %v, %v", v, err)
	}
	if n := lossy.sends.Load(); n != 2 {
		t.Errorf("the request was sent %d times, want 2 (lost, then sent again)", n)
	}
}

// TestTunnelPythonClient: Debian's ipyparallel client reads a connection
// file of our controller whose ssh field is set, and tunnels through it
// itself (pyzmq's openssh tunnel, with the system ssh): the file format
// stays ipyparallel's.
func TestTunnelPythonClient(t *testing.T) {
	py := testutil.NeedPython(t, "ipyparallel", "zmq", "pexpect")
	srv := testutil.SSH(t)
	// pyzmq runs `ssh` from PATH with no way to pass -F: a wrapper does.
	// It also ignores SIGHUP, which ssh then keeps ignoring: pyzmq starts
	// `ssh -f -L ... sleep N` on a pexpect pty, and when the foreground ssh
	// exits before its background child has called setsid, the pty's
	// hangup kills the child and the tunnel with it (a race, frequent on a
	// loaded machine; Python's client then times out).
	bin := t.TempDir()
	wrapper := fmt.Sprintf("#!/bin/sh\ntrap '' HUP\nexec /usr/bin/ssh -F %s \"$@\"\n", srv.ConfigFile)
	if err := os.WriteFile(filepath.Join(bin, "ssh"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	_, info := startLoginCluster(t, 1, testutil.SSHHostRoot)
	path := filepath.Join(t.TempDir(), "ipcontroller-client.json")
	if err := wire.WritePrivateJSON(path, info); err != nil {
		t.Fatal(err)
	}
	script := `
import json, sys
import ipyparallel as ipp
# One ssh process per socket, each a login: slow on a loaded machine.
rc = ipp.Client(sys.argv[1], timeout=120)
rc.wait_for_engines(1, timeout=60)
ar = rc[:].execute("fmt.Println(6 * 7)", block=True)
print(json.dumps({"ssh": rc._ssh, "stdout": ar.stdout}))
rc.close()
`
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-c", script, path)
	cmd.Env = append(os.Environ(), "IPYTHONDIR="+t.TempDir(), "PATH="+bin+":"+os.Getenv("PATH"))
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python client through ssh: %v\n%s", err, out)
	}
	var got struct {
		SSH    bool     `json:"ssh"`
		Stdout []string `json:"stdout"`
	}
	if err := json.Unmarshal(lastLine(out), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if !got.SSH || len(got.Stdout) != 1 || got.Stdout[0] != "42\n" {
		t.Fatalf("python client: %+v\n%s", got, out)
	}
}
