package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"strings"

	"github.com/ipp-hpc/ipp/internal/protocol"
)

// startProfile writes a CPU profile of this process to
// $IPP_CPUPROFILE_DIR/<role>-<pid>.pprof, and an execution trace to
// $IPP_TRACE_DIR/<role>-<pid>.trace, for each variable that is set, so the
// controller and engines a cluster starts can be profiled in place
// (make bench uses it to find where time goes).
func startProfile() (stop func()) {
	var stops []func()
	for _, r := range []struct {
		env, ext, what string
		start          func(io.Writer) error
		stop           func()
	}{
		{protocol.EnvCPUProfileDir, "pprof", "cpu profile", pprof.StartCPUProfile, pprof.StopCPUProfile},
		{protocol.EnvTraceDir, "trace", "trace", trace.Start, trace.Stop},
	} {
		dir := os.Getenv(r.env)
		if dir == "" {
			continue
		}
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.%s", role(), os.Getpid(), r.ext)))
		if err == nil {
			if err = r.start(f); err != nil {
				f.Close()
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "ipcluster: %s: %v\n", r.what, err)
			continue
		}
		stopOne := r.stop
		stops = append(stops, func() { stopOne(); f.Close() })
	}
	if len(stops) == 0 {
		return nil
	}
	return func() {
		for _, s := range stops {
			s()
		}
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
