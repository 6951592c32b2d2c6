// Package startgc keeps the garbage collector off while an engine process
// starts, and gives it back once the engine is registered.
//
// An engine allocates a few megabytes while its packages initialise and its
// interpreter is set up, and almost all of it stays live until the
// registration is complete; a collection during that time marks it all and
// frees little. On the 2-vCPU reference machine that collection was ~5 ms
// of the ~25 ms of CPU an engine spends starting (GODEBUG=gctrace=1), and
// with 1,000 engines starting at once every millisecond is a second of the
// whole start. The engine collects once anyway when it is registered (its
// idle trim), so turning the collector off until then loses nothing.
//
// The switch happens in this package's init, because most of the start-up
// allocation happens in other packages' init functions (yaegi's standard
// library tables above all). Go initialises packages in import-path order
// among those whose imports are ready, and this package imports only the
// runtime's own, so its init runs before theirs. It acts only when the
// process plays the engine role (the role is the first argument, as every
// launcher starts it) and only when the user has not set GOGC; a memory
// limit bounds the heap in the meantime, should start-up ever allocate
// far more than it does today.
package startgc

import (
	"math"
	"os"
	"runtime/debug"
	"sync/atomic"
)

// startLimit is the heap size at which the collector runs anyway while it
// is off: a guard several times what an engine allocates while starting.
const startLimit = 64 << 20

var (
	// off and limited say what init changed; they are written only there.
	off, limited bool
	// restored is set by the first Restore.
	restored atomic.Bool
)

func init() {
	off, limited = decide(os.Args, os.LookupEnv)
	if off {
		debug.SetGCPercent(-1)
	}
	if limited {
		debug.SetMemoryLimit(startLimit)
	}
}

// decide says whether a process started with args and the environment
// lookup env turns the collector off, and whether it also sets the limit.
func decide(args []string, env func(string) (string, bool)) (gcOff, limit bool) {
	if len(args) < 2 || args[1] != "engine" {
		return false, false
	}
	if _, set := env("GOGC"); set {
		return false, false
	}
	_, userLimit := env("GOMEMLIMIT")
	return true, !userLimit
}

// Off reports whether the collector is still off for start-up.
func Off() bool { return off && !restored.Load() }

// Restore turns the collector back on with Go's defaults (GOGC=100, no
// memory limit) if init turned it off. Calls after the first do nothing.
func Restore() {
	if !off || !restored.CompareAndSwap(false, true) {
		return
	}
	debug.SetGCPercent(100)
	if limited {
		debug.SetMemoryLimit(math.MaxInt64)
	}
}
