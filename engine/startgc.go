package engine

import (
	"runtime/debug"
	"sync"
)

// startupMemoryLimit bounds the Go runtime's memory while the collector
// is paused for start-up (pauseGC): start-up needs about 6 MB, so the
// limit is only a backstop, for a request that arrives before the pause
// ends.
const startupMemoryLimit = 128 << 20

// gcPause is the collector paused while an engine process starts.
//
// Why (issue 10, measured 2026-12-07 on 32 local engines): the interpreter's
// set-up allocates a few MB, enough to start one collection at the 4 MB
// default goal, and that one collection cost ~10 ms of CPU (dedicated and
// fractional mark workers woken on both Ps for a 3 MB heap): about a sixth
// of an engine's start-up CPU, paid again by every one of hundreds of
// engines starting at once. Nothing start-up allocates is worth collecting
// early: the trim after registration (trimResident) collects once anyway.
// Only for an engine that owns its process (Config.TrimMemory): a program
// that embeds Run keeps its own collector settings.
type gcPause struct {
	once    sync.Once
	percent int
	limit   int64
}

// pauseGC turns the collector off, keeping a memory limit as a backstop
// (the smaller of startupMemoryLimit and the limit already set), and
// returns what resume restores.
func pauseGC() *gcPause {
	g := &gcPause{limit: debug.SetMemoryLimit(-1)}
	debug.SetMemoryLimit(min(g.limit, startupMemoryLimit))
	g.percent = debug.SetGCPercent(-1)
	return g
}

// resume restores the collector settings pauseGC found (GOGC and
// GOMEMLIMIT included). It is called when start-up is over (registration
// complete, before the trim), and earlier when user code may allocate
// without bound: before Config.Setup, and when a shell request arrives.
// Only the first call does anything. A nil g does nothing.
func (g *gcPause) resume() {
	if g == nil {
		return
	}
	g.once.Do(func() {
		debug.SetGCPercent(g.percent)
		debug.SetMemoryLimit(g.limit)
	})
}
