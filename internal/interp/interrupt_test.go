package interp

import (
	"context"
	"errors"
	"testing"
	"time"
)

// busyLoops are interpreted loops that never call compiled code, the kind
// an interrupt must stop within the interpreter.
var busyLoops = []struct{ name, code string }{
	{"empty", "for {}"},
	{"counter", "for i := 0; ; i++ {}"},
	{"nested", "for { for j := 0; j < 1000; j++ { for k := 0; k < 10; k++ {} } }"},
	{"calls", "for { spinWork(3) }"},
	{"in a function", "func spinForever() { for {} }\nspinForever()"},
	{"after a statement", "started := 1\nfor started > 0 {}"},
}

// TestInterruptStopsBusyLoops interrupts every kind of busy loop, at
// various moments (before the unit starts, as it starts, well into it), and
// checks each time that the next snippet runs at once instead of waiting
// for, or being refused because of, a loop that went on.
func TestInterruptStopsBusyLoops(t *testing.T) {
	n, _, _ := newNS(t)
	run(t, n, "func spinWork(k int) int {\n\ts := 0\n\tfor i := 0; i < k; i++ {\n\t\ts += i\n\t}\n\treturn s\n}")
	const rounds = 12
	for _, loop := range busyLoops {
		for r := 0; r < rounds; r++ {
			// Deadlines from 0 to a few ms: the early ones end while the
			// snippet is parsed, compiled or just starting, which is where
			// a stop used to be lost.
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(r)*300*time.Microsecond)
			_, err := n.Exec(ctx, loop.code)
			cancel()
			var e *Error
			if !errors.As(err, &e) || e.Name != NameInterrupted {
				t.Fatalf("%s, round %d: Exec = %v, want %s", loop.name, r, err, NameInterrupted)
			}
			checkNextRuns(t, n, loop.name, r)
		}
		// And an explicit interrupt of a loop known to be running.
		ctx, cancel := context.WithCancel(context.Background())
		res := startRun(t, n, ctx, "sig.Started()\n"+loop.code)
		cancel()
		if err := <-res; !errors.Is(err, context.Canceled) {
			t.Fatalf("%s, cancelled while running: %v", loop.name, err)
		}
		checkNextRuns(t, n, loop.name, rounds)
	}
}

// checkNextRuns runs a trivial snippet after an interrupt. The generous
// deadline only bounds a failure: a loop left running would keep the
// namespace busy for good.
func checkNextRuns(t *testing.T, n *Namespace, loop string, round int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := n.Exec(ctx, "40 + 2")
	if err != nil || r.Value != 42 {
		t.Fatalf("%s, round %d: the snippet after the interrupt got %v, %v: the loop went on", loop, round, r.Value, err)
	}
}
