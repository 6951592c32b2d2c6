//go:build unix

package launchers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// OSRunner is the Runner that really runs programs.
type OSRunner struct{}

// Run implements Runner.
func (OSRunner) Run(ctx context.Context, c Command) (Result, error) {
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	cmd.Env = c.Env
	cmd.Dir = c.Dir
	if c.Stdin != nil {
		cmd.Stdin = bytes.NewReader(c.Stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: cmd.ProcessState.ExitCode()}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && ctx.Err() == nil {
		return res, &CommandError{Command: c.String(), ExitCode: res.ExitCode, Stderr: stderr.String()}
	}
	return res, err
}

// Start implements Runner: the process gets a new session (so its own
// process group), stdin from /dev/null, and stdout and stderr appended to
// c.OutputFile.
func (OSRunner) Start(c Command) (Process, error) {
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Env = c.Env
	cmd.Dir = c.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: !c.SameSession, Setpgid: c.SameSession}
	if c.OutputFile != "" {
		if err := os.MkdirAll(filepath.Dir(c.OutputFile), 0o700); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(c.OutputFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, err
		}
		defer f.Close() // the child has its own copy once started
		cmd.Stdout, cmd.Stderr = f, f
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &childProcess{cmd: cmd, done: make(chan struct{}), exit: -1}
	p.start, _ = procStartTime(cmd.Process.Pid)
	go p.reap()
	return p, nil
}

// Attach implements Runner.
func (OSRunner) Attach(pid int, startTime uint64, program string) (Process, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("pid %d: %w", pid, ErrNotRunning)
	}
	p := &attachedProcess{pid: pid, start: startTime}
	if !p.Alive() {
		return nil, fmt.Errorf("pid %d: %w", pid, ErrNotRunning)
	}
	if program != "" {
		args, err := procCmdline(pid)
		// A process caught inside execve has no command line yet: the
		// kernel closes the exec-status pipe, which ends cmd.Start in
		// the parent, before it lays out the new arguments. Give it a
		// moment (a zombie stays empty and is judged below).
		for deadline := time.Now().Add(time.Second); err == nil && len(args) == 0 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
			args, err = procCmdline(pid)
		}
		if err == nil && !mentions(args, filepath.Base(program)) {
			return nil, fmt.Errorf("pid %d is now %q, not %s: %w", pid, strings.Join(args, " "), program, ErrNotRunning)
		}
	}
	if p.start == 0 {
		p.start, _ = procStartTime(pid)
	}
	p.pgid, _ = syscall.Getpgid(pid)
	return p, nil
}

// Descendants implements TreeRunner with the parent links in /proc
// (nothing where there is no /proc).
func (r OSRunner) Descendants(p Process) []Process {
	return r.DescendantsOf([]Process{p})[0]
}

// DescendantsOf implements GroupTreeRunner: one scan of /proc for all.
func (r OSRunner) DescendantsOf(ps []Process) [][]Process {
	pids := make([]int, len(ps))
	for i, p := range ps {
		pids[i] = p.PID()
	}
	out := make([][]Process, len(ps))
	for i, ds := range procDescendantsOf(pids) {
		for _, pid := range ds {
			if d, err := r.Attach(pid, 0, ""); err == nil {
				out[i] = append(out[i], d)
			}
		}
	}
	return out
}

func mentions(args []string, name string) bool {
	return slices.ContainsFunc(args, func(a string) bool { return strings.Contains(a, name) })
}

// childProcess is a process this process started and reaps.
type childProcess struct {
	cmd   *exec.Cmd
	start uint64
	done  chan struct{}
	mu    sync.Mutex
	exit  int
}

func (p *childProcess) reap() {
	err := p.cmd.Wait()
	code := -1
	if st, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		switch {
		case st.Exited():
			code = st.ExitStatus()
		case st.Signaled():
			code = 128 + int(st.Signal())
		}
	} else if err == nil {
		code = 0
	}
	p.mu.Lock()
	p.exit = code
	p.mu.Unlock()
	close(p.done)
}

func (p *childProcess) PID() int          { return p.cmd.Process.Pid }
func (p *childProcess) StartTime() uint64 { return p.start }

func (p *childProcess) Signal(sig syscall.Signal) error {
	// The child leads its own group (Setsid or Setpgid); the group outlives the
	// leader while members remain, so it is signalled even after exit.
	return ignoreESRCH(syscall.Kill(-p.cmd.Process.Pid, sig))
}

// SignalPID implements PIDSignaler.
func (p *childProcess) SignalPID(sig syscall.Signal) error {
	if !p.Alive() {
		return nil
	}
	return ignoreESRCH(syscall.Kill(p.cmd.Process.Pid, sig))
}

// Alive is false once the child has exited, even before it is reaped.
func (p *childProcess) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return procLive(p.cmd.Process.Pid, p.start)
	}
}

func (p *childProcess) ExitCode() int {
	if !p.Alive() {
		// An exited child not reaped yet is reaped at once by reap.
		select {
		case <-p.done:
		case <-time.After(time.Second):
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exit
}

func (p *childProcess) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// attachedProcess is a process found by pid; someone else reaps it.
type attachedProcess struct {
	pid   int
	pgid  int
	start uint64
}

func (p *attachedProcess) PID() int          { return p.pid }
func (p *attachedProcess) StartTime() uint64 { return p.start }
func (p *attachedProcess) ExitCode() int     { return -1 }

func (p *attachedProcess) Signal(sig syscall.Signal) error {
	if p.pgid == p.pid {
		return ignoreESRCH(syscall.Kill(-p.pid, sig))
	}
	if !p.Alive() {
		return nil
	}
	return ignoreESRCH(syscall.Kill(p.pid, sig))
}

// SignalPID implements PIDSignaler.
func (p *attachedProcess) SignalPID(sig syscall.Signal) error {
	if !p.Alive() {
		return nil
	}
	return ignoreESRCH(syscall.Kill(p.pid, sig))
}

// Alive is true while the pid exists, is not a zombie, and (when known)
// still has the start time it was attached with.
func (p *attachedProcess) Alive() bool {
	if err := syscall.Kill(p.pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	return procLive(p.pid, p.start)
}

func (p *attachedProcess) Wait(ctx context.Context) error {
	return pollUntil(ctx, func() bool { return !p.Alive() })
}

func ignoreESRCH(err error) error {
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// PIDAlive reports whether pid names a live (non-zombie) process. It is
// what `ipcluster stop` uses to check that nothing was left behind.
func PIDAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	return procLive(pid, 0)
}
