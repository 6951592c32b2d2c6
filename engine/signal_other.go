//go:build !unix

package engine

import (
	"fmt"
	"syscall"
)

var signalNames = map[string]syscall.Signal{
	"SIGINT": syscall.SIGINT,
}

// checkDeliverable refuses what cannot be sent to a process here: only
// SIGINT (an interrupt) is supported off Unix.
func checkDeliverable(sig syscall.Signal) error {
	return &remoteError{name: "NotImplementedError", msg: fmt.Sprintf("signal %v is not supported on this platform", sig)}
}

func deliverSignal(syscall.Signal) error { return nil }
