// Command ipcluster starts, stops and uses IPython Parallel clusters, and
// is also the controller (ipcluster controller) and the engines (ipcluster
// engine) it starts. See `ipcluster --help`.
package main

import (
	"os"

	"github.com/ipp-hpc/ipp/internal/cli"
)

func main() { os.Exit(cli.Main()) }
