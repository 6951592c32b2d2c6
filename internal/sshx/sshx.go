package sshx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/shellwords"
)

// ControlPersist is how long an idle master connection this package opened
// stays up, so that a user's next ipcluster command reuses it.
const ControlPersist = 120

// Host is one destination reached through the system ssh. Its methods are
// safe for concurrent use.
type Host struct {
	name string   // as given by the user, for messages
	dest string   // as passed to ssh
	base []string // program and the arguments every invocation gets

	// mux: commands share a master connection. ownPath: the control path is
	// ours (the user's ssh_config sets none).
	mux     bool
	ownPath bool

	// sessions bounds the commands Run has in flight: sshd serves at most
	// MaxSessions (default 10) per connection, and ssh quietly opens a new
	// connection — a full login, perhaps a 2FA prompt — for each one beyond.
	sessions chan struct{}

	mu       sync.Mutex
	masterUp bool
}

// maxSessions leaves room under sshd's default MaxSessions (10) for a
// tunnel and the master's own session.
const maxSessions = 8

// New prepares a destination: "host", "user@host", "host:port",
// "user@host:port" (ipyparallel's spelling of the `ssh` field) or an
// ssh://user@host:port URL. Nothing is contacted yet. extraArgs go to every
// ssh invocation after IPP_SSH_ARGS.
func New(dest string, extraArgs ...string) (*Host, error) {
	d, err := destination(dest)
	if err != nil {
		return nil, err
	}
	prog := []string{"ssh"}
	if v := os.Getenv(protocol.EnvSSH); strings.TrimSpace(v) != "" {
		if prog, err = shellwords.Split(v); err != nil {
			return nil, fmt.Errorf("%s: %w", protocol.EnvSSH, err)
		}
	}
	env, err := shellwords.Split(os.Getenv(protocol.EnvSSHArgs))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", protocol.EnvSSHArgs, err)
	}
	h := &Host{name: dest, dest: d, sessions: make(chan struct{}, maxSessions)}
	h.base = append(append(append(h.base, prog...), env...), extraArgs...)
	h.setupMux()
	return h, nil
}

// destination checks a user-given destination and turns host:port into the
// URL form ssh understands. A destination comes from connection files too,
// which another user may have written: one that starts with "-" would be
// read by ssh as an option (-oProxyCommand=... runs anything), so it is
// refused, as are blanks and control characters.
func destination(dest string) (string, error) {
	if dest == "" {
		return "", errors.New("ssh: empty host")
	}
	if strings.HasPrefix(dest, "-") || strings.ContainsFunc(dest, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", fmt.Errorf("ssh: refusing host %q: a host name cannot start with '-' or contain blanks", dest)
	}
	if strings.HasPrefix(dest, "ssh://") {
		return dest, nil
	}
	hostPart := dest[strings.LastIndexByte(dest, '@')+1:]
	if i := strings.LastIndexByte(hostPart, ':'); i >= 0 && !strings.Contains(hostPart[:i], ":") {
		if _, err := strconv.ParseUint(hostPart[i+1:], 10, 16); err != nil {
			return "", fmt.Errorf("ssh: bad port in %q", dest)
		}
		return "ssh://" + dest, nil
	}
	return dest, nil
}

// Name is the destination as the user gave it.
func (h *Host) Name() string { return h.name }

// setupMux decides how this host's commands share one connection: the
// user's own ControlPath if ssh_config sets one, else a socket of ours in a
// private directory. Without multiplexing (Windows, or no safe directory)
// every command opens its own connection.
func (h *Host) setupMux() {
	if runtime.GOOS == "windows" {
		return
	}
	cfg := h.effectiveConfig()
	if p := cfg["controlpath"]; p != "" && p != "none" {
		h.mux = true
		return
	}
	dir, err := controlDir()
	if err != nil {
		// A directory someone else owns could hijack our sockets: go
		// without multiplexing rather than use it.
		return
	}
	h.mux, h.ownPath = true, true
	h.base = append(h.base, "-o", "ControlPath="+path.Join(dir, "%C"))
}

// effectiveConfig asks `ssh -G` what ssh would use for this destination.
// Old ssh versions without -G give an empty map.
func (h *Host) effectiveConfig() map[string]string {
	cmd := exec.Command(h.base[0], append(append(h.base[1:len(h.base):len(h.base)], "-G"), h.dest)...)
	out, err := cmd.Output()
	cfg := map[string]string{}
	if err != nil {
		return cfg
	}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok {
			cfg[k] = v
		}
	}
	return cfg
}

// ssh builds an ssh command line: base arguments, then extra options, then
// the destination, then the remote command if any.
func (h *Host) ssh(ctx context.Context, opts []string, remote string) *exec.Cmd {
	args := append(append([]string{}, h.base[1:]...), opts...)
	args = append(args, h.dest)
	if remote != "" {
		args = append(args, remote)
	}
	cmd := exec.CommandContext(ctx, h.base[0], args...)
	return cmd
}

// Connect makes sure a master connection is up (logging in if needed), so
// that the errors of reaching the host come first and alone.
func (h *Host) Connect(ctx context.Context) error {
	if !h.mux {
		_, err := h.Run(ctx, "true", nil)
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ensureMasterLocked(ctx)
}

func (h *Host) ensureMasterLocked(ctx context.Context) error {
	if h.masterUp && h.masterAlive(ctx) {
		return nil
	}
	h.masterUp = false
	if h.masterAlive(ctx) {
		h.masterUp = true
		return nil
	}
	h.removeStaleSocket()
	// -f returns once logged in; the master stays in the background with
	// our stdio descriptors, so stderr goes to a file, never a pipe that
	// Wait would block on.
	errf, err := os.CreateTemp("", "ipp-ssh-*.err")
	if err != nil {
		return err
	}
	defer os.Remove(errf.Name())
	defer errf.Close()
	opts := []string{"-M", "-N", "-f", "-o", "ControlMaster=yes",
		"-o", "ControlPersist=" + strconv.Itoa(ControlPersist),
		"-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"}
	cmd := h.ssh(ctx, opts, "")
	cmd.Stderr = errf
	runErr := cmd.Run()
	_, _ = errf.Seek(0, io.SeekStart)
	msg, _ := io.ReadAll(io.LimitReader(errf, 64<<10))
	if err := classify(h.name, "connect", runErr, msg); err != nil {
		return err
	}
	h.masterUp = true
	return nil
}

// masterAlive asks the control socket whether its master still runs.
func (h *Host) masterAlive(ctx context.Context) bool {
	cmd := h.ssh(ctx, []string{"-O", "check"}, "")
	return cmd.Run() == nil
}

// muxOpts are the options of a command that should ride on the master.
func (h *Host) muxOpts(ctx context.Context) ([]string, error) {
	if !h.mux {
		return nil, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.ensureMasterLocked(ctx); err != nil {
		return nil, err
	}
	// ControlMaster=no: use the master, and if it has just gone, connect
	// directly rather than make this short command a master.
	return []string{"-o", "ControlMaster=no"}, nil
}

// Command prepares a remote shell command on the shared connection, for
// callers that stream its input or output. Pass its exit error and stderr
// to Explain. Unlike Run it does not count against the session limit:
// keep long-running commands few.
func (h *Host) Command(ctx context.Context, remote string) (*exec.Cmd, error) {
	opts, err := h.muxOpts(ctx)
	if err != nil {
		// The master's error says "connect": say which command it kept
		// from running.
		var e *Error
		if errors.As(err, &e) {
			c := *e
			c.Command = remote
			return nil, &c
		}
		return nil, err
	}
	return h.ssh(ctx, opts, remote), nil
}

// Explain turns the outcome of a Command into nil or an *Error.
func (h *Host) Explain(remote string, runErr error, stderr []byte) error {
	return classify(h.name, remote, runErr, stderr)
}

// Run runs a remote shell command and returns its standard output. stdin
// may be nil.
func (h *Host) Run(ctx context.Context, remote string, stdin io.Reader) ([]byte, error) {
	select {
	case h.sessions <- struct{}{}:
		defer func() { <-h.sessions }()
	case <-ctx.Done():
		return nil, fmt.Errorf("ssh %s: `%s`: %w", h.name, remote, ctx.Err())
	}
	cmd, err := h.Command(ctx, remote)
	if err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	runErr := cmd.Run()
	if ctx.Err() != nil && runErr != nil {
		return stdout.Bytes(), fmt.Errorf("ssh %s: `%s`: %w", h.name, remote, ctx.Err())
	}
	return stdout.Bytes(), classify(h.name, remote, runErr, stderr.Bytes())
}

// RemotePath quotes a remote path for the remote shell, expanding a leading
// "~/" to the remote $HOME (a quoted ~ would not be).
func RemotePath(p string) string {
	switch {
	case p == "~":
		return `"$HOME"`
	case strings.HasPrefix(p, "~/"):
		return `"$HOME"/` + shellwords.Quote(p[2:])
	}
	return shellwords.Quote(p)
}

// WriteFile writes data to a remote file with mode perm, creating its
// directory (0700) as needed. The file is written beside its final name
// and renamed, and never exists with looser permissions than perm.
func (h *Host) WriteFile(ctx context.Context, file string, data []byte, perm os.FileMode) error {
	dir, tmp := path.Dir(file), file+".tmp-ipp"
	remote := fmt.Sprintf("umask 077 && mkdir -p %s && cat > %s && chmod %o %s && mv -f %s %s",
		RemotePath(dir), RemotePath(tmp), perm.Perm(), RemotePath(tmp), RemotePath(tmp), RemotePath(file))
	_, err := h.Run(ctx, remote, bytes.NewReader(data))
	return err
}

// ReadFile returns a remote file's contents.
func (h *Host) ReadFile(ctx context.Context, file string) ([]byte, error) {
	return h.Run(ctx, "cat "+RemotePath(file), nil)
}

// Close ends the master connection if this package opened it. Masters the
// user runs under their own ControlPath are left alone. Callers that want
// the next command to reuse the connection simply do not call Close: the
// master goes away by itself after ControlPersist idle seconds.
//
// The master is shared by every process of this user that reaches the same
// user@host:port, so Close asks it to stop taking new sessions (-O stop)
// rather than to exit: it goes at once when idle, and only after the
// commands still running on it (another ipcluster's, another Host's)
// have finished. Close does not stop remote commands of this Host either:
// end them first.
func (h *Host) Close() error {
	if !h.mux || !h.ownPath {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.masterUp = false
	cmd := h.ssh(context.Background(), []string{"-O", "stop"}, "")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil && !strings.Contains(stderr.String(), "No such file") &&
		!strings.Contains(stderr.String(), "Connection refused") {
		return fmt.Errorf("ssh %s: closing the master connection: %s", h.name, strings.TrimSpace(stderr.String()))
	}
	return nil
}
