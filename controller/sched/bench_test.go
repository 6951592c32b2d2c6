package sched

import (
	"fmt"
	"testing"
)

// run10k submits n plain tasks at once to two engines (hwm 1, so all but
// two queue up), then answers every dispatch in order until all ran. It
// returns how many tasks ran.
func run10k(b *testing.B, s *Scheduler, ids []string) int {
	type sent struct{ id, engine string }
	var inflight []sent
	collect := func(as []Action) {
		for _, a := range as {
			if a.Kind == Dispatch {
				inflight = append(inflight, sent{a.MsgID, a.Engine})
			}
		}
	}
	for _, id := range ids {
		collect(s.Submit(Task{MsgID: id}, t0))
	}
	for i := 0; i < len(inflight); i++ {
		collect(s.Result(inflight[i].id, inflight[i].engine, ReplyOK, t0))
	}
	return len(inflight)
}

func taskIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s%05d", prefix, i)
	}
	return ids
}

// BenchmarkSubmitResult10k: one op is 10,000 submit+result cycles of
// dependency-free tasks on two engines with a queue up to 9,998 deep.
func BenchmarkSubmitResult10k(b *testing.B) {
	ids := taskIDs("t", 10000)
	for b.Loop() {
		s := newSched(b, DefaultConfig(), "e1", "e2")
		if ran := run10k(b, s, ids); ran != len(ids) {
			b.Fatalf("ran %d of %d tasks", ran, len(ids))
		}
	}
}

// BenchmarkSubmitResult10kBlockedHead is the same with 100 tasks stuck at
// the head of the queue (targeted at an engine busy with a task that never
// ends), which every freed slot must skip: the cost of having no
// head-of-line blocking.
func BenchmarkSubmitResult10kBlockedHead(b *testing.B) {
	ids := taskIDs("t", 10000)
	stuck := taskIDs("stuck", 100)
	for b.Loop() {
		s := newSched(b, DefaultConfig(), "e1", "e2", "e3")
		s.Submit(Task{MsgID: "forever", Targets: []string{"e3"}}, t0)
		for _, id := range stuck {
			s.Submit(Task{MsgID: id, Targets: []string{"e3"}}, t0)
		}
		if ran := run10k(b, s, ids); ran != len(ids) {
			b.Fatalf("ran %d of %d tasks", ran, len(ids))
		}
		if q := s.Stats().Queued; q != len(stuck) {
			b.Fatalf("%d tasks left queued, want the %d stuck ones", q, len(stuck))
		}
	}
}
