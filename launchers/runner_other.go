//go:build !unix

package launchers

import (
	"context"
	"errors"
)

// OSRunner is the Runner that really runs programs; on this platform it
// can only Run commands, not manage background processes.
type OSRunner struct{}

var errNoProcesses = errors.New("launchers: background processes are only supported on Unix")

// Run implements Runner.
func (OSRunner) Run(ctx context.Context, c Command) (Result, error) {
	return Result{}, errNoProcesses
}

// Start implements Runner.
func (OSRunner) Start(c Command) (Process, error) { return nil, errNoProcesses }

// Attach implements Runner.
func (OSRunner) Attach(pid int, startTime uint64, program string) (Process, error) {
	return nil, errNoProcesses
}

// PIDAlive reports whether pid names a live process.
func PIDAlive(pid int) bool { return false }
