//go:build unix

package engine

import (
	"os"
	"syscall"
)

var signalNames = map[string]syscall.Signal{
	"SIGHUP":  syscall.SIGHUP,
	"SIGINT":  syscall.SIGINT,
	"SIGQUIT": syscall.SIGQUIT,
	"SIGABRT": syscall.SIGABRT,
	"SIGKILL": syscall.SIGKILL,
	"SIGUSR1": syscall.SIGUSR1,
	"SIGUSR2": syscall.SIGUSR2,
	"SIGALRM": syscall.SIGALRM,
	"SIGTERM": syscall.SIGTERM,
	"SIGCONT": syscall.SIGCONT,
	"SIGSTOP": syscall.SIGSTOP,
	"SIGTSTP": syscall.SIGTSTP,
}

func checkDeliverable(syscall.Signal) error { return nil }

func deliverSignal(sig syscall.Signal) error {
	return syscall.Kill(os.Getpid(), sig)
}
