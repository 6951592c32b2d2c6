//go:build unix

package cli

import (
	"os"
	"syscall"
)

// relayedSignals are the signals a foreground `ipcluster start` passes on
// to its engines instead of stopping (ipyparallel's SIGUSR1/SIGUSR2
// convention). They live in a build-tagged file because Windows has
// neither, and a client binary must still build there.
var relayedSignals = []os.Signal{syscall.SIGUSR1, syscall.SIGUSR2}
