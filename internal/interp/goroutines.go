package interp

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	yaegi "github.com/traefik/yaegi/interp"
)

// goHooks runs the goroutines of interpreted code. yaegi starts the
// goroutine of a go statement with nothing to recover a panic, so a panic
// there ends the process, as in compiled Go; an engine must survive it.
// The source rewrite (goEdit) hands every go statement's call to start
// instead, which runs it under a recover:
//
//   - a panic while the Exec (or Capture) that ran the go statement is
//     still going ends that run, like an interrupt, and becomes its error:
//     in compiled Go the whole program would have died with it;
//   - a panic later (a goroutine left running) is written to the
//     namespace's Stderr, which an engine publishes, and handed to
//     Options.OnGoroutinePanic; the namespace goes on.
//
// The run that counts is the one in progress when the go statement runs,
// so a go statement inside a function defined by an earlier snippet is
// charged to the snippet that calls the function.
type goHooks struct {
	n   *Namespace
	cur atomic.Pointer[runState]
	// live counts interpreted goroutines running and callbacks scheduled
	// (time.AfterFunc, context.AfterFunc) that have not finished; a
	// stopped timer's callback stays counted. While any is, Set does not
	// assign namespace variables in place: they may be reading them.
	live atomic.Int64
}

// runState is one Exec or Capture, as goroutines it starts see it.
type runState struct {
	mu     sync.Mutex
	done   bool
	err    *Error
	failed chan struct{} // closed when err is set
}

func newRunState() *runState { return &runState{failed: make(chan struct{})} }

// fail records err as the run's error, if the run is still going and has
// none yet. It reports whether the run took it.
func (st *runState) fail(err *Error) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done {
		return false
	}
	if st.err == nil {
		st.err = err
		close(st.failed)
	}
	return true
}

// finish ends the run: later panics are reported as late. It returns the
// error a goroutine recorded, if any.
func (st *runState) finish() *Error {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.done = true
	return st.err
}

// begin makes st the run that go statements are charged to.
func (g *goHooks) begin() *runState {
	st := newRunState()
	g.cur.Store(st)
	return st
}

// end closes st and returns the error one of its goroutines raised.
func (g *goHooks) end(st *runState) *Error {
	g.cur.CompareAndSwap(st, nil)
	return st.finish()
}

// start is the host side of a rewritten go statement; where is its
// position in the snippet.
func (g *goHooks) start(where string, fn func()) {
	st := g.cur.Load()
	g.live.Add(1)
	go g.guard(st, where, fn)
}

// afterFunc is the host side of a rewritten time.AfterFunc.
func (g *goHooks) afterFunc(where string, d time.Duration, fn func()) *time.Timer {
	st := g.cur.Load()
	g.live.Add(1)
	return time.AfterFunc(d, func() { g.guard(st, where, fn) })
}

// contextAfterFunc is the host side of a rewritten context.AfterFunc.
func (g *goHooks) contextAfterFunc(where string, ctx context.Context, fn func()) (stop func() bool) {
	st := g.cur.Load()
	g.live.Add(1)
	stopped := context.AfterFunc(ctx, func() { g.guard(st, where, fn) })
	return func() bool {
		if stopped() {
			g.live.Add(-1) // it will never run
			return true
		}
		return false
	}
}

// quiet reports whether no interpreted goroutine or callback is running
// or pending.
func (g *goHooks) quiet() bool { return g.live.Load() == 0 }

// guard calls fn and deals with its panic; the caller counted it in live.
func (g *goHooks) guard(st *runState, where string, fn func()) {
	defer g.live.Add(-1)
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		e := g.n.goroutineError(r, where)
		if st != nil && st.fail(e) {
			return
		}
		g.n.latePanic(e)
	}()
	fn()
}

// goroutineError builds the error of a goroutine's panic: the panic's, as
// for the snippet itself, saying where the goroutine was started.
func (n *Namespace) goroutineError(r any, where string) *Error {
	e := n.panicError(yaegi.Panic{Value: r}, n.traces.take(), position{})
	e.Message += " (in a goroutine started at " + where + ")"
	e.Traceback[0] = "panic: " + e.Message
	e.Traceback = append(e.Traceback, "  goroutine started at "+where)
	if cell, line, ok := splitWhere(where); ok {
		if src, ok := n.sourceLine(cell, line); ok {
			e.Traceback = append(e.Traceback, "      "+strings.TrimSpace(src))
		}
	}
	return e
}

// splitWhere reads "cellN:line:col".
func splitWhere(where string) (cell string, line int, ok bool) {
	m := strings.Split(where, ":")
	if len(m) != 3 {
		return "", 0, false
	}
	line, err := strconv.Atoi(m[1])
	return m[0], line, err == nil
}

// latePanic reports the panic of a goroutine whose run is over: on the
// namespace's stderr, where the engine publishes it, and to the hook.
func (n *Namespace) latePanic(e *Error) {
	_, _ = n.errs.writer().Write([]byte(strings.Join(e.Traceback, "\n") + "\n"))
	if h := n.opts.OnGoroutinePanic; h != nil {
		h(e)
	}
}
