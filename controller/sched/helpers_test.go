package sched

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// t0 is an arbitrary fixed instant; tests move time by adding to it.
var t0 = time.Date(2026, 11, 26, 2, 43, 0, 0, time.UTC)

// newSched returns a scheduler with a seeded generator and the given
// engines registered so that the LRU order is the argument order (AddEngine
// puts each newcomer first, hence the reverse loop).
func newSched(t testing.TB, cfg Config, engines ...string) *Scheduler {
	t.Helper()
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(1, 2))
	}
	s := New(cfg)
	for _, e := range slices.Backward(engines) {
		if got := s.AddEngine(e, t0); len(got) != 0 {
			t.Fatalf("AddEngine(%s) on an empty queue: %v", e, show(got))
		}
	}
	return s
}

// show renders actions compactly: "dispatch a->e1", "relay a<-e1",
// "fail a TaskTimeout", "fail a EngineError@e1", "dispatch a->e1 repeat".
func show(as []Action) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		var s string
		switch a.Kind {
		case Dispatch:
			s = fmt.Sprintf("dispatch %s->%s", a.MsgID, a.Engine)
			if a.Repeat {
				s += " repeat"
			}
		case Relay:
			s = fmt.Sprintf("relay %s<-%s", a.MsgID, a.Engine)
		case Fail:
			s = fmt.Sprintf("fail %s %s", a.MsgID, a.ErrName)
			if a.Engine != "" {
				s += "@" + a.Engine
			}
		default:
			s = a.Kind.String()
		}
		if a.Task == nil || a.Task.MsgID != a.MsgID {
			s += " (task missing)"
		}
		out = append(out, s)
	}
	return out
}

// want fails the test unless the actions render exactly as expected.
func want(t testing.TB, what string, got []Action, expected ...string) {
	t.Helper()
	if g := show(got); !slices.Equal(g, expected) {
		t.Fatalf("%s:\n got  %q\n want %q", what, g, expected)
	}
}
