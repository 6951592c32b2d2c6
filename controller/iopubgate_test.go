package controller

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/testutil"
)

// gateRig is an iopubGate on a hand-moved clock with its output recorded.
type gateRig struct {
	g   *iopubGate
	now time.Time
	mu  sync.Mutex
	out []string
}

func newGateRig() *gateRig {
	r := &gateRig{now: time.Unix(1000, 0)}
	r.g = newIOPubGate(true, func(f [][]byte) {
		r.mu.Lock()
		r.out = append(r.out, string(f[0]))
		r.mu.Unlock()
	})
	r.g.now = func() time.Time { return r.now }
	return r
}

func (r *gateRig) published() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.out)
}

func (r *gateRig) pub(session, what string) { r.g.publish(session, [][]byte{[]byte(what)}) }

func TestIOPubGateHoldsUntilSubscribed(t *testing.T) {
	r := newGateRig()
	defer r.g.stop()
	r.pub("other", "o1")
	r.g.connected("py")
	r.pub("py", "busy")
	r.pub("other", "o2")
	r.pub("py", "idle")
	if got := r.published(); !slices.Equal(got, []string{"o1", "o2"}) {
		t.Fatalf("before the subscription: published %q, want only the other client's", got)
	}
	r.g.subscribed()
	r.pub("py", "next")
	if got := r.published(); !slices.Equal(got, []string{"o1", "o2", "busy", "idle", "next"}) {
		t.Fatalf("after the subscription: published %q, want the held output in order, then the rest", got)
	}
}

func TestIOPubGateSubscriptionBeforeRequest(t *testing.T) {
	r := newGateRig()
	defer r.g.stop()
	r.g.subscribed() // our Go client subscribes before it asks
	r.now = r.now.Add(time.Second)
	r.g.connected("go")
	r.pub("go", "busy")
	if got := r.published(); !slices.Equal(got, []string{"busy"}) {
		t.Fatalf("a client whose subscription came first was held: %q", got)
	}
	// A credit does not live for ever: a later client is held again.
	r.g.subscribed()
	r.now = r.now.Add(iopubGateCreditLife + time.Second)
	r.g.connected("late")
	r.pub("late", "x")
	if got := r.published(); len(got) != 1 {
		t.Fatalf("an old subscription released a new client: %q", got)
	}
}

func TestIOPubGateAsksAgainNotHeld(t *testing.T) {
	r := newGateRig()
	defer r.g.stop()
	r.g.connected("go")
	r.g.subscribed()
	r.g.connected("go") // WaitForEngines asks connection_request again
	r.pub("go", "a")
	if got := r.published(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("a client asking again was held: %q", got)
	}
}

// TestIOPubGateCountsSubscriptions: subscriptions do not say whose they
// are, so clients pending together are released together, once each could
// have subscribed; a client that never subscribes holds the others only
// until it expires.
func TestIOPubGateCountsSubscriptions(t *testing.T) {
	r := newGateRig()
	defer r.g.stop()
	r.g.connected("a")
	r.g.connected("b")
	r.pub("a", "a1")
	r.pub("b", "b1")
	r.g.subscribed() // b's, perhaps: a must not be released on it
	if got := r.published(); len(got) != 0 {
		t.Fatalf("one subscription for two clients released %q", got)
	}
	r.g.subscribed()
	if got := r.published(); !slices.Equal(got, []string{"a1", "b1"}) {
		t.Fatalf("after two subscriptions: published %q", got)
	}

	r.g.connected("asks-only")
	r.now = r.now.Add(time.Second)
	r.g.connected("py")
	r.pub("py", "p1")
	r.g.subscribed()
	if got := r.published(); len(got) != 2 {
		t.Fatalf("py was released while asks-only might be the one subscribed: %q", got)
	}
	r.now = r.now.Add(r.g.wait - time.Second) // asks-only's deadline, not py's
	r.g.mu.Lock()
	r.g.expire()
	r.g.mu.Unlock()
	if got := r.published(); !slices.Equal(got, []string{"a1", "b1", "p1"}) {
		t.Fatalf("after asks-only expired: published %q, want py's output", got)
	}
	if r.g.matched != 3 || r.g.expired != 1 {
		t.Fatalf("released %d matched, %d expired; want 3 and 1", r.g.matched, r.g.expired)
	}
}

// TestIOPubGateNeverSubscribed: a client that never subscribes cannot
// hold its output back from others for longer than the gate's wait, on
// the real timer.
func TestIOPubGateNeverSubscribed(t *testing.T) {
	r := newGateRig()
	r.g.now = time.Now
	r.g.wait = 50 * time.Millisecond
	defer r.g.stop()
	r.g.connected("mute")
	r.pub("mute", "m1")
	testutil.Eventually(t, 10*time.Second, func() bool { return len(r.published()) > 0 },
		"output of a client that never subscribed was held for 10 s")
	r.pub("mute", "m2")
	if got := r.published(); !slices.Equal(got, []string{"m1", "m2"}) {
		t.Fatalf("published %q", got)
	}
}

func TestIOPubGateBounds(t *testing.T) {
	r := newGateRig()
	defer r.g.stop()
	r.g.connected("big")
	for i := 0; i < iopubGateMaxHeldMsgs+1; i++ {
		r.pub("big", fmt.Sprint(i))
	}
	if got := r.published(); len(got) != iopubGateMaxHeldMsgs+1 || got[0] != "0" || got[len(got)-1] != fmt.Sprint(iopubGateMaxHeldMsgs) {
		t.Fatalf("past the message bound: published %d messages, want all %d in order", len(got), iopubGateMaxHeldMsgs+1)
	}
	for i := 0; i < iopubGateMaxPending+10; i++ {
		r.g.connected(fmt.Sprint("c", i))
	}
	if n := len(r.g.pending); n != iopubGateMaxPending {
		t.Fatalf("%d clients pending, want at most %d", n, iopubGateMaxPending)
	}
	r.g.stop()
	if n := len(r.g.pending); n != 0 {
		t.Fatalf("stop left %d clients pending", n)
	}
}

func TestIOPubGateDisabled(t *testing.T) {
	var out []string
	g := newIOPubGate(false, func(f [][]byte) { out = append(out, string(f[0])) })
	g.connected("py")
	g.publish("py", [][]byte{[]byte("x")})
	if !slices.Equal(out, []string{"x"}) {
		t.Fatalf("a disabled gate held output: %q", out)
	}
}
