package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"

	"github.com/ipp-hpc/ipp/internal/protocol"
)

// startProfile writes a CPU profile of this process to
// $IPP_CPUPROFILE_DIR/<role>-<pid>.pprof when that variable is set, so the
// controller and engines a cluster starts can be profiled in place
// (make bench uses it to find where time goes).
func startProfile() (stop func()) {
	dir := os.Getenv(protocol.EnvCPUProfileDir)
	if dir == "" {
		return nil
	}
	role := "ipcluster"
	if len(os.Args) > 1 && !strings.HasPrefix(os.Args[1], "-") {
		role = os.Args[1]
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", role, os.Getpid())))
	if err != nil {
		fmt.Fprintln(os.Stderr, "ipcluster: cpu profile:", err)
		return nil
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "ipcluster: cpu profile:", err)
		f.Close()
		return nil
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
