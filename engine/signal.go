package engine

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	json "github.com/goccy/go-json"

	"github.com/ipp-hpc/ipp/mpi"
)

// signalDelay lets the signal_reply leave before a signal that may end or
// stop the process is delivered; otherwise the client would wait forever.
const signalDelay = 100 * time.Millisecond

// parseSignal reads signal_request's "sig": a number, or a name with or
// without the SIG prefix ("SIGINT", "INT"), as the nanny accepts.
func parseSignal(raw json.RawMessage) (syscall.Signal, error) {
	var n int
	if err := json.Unmarshal(raw, &n); err == nil {
		if n <= 0 {
			return 0, fmt.Errorf("invalid signal number %d", n)
		}
		return syscall.Signal(n), nil
	}
	var name string
	if err := json.Unmarshal(raw, &name); err != nil {
		return 0, fmt.Errorf("sig must be a signal number or name, got %s", raw)
	}
	if n, err := strconv.Atoi(name); err == nil && n > 0 {
		return syscall.Signal(n), nil
	}
	upper := strings.ToUpper(name)
	if !strings.HasPrefix(upper, "SIG") {
		upper = "SIG" + upper
	}
	if s, ok := signalNames[upper]; ok {
		return s, nil
	}
	return 0, fmt.Errorf("unknown signal %q", name)
}

// signal implements signal_request. SIGINT interrupts the running request
// (the Go equivalent of KeyboardInterrupt in a Python engine) and is not
// delivered to the process, whose default action would kill it. Any other
// signal is delivered to the engine process, as ipyparallel's nanny does,
// after the reply has been queued.
func (e *engine) signal(sig syscall.Signal, reply func()) error {
	if sig == syscall.SIGINT {
		if e.cfg.MPI {
			// A snippet waiting in an MPI call is in compiled code that
			// the interpreter cannot stop; package mpi polls its
			// requests and returns when told to.
			e.mpiInterrupted.Store(true)
			mpi.Interrupt()
		}
		if id := e.interrupt(); id != "" {
			e.log.Info("interrupting the running request", "msg_id", id)
		}
		reply()
		return nil
	}
	if err := checkDeliverable(sig); err != nil {
		return err
	}
	reply()
	e.log.Info("delivering signal to the engine process", "signal", sig)
	time.AfterFunc(signalDelay, func() {
		if err := deliverSignal(sig); err != nil {
			e.log.Error("cannot deliver signal", "signal", sig, "err", err)
		}
	})
	return nil
}
