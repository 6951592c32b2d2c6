package launchers

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"time"
)

// Command describes one run of an external program.
type Command struct {
	// Path is the program; a name without a slash is looked up in PATH.
	Path string
	// Args are the arguments after the program name.
	Args []string
	// Env is the complete environment (KEY=VALUE); nil inherits ours.
	Env []string
	// Dir is the working directory ("" = ours).
	Dir string
	// Stdin is fed to the program by Run; Start always uses /dev/null.
	Stdin []byte
	// OutputFile receives stdout and stderr of a started process,
	// appended; "" discards them.
	OutputFile string
	// SameSession makes Start put the process in a new process group of
	// our session instead of a new session. Where the kernel groups CPU
	// time per session (autogroup), every session gets an equal share:
	// 1,000 engines in sessions of their own left the controller a
	// thousandth of the CPU while they started, and registrations waited
	// over a minute. Local engines share the caller's session; the
	// controller keeps one of its own.
	SameSession bool
}

// String is the command line, for logs.
func (c Command) String() string {
	return strings.Join(append([]string{c.Path}, c.Args...), " ")
}

// Result is what Run returns for a program that ran to the end.
type Result struct {
	Stdout, Stderr []byte
	ExitCode       int
}

// CommandError is returned by Run when the program exits non-zero.
type CommandError struct {
	Command  string
	ExitCode int
	Stderr   string
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("%s: exit status %d", e.Command, e.ExitCode)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

// Runner runs external programs. Launchers use nothing else to create or
// find processes, so tests can substitute it.
type Runner interface {
	// Run runs c to completion and returns its output. A non-zero exit is
	// a *CommandError (with the Result still filled in).
	Run(ctx context.Context, c Command) (Result, error)
	// Start starts c in the background in a new session (a new process
	// group of our session with c.SameSession), so the process leads its
	// own process group.
	Start(c Command) (Process, error)
	// Attach finds a process started earlier, possibly by another
	// process. It returns ErrNotRunning unless pid is alive and is still
	// the same process: the same start time when startTime is non-zero,
	// and a command line that mentions program's base name when program
	// is not empty.
	Attach(pid int, startTime uint64, program string) (Process, error)
}

// Process is a handle on one started or reattached process.
type Process interface {
	// PID is the process id.
	PID() int
	// StartTime identifies the process together with its pid (the
	// kernel's start time in clock ticks since boot; 0 if unknown).
	StartTime() uint64
	// Signal delivers sig to the process group the process leads (or to
	// the process alone when it leads none). Nothing left to signal is
	// not an error.
	Signal(sig syscall.Signal) error
	// Alive reports whether the process is still running.
	Alive() bool
	// ExitCode is the exit code once the process has ended, 128+signal if
	// it was killed, -1 while running or when unknown (reattached).
	ExitCode() int
	// Wait blocks until the process has ended or ctx is done.
	Wait(ctx context.Context) error
}

// pollUntil calls cond with a growing interval until it is true or ctx
// is done.
func pollUntil(ctx context.Context, cond func() bool) error {
	return pollGrowing(ctx, 5*time.Millisecond, 200*time.Millisecond, cond)
}

// pollGrowing calls cond every interval, doubling it up to most, until
// cond is true or ctx is done.
func pollGrowing(ctx context.Context, interval, most time.Duration, cond func() bool) error {
	for !cond() {
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		interval = min(2*interval, most)
	}
	return nil
}

// TreeRunner is a Runner that can find the processes another process
// started, wherever their process groups are. Launchers whose programs
// scatter children over several groups (mpiexec's ranks) use it to stop
// them all; a Runner without it leaves them to the process group.
type TreeRunner interface {
	// Descendants lists the live descendants of p (children,
	// grandchildren, ...), each attached by pid and start time.
	Descendants(p Process) []Process
}

// GroupTreeRunner is a TreeRunner that finds the descendants of many
// processes from one look at the process table. Stopping a thousand
// engines asks for all of them at once; asked one by one, each wanting a
// scan of /proc newer than its call, the stop's goroutines queued for one
// scan after another (an execution trace of `ipcluster stop`).
type GroupTreeRunner interface {
	TreeRunner
	// DescendantsOf is Descendants for each of ps, in order.
	DescendantsOf(ps []Process) [][]Process
}

// PIDSignaler is a Process that can be signalled alone, without the
// rest of its process group.
type PIDSignaler interface {
	// SignalPID delivers sig to the process only. A process that is gone
	// is not an error.
	SignalPID(sig syscall.Signal) error
}
