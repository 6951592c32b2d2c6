package sched

import (
	"fmt"
	"testing"
	"time"
)

// load counts each engine's dispatches in acts.
func dispatched(acts []Action) map[string]int {
	n := map[string]int{}
	for _, a := range acts {
		if a.Kind == Dispatch {
			n[a.Engine]++
		}
	}
	return n
}

func TestBurstForShortTasks(t *testing.T) {
	s := newSched(t, DefaultConfig(), "e1", "e2")
	var first []Action
	for i := range 40 {
		first = append(first, s.Submit(Task{MsgID: fmt.Sprint("t", i)}, t0)...)
	}
	if got := dispatched(first); got["e1"] != 1 || got["e2"] != 1 {
		t.Fatalf("hwm 1 before any reply: %v", got)
	}
	// A quick reply (300 µs round trip) marks e1 as quick: it may now hold
	// Burst tasks, so it gets Burst more after finishing one.
	acts := s.Result(first[0].MsgID, first[0].Engine, ReplyOK, t0.Add(300*time.Microsecond))
	if got := dispatched(acts); got[first[0].Engine] != DefaultBurst {
		t.Fatalf("after a short task: %v (%v)", got, show(acts))
	}
	if st := s.Stats(); st.Engines[len(st.Engines)-1].Load != DefaultBurst {
		t.Fatalf("stats %+v", st)
	}
}

func TestNoBurstForLongTasks(t *testing.T) {
	s := newSched(t, DefaultConfig(), "e1")
	s.Submit(Task{MsgID: "a"}, t0)
	s.Submit(Task{MsgID: "b"}, t0)
	s.Submit(Task{MsgID: "c"}, t0)
	// 50 ms per task: hwm 1 holds, one task at a time.
	acts := s.Result("a", "e1", ReplyOK, t0.Add(50*time.Millisecond))
	if got := dispatched(acts); got["e1"] != 1 {
		t.Fatalf("after a long task: %v", show(acts))
	}
	// A quick engine that meets one long task drops back to hwm at once.
	s2 := newSched(t, DefaultConfig(), "e1")
	for i := range 40 {
		s2.Submit(Task{MsgID: fmt.Sprint("t", i)}, t0)
	}
	s2.Result("t0", "e1", ReplyOK, t0.Add(100*time.Microsecond))
	// t1..t16 are now on e1; t1 takes 100 ms.
	acts = s2.Result("t1", "e1", ReplyOK, t0.Add(100*time.Millisecond))
	if got := dispatched(acts); got["e1"] != 0 {
		t.Fatalf("a long task must stop the burst; dispatched %v", show(acts))
	}
}

func TestBurstOff(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Burst = 0
	s := newSched(t, cfg, "e1")
	s.Submit(Task{MsgID: "a"}, t0)
	s.Submit(Task{MsgID: "b"}, t0)
	s.Submit(Task{MsgID: "c"}, t0)
	acts := s.Result("a", "e1", ReplyOK, t0.Add(100*time.Microsecond))
	if got := dispatched(acts); got["e1"] != 1 {
		t.Fatalf("burst off: %v", show(acts))
	}
}

// TestBurstFreeInvariant drives many short tasks through two engines and
// checks after every call that the count of engines with room matches the
// engines' loads and limits, and that engines fill up to Burst.
func TestBurstFreeInvariant(t *testing.T) {
	s := newSched(t, DefaultConfig(), "e1", "e2")
	now := t0
	running := map[string][]string{}
	check := func() {
		t.Helper()
		n := 0
		for _, e := range s.lru {
			if s.fits(e) {
				n++
			}
		}
		if n != s.free {
			t.Fatalf("free = %d, but %d engines fit", s.free, n)
		}
	}
	apply := func(acts []Action) {
		for _, a := range acts {
			if a.Kind == Dispatch {
				running[a.Engine] = append(running[a.Engine], a.MsgID)
			}
		}
		check()
	}
	for i := range 2000 {
		apply(s.Submit(Task{MsgID: fmt.Sprint("t", i)}, now))
	}
	maxLoad := 0
	for done := 0; done < 2000; {
		now = now.Add(50 * time.Microsecond)
		for _, e := range []string{"e1", "e2"} {
			if len(running[e]) == 0 {
				continue
			}
			maxLoad = max(maxLoad, len(running[e]))
			id := running[e][0]
			running[e] = running[e][1:]
			apply(s.Result(id, e, ReplyOK, now))
			done++
		}
	}
	if maxLoad != DefaultBurst {
		t.Errorf("engines held at most %d tasks, want the burst of %d", maxLoad, DefaultBurst)
	}
}

// TestNoBurstForShortBacklog: with a few tasks queued, a quick engine keeps
// hwm 1, so a short task never waits behind one that may turn out slow.
func TestNoBurstForShortBacklog(t *testing.T) {
	s := newSched(t, DefaultConfig(), "e1", "e2")
	s.Submit(Task{MsgID: "warm1"}, t0)
	s.Submit(Task{MsgID: "warm2"}, t0)
	s.Result("warm1", "e1", ReplyOK, t0.Add(100*time.Microsecond))
	s.Result("warm2", "e2", ReplyOK, t0.Add(100*time.Microsecond))
	var acts []Action
	for _, id := range []string{"slow", "a", "b", "c"} {
		acts = append(acts, s.Submit(Task{MsgID: id}, t0.Add(time.Millisecond))...)
	}
	if got := dispatched(acts); got["e1"] != 1 || got["e2"] != 1 {
		t.Fatalf("short backlog must keep hwm 1: %v", show(acts))
	}
}
