package testutil

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/protocol"
)

// TestSSHLogins logs in by every host name of the loopback sshd and checks
// who the remote account is.
func TestSSHLogins(t *testing.T) {
	s := SSH(t)
	want := map[string]string{SSHHostRoot: "root", SSHHostUser: s.UserName, SSHHostAlias: "root"}
	for _, host := range s.Hosts {
		if got := strings.TrimSpace(s.Run(t, host, "id", "-un")); got != want[host] {
			t.Errorf("ssh %s id -un = %q, want %q", host, got, want[host])
		}
	}
	if got, want := s.ArgsEnv(), protocol.EnvSSHArgs+"=-F "+s.ConfigFile; got != want {
		t.Errorf("ArgsEnv() = %q, want %q", got, want)
	}
}

// TestSSHRefusals checks that the host entries meant for error tests fail
// the way their names say.
func TestSSHRefusals(t *testing.T) {
	s := SSH(t)
	for host, want := range map[string]string{
		SSHHostUnreachable:     "Connection refused",
		SSHHostBadKey:          "Permission denied",
		"no-such-host.invalid": "Could not resolve hostname",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := s.Command(ctx, host, "true").CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("ssh %s true: err %v, output %q; want a failure saying %q", host, err, out, want)
		}
	}
}

// TestSSHShare checks the trap Share exists for: the account that is not
// root cannot run this test binary where go test built it, and can run the
// shared copy.
func TestSSHShare(t *testing.T) {
	s := SSH(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := s.Command(ctx, SSHHostUser, exe, "-test.list", "TestSSHShare").CombinedOutput(); err == nil {
		t.Logf("%s can run %s in place (its directory is not 0700 here): %s", s.UserName, exe, out)
	}
	shared := s.Share(t, exe)
	out := s.Run(t, SSHHostUser, shared, "-test.list", "TestSSHShare", "&&", "id", "-un")
	if !strings.Contains(out, "TestSSHShare\n") || !strings.HasSuffix(out, s.UserName+"\n") {
		t.Fatalf("shared test binary run as %s printed %q, want its test list then %s", s.UserName, out, s.UserName)
	}
}

// TestSSHPrivate holds one connection open to a private sshd and checks
// that Connections and Accepted see exactly it, and that its hosts log in
// (or are refused) as on the shared server.
func TestSSHPrivate(t *testing.T) {
	p := SSH(t).Private(t)
	if got := strings.TrimSpace(p.Run(t, p.Hosts[1], "id", "-un")); got != p.UserName {
		t.Errorf("ssh %s id -un = %q, want %q", p.Hosts[1], got, p.UserName)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if out, err := p.Command(ctx, p.BadKeyHost, "true").CombinedOutput(); err == nil || !strings.Contains(string(out), "Permission denied") {
		t.Errorf("ssh %s true: %v, %q; want Permission denied", p.BadKeyHost, err, out)
	}
	before := p.Accepted(t)
	if n := p.Connections(t); n != 0 {
		t.Fatalf("%d connections to private port %d before any ssh", n, p.Port)
	}
	cmd := p.Command(ctx, p.Hosts[0], "echo ready; exec sleep 60")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	buf := make([]byte, 6)
	if _, err := io.ReadFull(stdout, buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("ssh printed %q, %v", buf, err)
	}
	if n := p.Connections(t); n != 1 {
		t.Fatalf("%d established connections to port %d, want 1", n, p.Port)
	}
	if n := p.Accepted(t) - before; n != 1 {
		t.Fatalf("sshd logged %d logins for one ssh", n)
	}
	cancel()
	_ = cmd.Wait()
	Eventually(t, 10*time.Second, func() bool { return p.Connections(t) == 0 },
		"connection to port %d still established after ssh exited", p.Port)
}

// TestLoginNamespace starts a listener inside the namespace on its
// loopback and checks it is closed to this machine but reachable through
// an ssh port forward.
func TestLoginNamespace(t *testing.T) {
	ns := LoginNamespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A one-line TCP server inside the namespace: prints its port, then
	// answers every connection with "hello".
	srv := ns.Command(ctx, "/usr/bin/python3", "-c", `
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept(); c.sendall(b"hello"); c.close()
`)
	out, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	var port int
	if _, err := fmt.Fscan(out, &port); err != nil {
		t.Fatalf("reading the namespace server's port: %v", err)
	}
	// From here, 127.0.0.1:port is another socket (or none) and the
	// namespace's address does not lead to its loopback.
	for _, addr := range []string{fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("%s:%d", ns.Addr, port)} {
		if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
			got, _ := io.ReadAll(io.LimitReader(c, 5))
			c.Close()
			if string(got) == "hello" {
				t.Fatalf("the namespace's loopback server answered on %s from outside", addr)
			}
		}
	}
	// Through a forward: find a free local port, forward it, read "hello".
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	local := l.Addr().String()
	l.Close()
	// -N and -L are options: they come before the host name.
	fwd := exec.CommandContext(ctx, "ssh", append(ns.SSH.Args(), "-N", "-o", "ExitOnForwardFailure=yes",
		"-L", fmt.Sprintf("%s:127.0.0.1:%d", local, port), ns.Host)...)
	if err := fwd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fwd.Process.Kill(); _ = fwd.Wait() }()
	Eventually(t, 30*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", local, 2*time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		b, _ := io.ReadAll(io.LimitReader(c, 5))
		return string(b) == "hello"
	}, "no hello through the forward %s -> login-ns 127.0.0.1:%d", local, port)
}
