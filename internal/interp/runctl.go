package interp

import (
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	yaegi "github.com/traefik/yaegi/interp"
)

// runControl reaches the unexported fields yaegi uses to cancel a run.
//
// Why not ExecuteWithContext: on cancellation it returns at once and leaves
// the run going in a goroutine nobody can wait for. Top-level snippet code
// runs on yaegi's global frame, and the next Execute resets that frame's run
// id, so an abandoned run that was blocked in a compiled call (time.Sleep,
// an MPI receive) wakes up and carries on running *concurrently with the
// next snippet* (observed with yaegi v0.16.1: a cancelled loop kept
// counting). Running Execute in our own goroutine lets Exec know when a
// cancelled run has really stopped and keep the next one waiting; stopping
// it needs the same two steps as yaegi's own stop(): bump the run id (every
// frame checks it before each step) and close the done channel (which
// unblocks channel operations).
//
// newRunControl checks the field names and types, so a yaegi upgrade that
// changes them fails New (and the tests) instead of corrupting memory.
type runControl struct {
	id         *uint64
	done       *chan struct{}
	cancelChan *bool
	mu         *sync.RWMutex
}

// newRunControl locates the cancellation fields of i.
func newRunControl(i *yaegi.Interpreter) (*runControl, error) {
	v := reflect.ValueOf(i).Elem()
	field := func(name string, want reflect.Type) (unsafe.Pointer, error) {
		f := v.FieldByName(name)
		if !f.IsValid() || f.Type() != want {
			return nil, fmt.Errorf("interp: yaegi's Interpreter.%s is missing or not a %v; "+
				"cancellation (runctl.go) must be revisited for this yaegi version", name, want)
		}
		return unsafe.Pointer(f.UnsafeAddr()), nil
	}
	var rc runControl
	p, err := field("id", reflect.TypeFor[uint64]())
	if err != nil {
		return nil, err
	}
	rc.id = (*uint64)(p)
	if p, err = field("done", reflect.TypeFor[chan struct{}]()); err != nil {
		return nil, err
	}
	rc.done = (*chan struct{})(p)
	if p, err = field("cancelChan", reflect.TypeFor[bool]()); err != nil {
		return nil, err
	}
	rc.cancelChan = (*bool)(p)
	if p, err = field("mutex", reflect.TypeFor[sync.RWMutex]()); err != nil {
		return nil, err
	}
	rc.mu = (*sync.RWMutex)(p)
	return &rc, nil
}

// arm prepares a run, as ExecuteWithContext does before starting one: a
// fresh done channel, which every frame of the run captures, and cancellable
// channel operations. It returns the channel to hand to stop.
func (rc *runControl) arm() chan struct{} {
	ch := make(chan struct{})
	rc.mu.Lock()
	*rc.done = ch
	*rc.cancelChan = true
	rc.mu.Unlock()
	return ch
}

// stop makes the armed run return at its next interpreted step. fin is
// closed when the run's Execute returns; the returned channel is closed
// after that, once stop has stopped touching the run id, so that nothing
// of this run can disturb the next one.
//
// One bump of the run id is not enough: Execute copies the interpreter's
// id into the global frame when it starts, so a bump that lands before
// that copy (a context that ends while the unit compiles, or just as it
// starts) is absorbed, and the run then never stops (a `for {}` kept the
// namespace busy for good). Bumping again until the run has returned
// catches a run that started late; the bumps back off, since a run
// blocked in compiled code may take long to return.
func (rc *runControl) stop(ch chan struct{}, fin <-chan struct{}) <-chan struct{} {
	close(ch)
	// The first bump before returning: the caller reports the run
	// interrupted at once, and a blocking call the run sits in may return
	// right after; a bump left to the goroutine below could come too late
	// to stop the run's next statement (TestInterruptedRunBlockedInCompiledCode
	// failed so, once, in CI).
	atomic.AddUint64(rc.id, 1)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		delay := time.Millisecond
		t := time.NewTimer(delay)
		defer t.Stop()
		for {
			select {
			case <-fin:
				return
			case <-t.C:
			}
			atomic.AddUint64(rc.id, 1)
			delay = min(2*delay, maxStopDelay)
			t.Reset(delay)
		}
	}()
	return stopped
}

// maxStopDelay bounds the interval between two bumps of the run id, and
// so how long a late-starting interrupted run goes on.
const maxStopDelay = 50 * time.Millisecond
