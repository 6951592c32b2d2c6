package sshx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Forward asks for one local TCP port leading to Remote, an address as the
// remote host sees it ("127.0.0.1:5555" is the remote host's own loopback).
type Forward struct {
	// Local is the local listening address; "" or a port of 0 picks a free
	// loopback port. Ports are kept across reconnections.
	Local  string
	Remote string
}

// Tunnel is a set of local port forwards kept up through reconnections.
type Tunnel struct {
	h      *Host
	locals []string
	specs  []string // "127.0.0.1:LP:RHOST:RP", one -L each
	log    *slog.Logger

	stop chan struct{}
	done chan struct{}

	mu         sync.Mutex
	proc       *exec.Cmd // without multiplexing: the ssh -N process
	procDone   chan struct{}
	reconnects int
	lastErr    error
}

// checkInterval is how often a tunnel asks whether its connection is
// still up. A dead master is noticed within this much time (a dead network
// within ssh's ServerAlive limit, 15 s).
const checkInterval = time.Second

// Forward opens the forwards and keeps them up until Close: when the
// connection drops they are re-established on the same local ports, with
// back-off, for as long as the tunnel is open. log may be nil.
func (h *Host) Forward(ctx context.Context, fwds []Forward, log *slog.Logger) (*Tunnel, error) {
	if len(fwds) == 0 {
		return nil, errors.New("ssh: no ports to forward")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Tunnel{h: h, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	locals, specs, err := pickLocals(fwds)
	if err != nil {
		return nil, err
	}
	t.locals, t.specs = locals, specs
	if err := t.establish(ctx); err != nil {
		return nil, err
	}
	go t.watch()
	return t, nil
}

// Locals are the local addresses, in the order of the forwards asked for.
func (t *Tunnel) Locals() []string { return t.locals }

// Reconnects counts how often the forwards were re-established.
func (t *Tunnel) Reconnects() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.reconnects
}

// Err is the last reconnection error while the tunnel is down, else nil.
func (t *Tunnel) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastErr
}

// Close stops watching and removes the forwards.
func (t *Tunnel) Close() error {
	select {
	case <-t.stop:
		return nil
	default:
	}
	close(t.stop)
	<-t.done
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.proc != nil {
		_ = t.proc.Process.Kill()
		<-t.procDone
		t.proc = nil
		return nil
	}
	if t.h.mux {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := t.h.ssh(ctx, append([]string{"-O", "cancel"}, t.lflags()...), "")
		_ = cmd.Run() // the master may be gone already: nothing to cancel
	}
	return nil
}

func (t *Tunnel) lflags() []string {
	var out []string
	for _, s := range t.specs {
		out = append(out, "-L", s)
	}
	return out
}

// establish sets the forwards up once: on the master when there is one
// (`ssh -O forward` returns when the ports listen), else in an `ssh -N`
// process of their own.
func (t *Tunnel) establish(ctx context.Context) error {
	if !t.h.mux {
		return t.startProcess(ctx)
	}
	t.h.mu.Lock()
	err := t.h.ensureMasterLocked(ctx)
	t.h.mu.Unlock()
	if err != nil {
		return err
	}
	cmd := t.h.ssh(ctx, append([]string{"-O", "forward"}, t.lflags()...), "")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := classify(t.h.name, "forward "+strings.Join(t.locals, ","), cmd.Run(), stderr.Bytes()); err != nil {
		return err
	}
	return nil
}

func (t *Tunnel) startProcess(ctx context.Context) error {
	opts := append([]string{"-N", "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=5",
		"-o", "ServerAliveCountMax=3"}, t.lflags()...)
	cmd := t.h.ssh(context.Background(), opts, "")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return classify(t.h.name, "forward", err, nil)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	// Ready when every local port accepts; each probe opens and closes one
	// connection to the remote end, which ZeroMQ peers shrug off.
	for _, addr := range t.locals {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				return classify(t.h.name, "forward "+strings.Join(t.locals, ","), waitErr, stderr.Bytes())
			case <-ctx.Done():
				_ = cmd.Process.Kill()
				<-exited
				return fmt.Errorf("ssh %s: forwards not up: %w", t.h.name, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	t.mu.Lock()
	t.proc, t.procDone = cmd, exited
	t.mu.Unlock()
	return nil
}

// alive reports whether the forwards' connection is still there.
func (t *Tunnel) alive() bool {
	t.mu.Lock()
	done := t.procDone
	t.mu.Unlock()
	if done != nil {
		select {
		case <-done:
			return false
		default:
			return true
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return t.h.masterAlive(ctx)
}

// watch re-establishes the forwards whenever the connection is lost.
func (t *Tunnel) watch() {
	defer close(t.done)
	tick := time.NewTicker(checkInterval)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
		if t.alive() {
			continue
		}
		t.log.Warn("ssh tunnel down; reconnecting", "host", t.h.name)
		t.mu.Lock()
		t.proc, t.procDone = nil, nil
		t.mu.Unlock()
		t.h.mu.Lock()
		t.h.masterUp = false
		t.h.mu.Unlock()
		t.h.removeStaleSocket()
		backoff := 250 * time.Millisecond
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := t.establish(ctx)
			cancel()
			t.mu.Lock()
			t.lastErr = err
			if err == nil {
				t.reconnects++
			}
			t.mu.Unlock()
			if err == nil {
				t.log.Info("ssh tunnel re-established", "host", t.h.name, "ports", t.locals)
				break
			}
			t.log.Warn("ssh tunnel reconnect failed", "host", t.h.name, "err", err, "retry_in", backoff)
			select {
			case <-t.stop:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}
}

// removeStaleSocket deletes the control socket of a master that died
// without cleaning up (SIGKILL, a reboot of /tmp's contents aside): a new
// master cannot bind over it, and ssh then silently runs without
// multiplexing, leaving a plain `ssh -N -f` behind. Only a socket that
// refuses connections — nobody listens — is removed, so a live master of
// the user's own is never touched.
func (h *Host) removeStaleSocket() {
	if !h.mux {
		return
	}
	p := h.effectiveConfig()["controlpath"]
	if p == "" || p == "none" || strings.Contains(p, "%") {
		return
	}
	fi, err := os.Lstat(p)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return
	}
	c, err := net.DialTimeout("unix", p, time.Second)
	if err == nil {
		c.Close()
		return
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		_ = os.Remove(p)
	}
}

// pickLocals resolves the local side of every forward and builds the -L
// specs. The free ports it picks stay held until all are picked: a port
// released at once can be handed out again for the next forward, and ssh
// then fails the whole request on the duplicate (seen in CI). They are
// released on return, for ssh to bind a moment later.
func pickLocals(fwds []Forward) (locals, specs []string, err error) {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for _, f := range fwds {
		local, l, err := pickLocal(f.Local)
		if err != nil {
			return nil, nil, err
		}
		if l != nil {
			held = append(held, l)
		}
		rh, rp, err := net.SplitHostPort(f.Remote)
		if err != nil {
			return nil, nil, fmt.Errorf("ssh: forward to %q: %w", f.Remote, err)
		}
		lh, lp, _ := net.SplitHostPort(local)
		locals = append(locals, local)
		specs = append(specs, bracket(lh)+":"+lp+":"+bracket(rh)+":"+rp)
	}
	return locals, specs, nil
}

// pickLocal resolves a local address, choosing a free loopback port when
// none is given and returning the listener that holds it (nil for a port
// given): the port stays free for ssh until the caller closes it.
func pickLocal(addr string) (string, net.Listener, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", nil, fmt.Errorf("ssh: local address %q: %w", addr, err)
	}
	if p != "0" {
		return addr, nil, nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(h, "0"))
	if err != nil {
		return "", nil, fmt.Errorf("ssh: no free local port on %s: %w", h, err)
	}
	return l.Addr().String(), l, nil
}

// bracket writes IPv6 addresses the way -L wants them.
func bracket(host string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]"
	}
	return host
}
