//go:build !unix

package cli

import "os"

// relayedSignals is empty where SIGUSR1 and SIGUSR2 do not exist: such a
// platform only runs client commands, and a cluster started on it stops on
// an interrupt like any other.
var relayedSignals []os.Signal
