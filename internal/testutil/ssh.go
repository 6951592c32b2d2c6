package testutil

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/shellwords"
)

// Where scripts/sshd.sh puts the loopback sshd when the environment names
// none ($SSH_BASE, $SSH_PORT).
const (
	// SSHBase is the default $SSH_BASE of scripts/sshd.sh.
	SSHBase = "/tmp/ipp-sshd"
	// SSHPort is the default $SSH_PORT of scripts/sshd.sh.
	SSHPort = 2222
	// SSHUserName is the account that is not root, created by scripts/sshd.sh.
	SSHUserName = "ippci"
)

// Host names of $SSH_BASE/ssh_config (see scripts/sshd.sh).
const (
	// SSHHostRoot logs in as root on 127.0.0.1:$SSH_PORT.
	SSHHostRoot = "ci"
	// SSHHostUser logs in as SSHUserName on the same sshd.
	SSHHostUser = "ci-user"
	// SSHHostAlias is root on the same sshd by another name (HostName
	// localhost), to stand for a second machine.
	SSHHostAlias = "localhost-ci"
	// SSHHostUnreachable points at 127.0.0.1:1, where nothing listens.
	SSHHostUnreachable = "ci-unreachable"
	// SSHHostBadKey offers a key that no account accepts. It connects to
	// 127.0.0.2: ssh multiplexes by user@host:port, and on 127.0.0.1 it
	// would ride on a master connection opened by "ci" with a good key.
	SSHHostBadKey = "ci-badkey"
	// LoginNSHost is root on the sshd inside the ipp-login namespace.
	LoginNSHost = "login-ns"
)

// sshHint is how to get the sshd, for skip and failure messages.
const sshHint = "scripts/install-deps.sh test && scripts/sshd.sh start (as root), or `make services`"

// SSHServer describes the running loopback sshd of scripts/sshd.sh.
type SSHServer struct {
	// Base is $SSH_BASE: keys, configs and sshd.log live there.
	Base string
	// ConfigFile is the client configuration: ssh -F ConfigFile HOST.
	ConfigFile string
	// Hosts are the names that log in: SSHHostRoot, SSHHostUser,
	// SSHHostAlias (for a Private server, its root and user hosts).
	Hosts []string
	// Port is where sshd listens on 127.0.0.1.
	Port int
	// UserName is the account that is not root (SSHUserName).
	UserName string
	// Log is sshd's log: one "Accepted publickey for USER from ADDR port N"
	// line per connection.
	Log string
	// BadKeyHost offers a key that no account accepts, on an address where
	// no master connection with a good key can exist.
	BadKeyHost string
}

// SSH returns the loopback sshd of scripts/sshd.sh once both `ci` (root)
// and `ci-user` (SSHUserName) log in. If they do not, the test is skipped
// with a loud reason, or failed when CI=true. $SSH_BASE and $SSH_PORT
// override the defaults.
func SSH(t testing.TB) *SSHServer {
	t.Helper()
	if _, err := probeOnce("ssh", probeSSH); err != nil {
		Missing(t, "no test sshd: %v (start one with %s)", err, sshHint)
	}
	return defaultSSHServer()
}

func defaultSSHServer() *SSHServer {
	base := os.Getenv("SSH_BASE")
	if base == "" {
		base = SSHBase
	}
	port := SSHPort
	if p, err := strconv.Atoi(os.Getenv("SSH_PORT")); err == nil && p > 0 {
		port = p
	}
	return &SSHServer{
		Base:       base,
		ConfigFile: filepath.Join(base, "ssh_config"),
		Hosts:      []string{SSHHostRoot, SSHHostUser, SSHHostAlias},
		Port:       port,
		BadKeyHost: SSHHostBadKey,
		UserName:   SSHUserName,
		Log:        filepath.Join(base, "sshd.log"),
	}
}

func probeSSH() ([]string, error) {
	s := defaultSSHServer()
	if _, err := exec.LookPath("ssh"); err != nil {
		return nil, fmt.Errorf("ssh not installed (apt-get install openssh-client): %w", err)
	}
	if _, err := os.Stat(s.ConfigFile); err != nil {
		return nil, fmt.Errorf("no client config: %w", err)
	}
	for _, host := range []string{SSHHostRoot, SSHHostUser} {
		if err := s.probeLogin(host); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// probeLogin runs `true` on host, bounded by probeTimeout.
func (s *SSHServer) probeLogin(host string) error {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	out, err := s.Command(ctx, host, "true").CombinedOutput()
	if ctx.Err() != nil {
		return fmt.Errorf("ssh -F %s %s true did not answer within %v", s.ConfigFile, host, probeTimeout)
	}
	if err != nil {
		return fmt.Errorf("ssh -F %s %s true: %v: %s", s.ConfigFile, host, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Args returns the ssh arguments that select this server's client
// configuration, to put before the host name.
func (s *SSHServer) Args() []string { return []string{"-F", s.ConfigFile} }

// ArgsEnv returns protocol.EnvSSHArgs=<Args>, to add to a child process's
// environment (ipcluster and test binaries started with exec.Command).
func (s *SSHServer) ArgsEnv() string {
	return protocol.EnvSSHArgs + "=" + shellwords.Quote(s.Args()...)
}

// SetEnv sets protocol.EnvSSHArgs for the rest of the test, so that package sshx in
// this process (and every child that inherits the environment) uses this
// server's configuration. Like t.Setenv it cannot be used in parallel tests.
func (s *SSHServer) SetEnv(t testing.TB) {
	t.Helper()
	t.Setenv(protocol.EnvSSHArgs, shellwords.Quote(s.Args()...))
}

// Command returns `ssh -F ConfigFile host remote...`, stdin from
// /dev/null unless the caller sets one. The remote words are joined by
// spaces and run by the remote login shell, as ssh does.
func (s *SSHServer) Command(ctx context.Context, host string, remote ...string) *exec.Cmd {
	args := append(s.Args(), host)
	args = append(args, remote...)
	cmd := exec.CommandContext(ctx, "ssh", args...)
	cmd.WaitDelay = time.Second
	return cmd
}

// Run runs remote on host and returns its standard output; it fails the
// test on any error, with the standard error in the message.
func (s *SSHServer) Run(t testing.TB, host string, remote ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := s.Command(ctx, host, remote...)
	var stderr SyncBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ssh %s %s: %v: %s", host, strings.Join(remote, " "), err, stderr.String())
	}
	return string(out)
}

// SharedDir returns a new directory that every account can enter and
// write (mode 1777, like /tmp; removed when the test ends): the remote
// accounts of this sshd share this machine's files, and SSHUserName
// cannot enter root's 0700 directories (t.TempDir, /tmp/go-build*).
func (s *SSHServer) SharedDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ipp-ssh-share-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Share copies the executable or file at path into a new SharedDir and
// returns the copy's path (mode 0755). SSHUserName cannot run what
// `go build` and `go test` leave under root's 0700 directories.
func (s *SSHServer) Share(t testing.TB, path string) string {
	t.Helper()
	src, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst := filepath.Join(s.SharedDir(t), filepath.Base(path))
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// Private starts an sshd of the test's own on a free port of 127.0.0.1
// (same host key, same accounts and keys as s; stopped when the test
// ends) and returns it with a client configuration of its own whose hosts
// are "private-ci" (root), "private-ci-user" (UserName) and BadKeyHost.
// ssh multiplexes by user@host:port: on the shared sshd a test's commands
// may ride on another process's master connection, and a refused key may
// never be offered. On a port of its own a test sees only its own
// connections (Connections, Log).
func (s *SSHServer) Private(t testing.TB) *SSHServer {
	t.Helper()
	dir, err := os.MkdirTemp("", "ipp-sshd-private-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	hostPub, err := os.ReadFile(filepath.Join(s.Base, "host_ed25519.pub"))
	if err != nil {
		t.Fatal(err)
	}
	hostKey := strings.Join(strings.Fields(string(hostPub))[:2], " ")
	p := &SSHServer{
		Base:       s.Base,
		ConfigFile: filepath.Join(dir, "ssh_config"),
		Hosts:      []string{"private-ci", "private-ci-user"},
		BadKeyHost: "private-ci-badkey",
		UserName:   s.UserName,
		Log:        filepath.Join(dir, "sshd.log"),
	}
	// The port is free when picked and sshd binds it a moment later:
	// another program may take it in between, so try a few.
	var lastErr error
	for range 5 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p.Port = l.Addr().(*net.TCPAddr).Port
		l.Close()
		if lastErr = p.startPrivate(t, dir, hostKey); lastErr == nil {
			return p
		}
	}
	t.Fatalf("private sshd: %v", lastErr)
	return nil
}

// startPrivate writes the configurations for p.Port and starts sshd in
// the foreground as a child of the test, stopped at cleanup with the
// per-connection processes it forked.
func (p *SSHServer) startPrivate(t testing.TB, dir, hostKey string) error {
	sshdConf := filepath.Join(dir, "sshd_config")
	conf := fmt.Sprintf(`ListenAddress 127.0.0.1:%d
HostKey %s
PidFile none
AuthorizedKeysFile %s/%%u
AllowUsers root %s
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowTcpForwarding yes
X11Forwarding no
PrintMotd no
PrintLastLog no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
LogLevel INFO
`, p.Port, filepath.Join(p.Base, "host_ed25519"), filepath.Join(p.Base, "authorized_keys"), p.UserName)
	known := fmt.Sprintf("[127.0.0.1]:%d %s\n", p.Port, hostKey)
	var client strings.Builder
	for _, h := range []struct{ name, user, key string }{
		{p.Hosts[0], "root", "id_root"},
		{p.Hosts[1], p.UserName, "id_" + p.UserName},
		{p.BadKeyHost, "root", "id_refused"},
	} {
		fmt.Fprintf(&client, "Host %s\n  HostName 127.0.0.1\n  Port %d\n  User %s\n  IdentityFile %s\n",
			h.name, p.Port, h.user, filepath.Join(p.Base, h.key))
	}
	fmt.Fprintf(&client, "Host *\n  BatchMode yes\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n"+
		"  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  ConnectTimeout 5\n  LogLevel ERROR\n",
		filepath.Join(dir, "known_hosts"))
	for file, text := range map[string]string{sshdConf: conf, filepath.Join(dir, "known_hosts"): known, p.ConfigFile: client.String()} {
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			return err
		}
	}
	// An absolute path: sshd re-executes itself for every connection.
	cmd := exec.Command("/usr/sbin/sshd", "-D", "-f", sshdConf, "-E", p.Log)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		kids := childrenOf(cmd.Process.Pid)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		for _, k := range kids {
			_ = syscall.Kill(k, syscall.SIGTERM)
		}
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(p.Log)
			return fmt.Errorf("sshd on port %d exited: %v: %s", p.Port, err, log)
		default:
		}
		err := p.probeLogin(p.Hosts[0])
		if err == nil {
			t.Cleanup(stop)
			return nil
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("sshd on port %d does not let root in after 30 s: %v", p.Port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	var kids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold blanks, so cut at the last ')'.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			kids = append(kids, n)
		}
	}
	return kids
}

// Connections counts the established TCP connections from this machine
// to 127.0.0.1:Port, read from /proc/net/tcp. On the shared sshd other
// tests' connections count too: use a Private server.
func (s *SSHServer) Connections(t testing.TB) int {
	t.Helper()
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(s.Port))
	n := 0
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st ...; addresses are little-endian hex.
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[3] != "01" {
			continue
		}
		if remote, ok := parseProcAddr(fields[2]); ok && remote == want {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// Accepted counts the logins sshd logged (one per connection).
func (s *SSHServer) Accepted(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile(s.Log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "Accepted publickey for ")
}

// parseProcAddr parses an IPv4 "0100007F:08AE" of /proc/net/tcp.
func parseProcAddr(s string) (netip.AddrPort, bool) {
	a, p, ok := strings.Cut(s, ":")
	if !ok || len(a) != 8 {
		return netip.AddrPort{}, false
	}
	b, err := hex.DecodeString(a)
	if err != nil {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{b[3], b[2], b[1], b[0]}), uint16(port)), true
}

// LoginNS is the "login node" of scripts/netns-login.sh: a network
// namespace joined to this machine only by a veth pair, with an sshd of
// its own. A program it runs on its 127.0.0.1 is reachable from here only
// through an ssh port forward.
type LoginNS struct {
	// Name is the network namespace, for ip netns exec.
	Name string
	// Host is the ssh host name (root) in SSH.ConfigFile.
	Host string
	// Addr is the namespace's address on the veth pair; HostAddr is this
	// machine's end.
	Addr, HostAddr string
	// SSH is the loopback sshd whose keys and client configuration the
	// namespace's sshd shares.
	SSH *SSHServer
}

// LoginNamespace returns the namespace of scripts/netns-login.sh once
// `ssh login-ns` logs in; otherwise the test is skipped with a loud
// reason, or failed when CI=true.
func LoginNamespace(t testing.TB) *LoginNS {
	t.Helper()
	s := SSH(t)
	ns := &LoginNS{Name: "ipp-login", Host: LoginNSHost, Addr: "10.231.0.2", HostAddr: "10.231.0.1", SSH: s}
	if _, err := probeOnce("netns", func() ([]string, error) { return nil, ns.probe() }); err != nil {
		Missing(t, "no login namespace: %v (start it with scripts/netns-login.sh start as root, or `make services`)", err)
	}
	return ns
}

func (ns *LoginNS) probe() error {
	// Without the namespace 10.231.0.2 would be routed off this machine:
	// look before connecting.
	if _, err := os.Stat(filepath.Join("/run/netns", ns.Name)); err != nil {
		return fmt.Errorf("network namespace %s: %w", ns.Name, err)
	}
	return ns.SSH.probeLogin(ns.Host)
}

// Command returns a command that runs name inside the namespace
// (ip netns exec), as root. ip execs name in place, so the process and its
// signals are name's own.
func (ns *LoginNS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
	cmd.WaitDelay = time.Second
	return cmd
}
