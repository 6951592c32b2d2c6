package sshx

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Kind says what went wrong with a remote command.
type Kind int

// The kinds of failure an *Error reports. Only the first four are ssh's
// own; the rest come from the remote command.
const (
	// UnknownHost: the host name does not resolve.
	UnknownHost Kind = iota + 1
	// Unreachable: nothing answers (refused, timed out, no route, closed).
	Unreachable
	// AuthFailed: the server refused every key or password offered.
	AuthFailed
	// HostKey: the host key is unknown (BatchMode) or has changed.
	HostKey
	// CommandNotFound: the remote shell could not find the command (exit 127).
	CommandNotFound
	// CommandFailed: the remote command ran and exited non-zero.
	CommandFailed
)

// Error is a failed ssh invocation, naming the host and the command.
type Error struct {
	Host     string // as the user named it
	Command  string // the remote command, or an ssh operation such as "connect"
	Kind     Kind
	ExitCode int    // -1 when ssh did not exit normally
	Stderr   string // the last lines ssh and the command wrote on stderr
}

// Error renders a message that says what to check, not only what happened.
func (e *Error) Error() string {
	tail := strings.TrimSpace(e.Stderr)
	if i := strings.LastIndexByte(tail, '\n'); i >= 0 && e.Kind <= HostKey {
		tail = strings.TrimSpace(tail[i+1:])
	}
	// A connection failure also names the command it kept from running:
	// a launcher's user then knows which step failed.
	who := e.Host
	if e.Command != "" && e.Command != "connect" {
		who += " `" + e.Command + "`"
	}
	switch e.Kind {
	case UnknownHost:
		return fmt.Sprintf("ssh %s: unknown host (%s); check the name or add a Host entry to ~/.ssh/config", who, tail)
	case Unreachable:
		return fmt.Sprintf("ssh %s: cannot connect (%s); check the host, port, network or VPN", who, tail)
	case AuthFailed:
		return fmt.Sprintf("ssh %s: the server refused the login (%s); check that `ssh %s true` works without a prompt (keys, agent, User in ~/.ssh/config)", who, tail, e.Host)
	case HostKey:
		return fmt.Sprintf("ssh %s: host key check failed (%s); run `ssh %s true` once to check and accept the host key", who, tail, e.Host)
	case CommandNotFound:
		return fmt.Sprintf("ssh %s: command not found on %s: %s (exit 127); install it there or give its full path", e.Host, e.Host, firstWord(e.Command))
	}
	msg := fmt.Sprintf("ssh %s: `%s` failed", e.Host, e.Command)
	if e.ExitCode >= 0 {
		msg += fmt.Sprintf(" (exit %d)", e.ExitCode)
	}
	if tail != "" {
		msg += ": " + tail
	}
	return msg
}

// Is lets errors.Is(err, &Error{Kind: k}) match on the kind alone.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind && t.Host == "" && t.Command == ""
}

// IsConnectError reports whether err is a failure to reach or log in to
// the host, as opposed to a remote command that failed.
func IsConnectError(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind <= HostKey
}

// classify turns a finished ssh process into nil or an *Error.
func classify(host, command string, runErr error, stderr []byte) error {
	if runErr == nil {
		return nil
	}
	e := &Error{Host: host, Command: command, ExitCode: -1, Stderr: lastLines(string(stderr), 6)}
	var xe *exec.ExitError
	if errors.As(runErr, &xe) {
		e.ExitCode = xe.ExitCode()
	} else {
		// ssh itself could not be started, or ctx ended.
		if e.Stderr == "" {
			e.Stderr = runErr.Error()
		}
		e.Kind = Unreachable
		if errors.Is(runErr, exec.ErrNotFound) {
			e.Kind = CommandFailed
			e.Command = "ssh"
			e.Stderr = "the ssh program is not installed (or IPP_SSH names a missing one): " + runErr.Error()
		}
		return e
	}
	s := string(stderr)
	switch {
	case e.ExitCode == 255 && containsAny(s, "Could not resolve hostname", "Name or service not known", "nodename nor servname"):
		e.Kind = UnknownHost
	case e.ExitCode == 255 && containsAny(s, "Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED", "No ED25519 host key is known", "host key is known"):
		e.Kind = HostKey
	case e.ExitCode == 255 && containsAny(s, "Permission denied", "Too many authentication failures", "no mutual signature"):
		e.Kind = AuthFailed
	case e.ExitCode == 255 && containsAny(s, "Connection refused", "Connection timed out", "Operation timed out", "No route to host",
		"Network is unreachable", "connect to host", "Connection closed by", "Connection reset", "kex_exchange_identification",
		"Could not request local forwarding", "mux_client", "Control socket"):
		e.Kind = Unreachable
	case e.ExitCode == 127:
		e.Kind = CommandNotFound
	default:
		e.Kind = CommandFailed
	}
	return e
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func firstWord(cmd string) string {
	f := strings.Fields(cmd)
	// Skip the environment assignments and `exec` our own commands start with.
	for len(f) > 1 && (strings.Contains(f[0], "=") || f[0] == "exec" || f[0] == "env") {
		f = f[1:]
	}
	if len(f) == 0 {
		return cmd
	}
	return f[0]
}
