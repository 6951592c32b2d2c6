// Command fakebatch is the multi-call program behind package fakebatch's
// fake qsub, bsub, condor_submit and friends: `fakebatch <command> args`,
// or invoked under a command's name.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/ipp-hpc/ipp/internal/fakebatch"
)

func main() {
	name, args := filepath.Base(os.Args[0]), os.Args[1:]
	if name == "fakebatch" {
		if len(args) == 0 {
			fmt.Fprintln(os.Stderr, "usage: fakebatch <qsub|qstat|qdel|qsig|bsub|bjobs|bkill|condor_submit|condor_q|condor_rm> [args]")
			os.Exit(2)
		}
		name, args = args[0], args[1:]
	}
	os.Exit(fakebatch.Main(name, args))
}
