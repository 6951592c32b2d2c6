package sshx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/testutil"
)

// These tests run the system ssh against the real sshd of scripts/sshd.sh
// (testutil.SSH); those that count connections or processes use a private
// sshd of their own, where no other process's master connection can stand
// in for ours.

// newHost is New for a test. Hosts of a private sshd are closed at
// cleanup; those of the shared sshd are not: Close ends the master
// connection, which other test processes may be using at that moment (it
// goes by itself after ControlPersist).
func newHost(t *testing.T, name string) *Host {
	t.Helper()
	h, err := New(name)
	if err != nil {
		t.Fatalf("New(%q): %v", name, err)
	}
	if strings.HasPrefix(name, "private-") {
		t.Cleanup(func() { _ = h.Close() })
	}
	return h
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestRealRun runs commands as root and as the other account, by each
// host name, with input and output passed through.
func TestRealRun(t *testing.T) {
	s := testutil.SSH(t)
	s.SetEnv(t)
	ctx := testCtx(t)
	want := map[string]string{testutil.SSHHostRoot: "root", testutil.SSHHostUser: s.UserName, testutil.SSHHostAlias: "root"}
	for _, name := range s.Hosts {
		h := newHost(t, name)
		out, err := h.Run(ctx, "id -un", nil)
		if err != nil {
			t.Fatalf("%s: id -un: %v", name, err)
		}
		if got := strings.TrimSpace(string(out)); got != want[name] {
			t.Errorf("%s: id -un = %q, want %q", name, got, want[name])
		}
		// Every byte value through stdin and back, and the remote shell
		// receives the command as one string.
		in := make([]byte, 3*256)
		for i := range in {
			in[i] = byte(i)
		}
		out, err = h.Run(ctx, "cat; echo ' tail'", bytes.NewReader(in))
		if err != nil {
			t.Fatalf("%s: cat: %v", name, err)
		}
		if !bytes.Equal(out, append(in, " tail\n"...)) {
			t.Errorf("%s: cat returned %d bytes, want the %d sent plus ' tail'", name, len(out), len(in))
		}
	}
}

// TestRealMultiplexing runs 20 commands one after another and checks they
// all rode on one TCP connection and one login; after Close no connection
// and no master process is left.
func TestRealMultiplexing(t *testing.T) {
	p := testutil.SSH(t).Private(t)
	p.SetEnv(t)
	ctx := testCtx(t)
	before := p.Accepted(t)
	// The account that is not root: root's ~/.bashrc may be slow (pyenv on
	// the development machine), and 20 logins' worth of it adds up.
	h := newHost(t, p.Hosts[1])
	for i := range 20 {
		out, err := h.Run(ctx, fmt.Sprintf("echo %d", i), nil)
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if got := strings.TrimSpace(string(out)); got != fmt.Sprint(i) {
			t.Fatalf("run %d printed %q", i, got)
		}
		if n := p.Connections(t); n != 1 {
			t.Fatalf("after run %d: %d TCP connections to sshd, want 1 (the master)", i, n)
		}
	}
	if n := p.Accepted(t) - before; n != 1 {
		t.Fatalf("sshd logged %d logins for 20 commands, want 1", n)
	}
	if masters := masterPIDs(t, p.ConfigFile); len(masters) != 1 {
		t.Fatalf("ssh master processes for %s: %v, want exactly one", p.ConfigFile, masters)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	testutil.Eventually(t, 15*time.Second, func() bool {
		return len(masterPIDs(t, p.ConfigFile)) == 0 && p.Connections(t) == 0
	}, "after Close: master processes %v, %d connections", masterPIDs(t, p.ConfigFile), p.Connections(t))
}

// TestRealConcurrentRuns runs more commands at once than sshd's default
// MaxSessions (10) lets one connection carry: all must succeed, no more
// than the session limit may be open on the server at once, and no
// command may open a login of its own (each would be a full
// authentication, a 2FA prompt on many sites).
func TestRealConcurrentRuns(t *testing.T) {
	s := testutil.SSH(t)
	p := s.Private(t)
	p.SetEnv(t)
	ctx := testCtx(t)
	h := newHost(t, p.Hosts[1])
	if err := h.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	before := p.Accepted(t)
	const n = 16
	// Each command counts the commands running beside it (a marker file
	// each, removed at the end) and stays a moment so that they overlap.
	dir := s.SharedDir(t)
	body := fmt.Sprintf(`touch %s/run-$0; ls %s | grep -c run-; sleep 0.3; rm %s/run-$0`, dir, dir, dir)
	var wg sync.WaitGroup
	errs := make([]error, n)
	peak := make([]int, n)
	for i := range n {
		wg.Go(func() {
			out, err := h.Run(ctx, fmt.Sprintf("sh -c '%s' %d", body, i), nil)
			if err == nil {
				peak[i], err = strconv.Atoi(strings.TrimSpace(string(out)))
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent run %d of %d: %v", i, n, err)
		}
	}
	if m := slices.Max(peak); m > maxSessions {
		t.Errorf("%d commands ran at once on the server, want at most %d", m, maxSessions)
	}
	if extra := p.Accepted(t) - before; extra != 0 {
		t.Errorf("%d concurrent commands opened %d logins besides the master, want none", n, extra)
	}
}

// masterPIDs lists the ssh master processes started with config file cfg
// (our private configurations are unique to one test).
func masterPIDs(t *testing.T, cfg string) []string {
	t.Helper()
	var pids []string
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if filepath.Base(args[0]) != "ssh" {
			continue
		}
		hasCfg, master := false, false
		for _, a := range args {
			hasCfg = hasCfg || a == cfg
			master = master || a == "-M"
		}
		if hasCfg && master {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// TestRealErrors checks that each usual failure comes back as an *Error of
// the right kind whose message names the host, and the command when the
// command is what failed.
func TestRealErrors(t *testing.T) {
	s := testutil.SSH(t)
	p := s.Private(t)
	p.SetEnv(t)
	// The shared configuration's hosts are reachable through an Include.
	// Two more names for the private server, whose known_hosts lists a
	// different key for it (a changed host key) or none at all.
	dir := t.TempDir()
	otherKey, err := os.ReadFile(filepath.Join(s.Base, "id_refused.pub"))
	if err != nil {
		t.Fatal(err)
	}
	changed := filepath.Join(dir, "changed_known_hosts")
	if err := os.WriteFile(changed, fmt.Appendf(nil, "[127.0.0.1]:%d %s", p.Port, otherKey), 0o644); err != nil {
		t.Fatal(err)
	}
	var conf strings.Builder
	for _, h := range []struct{ name, known string }{{"key-changed", changed}, {"key-unknown", "/dev/null"}} {
		fmt.Fprintf(&conf, "Host %s\n  HostName 127.0.0.1\n  Port %d\n  User root\n  IdentityFile %s\n  UserKnownHostsFile %s\n",
			h.name, p.Port, filepath.Join(s.Base, "id_root"), h.known)
	}
	// Host *: an Include under a Host line applies only to that host.
	fmt.Fprintf(&conf, "Host *\nInclude %s\nInclude %s\n", p.ConfigFile, s.ConfigFile)
	cfg := filepath.Join(dir, "ssh_config")
	if err := os.WriteFile(cfg, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(protocol.EnvSSHArgs, "-F "+cfg)
	ctx := testCtx(t)
	cases := []struct {
		host, cmd string
		kind      Kind
		says      []string
	}{
		{testutil.SSHHostUnreachable, "hostname", Unreachable, []string{"cannot connect", "Connection refused"}},
		{p.BadKeyHost, "hostname", AuthFailed, []string{"refused the login", "Permission denied"}},
		{"no-such-host.invalid", "hostname", UnknownHost, []string{"unknown host", "Could not resolve"}},
		{"key-changed", "hostname", HostKey, []string{"host key check failed", "`hostname`"}},
		{"key-unknown", "hostname", HostKey, []string{"host key check failed"}},
		{p.Hosts[0], "ipp-no-such-command --flag", CommandNotFound, []string{"command not found", "ipp-no-such-command", "exit 127"}},
		{p.Hosts[1], "ipp-no-such-command", CommandNotFound, []string{"command not found", "ipp-no-such-command"}},
		{p.Hosts[0], "echo oops >&2; exit 3", CommandFailed, []string{"exit 3", "oops", "echo oops"}},
	}
	for _, c := range cases {
		h := newHost(t, c.host)
		start := time.Now()
		_, err := h.Run(ctx, c.cmd, nil)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%s: `%s`: got %v (%T), want an *Error", c.host, c.cmd, err, err)
			continue
		}
		msg := err.Error()
		if e.Kind != c.kind || e.Host != c.host || !strings.Contains(msg, c.host) {
			t.Errorf("%s: `%s`: kind %v host %q, message %q; want kind %v naming the host", c.host, c.cmd, e.Kind, e.Host, msg, c.kind)
		}
		for _, w := range c.says {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: `%s`: message %q does not say %q", c.host, c.cmd, msg, w)
			}
		}
		if IsConnectError(err) != (c.kind <= HostKey) {
			t.Errorf("%s: IsConnectError(%v) = %v", c.host, err, IsConnectError(err))
		}
		// ConnectTimeout is 5 s; refusals are immediate.
		if d := time.Since(start); d > time.Minute {
			t.Errorf("%s: the error took %v", c.host, d)
		}
	}
}

// TestRealConnectErrorNamesCommand: when the host cannot be reached, the
// error still says which command was being run, so a user of a launcher
// knows which step failed.
func TestRealConnectErrorNamesCommand(t *testing.T) {
	s := testutil.SSH(t)
	s.SetEnv(t)
	h := newHost(t, testutil.SSHHostUnreachable)
	_, err := h.Run(testCtx(t), "ipcluster list", nil)
	if err == nil || !strings.Contains(err.Error(), "ipcluster list") {
		t.Fatalf("Run(ipcluster list) on an unreachable host: %v; want the command named", err)
	}
}

// TestRealFiles writes files on both accounts with mode 0600, reads them
// back byte for byte, and checks the remote mode, a path with blanks under
// ~, and a missing file's error.
func TestRealFiles(t *testing.T) {
	s := testutil.SSH(t)
	s.SetEnv(t)
	ctx := testCtx(t)
	data := make([]byte, 100<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, name := range []string{testutil.SSHHostRoot, testutil.SSHHostUser} {
		h := newHost(t, name)
		dir := fmt.Sprintf("~/.ipp-sshx-test %d", time.Now().UnixNano())
		file := dir + "/sub dir/conn file.json"
		t.Cleanup(func() { _, _ = h.Run(context.Background(), "rm -rf "+RemotePath(dir), nil) })
		if err := h.WriteFile(ctx, file, data, 0o600); err != nil {
			t.Fatalf("%s: WriteFile: %v", name, err)
		}
		out, err := h.Run(ctx, "stat -c '%a %U' "+RemotePath(file)+" && ls -a "+RemotePath(dir+"/sub dir"), nil)
		if err != nil {
			t.Fatalf("%s: stat: %v", name, err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		user := map[string]string{testutil.SSHHostRoot: "root", testutil.SSHHostUser: s.UserName}[name]
		if lines[0] != "600 "+user {
			t.Errorf("%s: remote file mode and owner %q, want \"600 %s\"", name, lines[0], user)
		}
		if strings.Join(lines[1:], " ") != ". .. conn file.json" {
			t.Errorf("%s: remote directory holds %q, want only the file (no temporary left)", name, lines[1:])
		}
		back, err := h.ReadFile(ctx, file)
		if err != nil {
			t.Fatalf("%s: ReadFile: %v", name, err)
		}
		if !bytes.Equal(back, data) {
			t.Errorf("%s: read back %d bytes, differing from the %d written", name, len(back), len(data))
		}
		// Rewriting keeps the mode asked for, even over a looser file.
		if _, err := h.Run(ctx, "chmod 644 "+RemotePath(file), nil); err != nil {
			t.Fatal(err)
		}
		if err := h.WriteFile(ctx, file, []byte("v2"), 0o600); err != nil {
			t.Fatalf("%s: second WriteFile: %v", name, err)
		}
		if out, _ := h.Run(ctx, "stat -c %a "+RemotePath(file)+"; cat "+RemotePath(file), nil); string(out) != "600\nv2" {
			t.Errorf("%s: after rewrite: %q, want mode 600 and v2", name, out)
		}
		_, err = h.ReadFile(ctx, dir+"/missing.json")
		var e *Error
		if !errors.As(err, &e) || e.Kind != CommandFailed || !strings.Contains(err.Error(), "missing.json") {
			t.Errorf("%s: ReadFile of a missing file: %v; want a CommandFailed error naming it", name, err)
		}
	}
}

// echoServer answers each connection by echoing what it reads, on a
// loopback port, and returns its address.
func echoServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return l.Addr().String()
}

// roundTrip sends msg through addr and reads it back.
func roundTrip(addr, msg string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echo through %s returned %q, want %q", addr, buf, msg)
	}
	return nil
}

// TestRealForward carries TCP connections through a port forward on the
// private sshd and checks that they ride on the master (the sshd log shows
// one login), and that after Close the local port is gone and no master is
// left.
func TestRealForward(t *testing.T) {
	p := testutil.SSH(t).Private(t)
	p.SetEnv(t)
	ctx := testCtx(t)
	target := echoServer(t)
	before := p.Accepted(t)
	h := newHost(t, p.Hosts[0])
	tun, err := h.Forward(ctx, []Forward{{Remote: target}}, nil)
	if err != nil {
		t.Fatalf("Forward: %v", err)
	}
	local := tun.Locals()[0]
	if local == target {
		t.Fatalf("forward's local address %s is the target itself", local)
	}
	for i := range 3 {
		if err := roundTrip(local, fmt.Sprintf("hello %d through ssh", i)); err != nil {
			t.Fatalf("through the forward: %v", err)
		}
	}
	// Commands share the forward's connection.
	if _, err := h.Run(ctx, "true", nil); err != nil {
		t.Fatal(err)
	}
	if n := p.Accepted(t) - before; n != 1 {
		t.Errorf("sshd logged %d logins for a forward and a command, want 1", n)
	}
	if err := tun.Close(); err != nil {
		t.Fatalf("Tunnel.Close: %v", err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", local, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	}, "the forward's local port %s still accepts after Tunnel.Close", local)
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	testutil.Eventually(t, 15*time.Second, func() bool { return len(masterPIDs(t, p.ConfigFile)) == 0 },
		"ssh master still running after Close: %v", masterPIDs(t, p.ConfigFile))
}

// TestRealForwardIntoNamespace reaches a server on the login namespace's
// own loopback, which nothing but the forward can reach from here.
func TestRealForwardIntoNamespace(t *testing.T) {
	ns := testutil.LoginNamespace(t)
	ns.SSH.SetEnv(t)
	ctx := testCtx(t)
	srv := ns.Command(ctx, testutil.Python, "-c", `
import socket, threading
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True)
def echo(c):
    with c:
        while (b := c.recv(4096)):
            c.sendall(b)
while True:
    c, _ = s.accept(); threading.Thread(target=echo, args=(c,), daemon=True).start()
`)
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	var port int
	if _, err := fmt.Fscan(stdout, &port); err != nil {
		t.Fatalf("reading the namespace server's port: %v", err)
	}
	remote := fmt.Sprintf("127.0.0.1:%d", port)
	if err := roundTrip(remote, "direct"); err == nil {
		t.Fatalf("the namespace's %s answered directly from here; the test proves nothing", remote)
	}
	h := newHost(t, ns.Host)
	tun, err := h.Forward(ctx, []Forward{{Remote: remote}}, nil)
	if err != nil {
		t.Fatalf("Forward to %s on %s: %v", remote, ns.Host, err)
	}
	defer tun.Close()
	if err := roundTrip(tun.Locals()[0], "into the namespace"); err != nil {
		t.Fatal(err)
	}
}

// TestRealCloseSparesOtherSessions: the master is shared by every Host of
// every process for the same user@host:port (that is the point of
// ControlPersist), so one Host's Close must not cut a command another one
// is running on it. The master still goes once that command is done.
func TestRealCloseSparesOtherSessions(t *testing.T) {
	p := testutil.SSH(t).Private(t)
	p.SetEnv(t)
	ctx := testCtx(t)
	h1, h2 := newHost(t, p.Hosts[0]), newHost(t, p.Hosts[0])
	if err := h1.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	// The remote side shares this machine's files: the marker says the
	// command has started.
	marker := filepath.Join(t.TempDir(), "started")
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := h2.Run(ctx, "touch "+RemotePath(marker)+"; sleep 2; echo finished", nil)
		done <- result{out, err}
	}()
	testutil.Eventually(t, time.Minute, func() bool { _, err := os.Stat(marker); return err == nil },
		"the remote command never started")
	if err := h1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	r := <-done
	if r.err != nil || strings.TrimSpace(string(r.out)) != "finished" {
		t.Fatalf("a command running on the shared master when another Host closed it: %q, %v", r.out, r.err)
	}
	testutil.Eventually(t, 15*time.Second, func() bool { return len(masterPIDs(t, p.ConfigFile)) == 0 },
		"master still running after Close and the last command: %v", masterPIDs(t, p.ConfigFile))
}

// TestRealStaleControlSocket kills the master with SIGKILL, which leaves
// its control socket behind, and checks that the next command starts a
// new master on the same path (one connection, one master) instead of
// running without multiplexing and leaving a stray `ssh -N -f` behind.
func TestRealStaleControlSocket(t *testing.T) {
	p := testutil.SSH(t).Private(t)
	p.SetEnv(t)
	ctx := testCtx(t)
	h := newHost(t, p.Hosts[1])
	if _, err := h.Run(ctx, "true", nil); err != nil {
		t.Fatal(err)
	}
	masters := masterPIDs(t, p.ConfigFile)
	if len(masters) != 1 {
		t.Fatalf("masters %v, want one", masters)
	}
	pid, _ := strconv.Atoi(masters[0])
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 15*time.Second, func() bool { return len(masterPIDs(t, p.ConfigFile)) == 0 },
		"the killed master is still listed")
	sock := h.effectiveConfig()["controlpath"]
	if fi, err := os.Lstat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("expected the dead master's socket at %s to remain: %v", sock, err)
	}
	for i := range 3 {
		if _, err := h.Run(ctx, "true", nil); err != nil {
			t.Fatalf("run %d after the kill: %v", i, err)
		}
	}
	if m := masterPIDs(t, p.ConfigFile); len(m) != 1 || m[0] == masters[0] {
		t.Fatalf("masters after the kill: %v, want one new master", m)
	}
	testutil.Eventually(t, 15*time.Second, func() bool { return p.Connections(t) == 1 },
		"%d TCP connections to sshd after the kill, want 1", p.Connections(t))
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
}
