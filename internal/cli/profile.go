package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"strings"

	"github.com/ipp-hpc/ipp/internal/protocol"
)

// startProfile writes a CPU profile of this process to
// $IPP_CPUPROFILE_DIR/<role>-<pid>.pprof when that variable is set, so the
// controller and engines a cluster starts can be profiled in place
// (make bench uses it to find where time goes).
func startProfile() (stop func()) {
	stopTrace := startTrace()
	dir := os.Getenv(protocol.EnvCPUProfileDir)
	if dir == "" {
		return stopTrace
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", role(), os.Getpid())))
	if err != nil {
		fmt.Fprintln(os.Stderr, "ipcluster: cpu profile:", err)
		return stopTrace
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "ipcluster: cpu profile:", err)
		f.Close()
		return stopTrace
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		if stopTrace != nil {
			stopTrace()
		}
	}
}

// startTrace writes an execution trace of this process to
// $IPP_TRACE_DIR/<role>-<pid>.trace when that variable is set.
func startTrace() (stop func()) {
	dir := os.Getenv(protocol.EnvTraceDir)
	if dir == "" {
		return nil
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.trace", role(), os.Getpid())))
	if err != nil {
		fmt.Fprintln(os.Stderr, "ipcluster: trace:", err)
		return nil
	}
	if err := trace.Start(f); err != nil {
		fmt.Fprintln(os.Stderr, "ipcluster: trace:", err)
		f.Close()
		return nil
	}
	return func() {
		trace.Stop()
		f.Close()
	}
}

// role is the ipcluster command this process runs (controller, engine,
// ...), which names its profile and trace files.
func role() string {
	if len(os.Args) > 1 && !strings.HasPrefix(os.Args[1], "-") {
		return os.Args[1]
	}
	return "ipcluster"
}
