package sched

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestNewEngineGoesFirst(t *testing.T) {
	s := newSched(t, DefaultConfig())
	s.AddEngine("old", t0)
	s.AddEngine("new", t0)
	want(t, "first task", s.Submit(Task{MsgID: "a"}, t0), "dispatch a->new")
	if got := fmt.Sprint(s.Stats().Engines); got != "[{old 0} {new 1}]" {
		t.Fatalf("engines after dispatch = %s, want old first (LRU), new last with load 1", got)
	}
	want(t, "adding a live engine again", s.AddEngine("old", t0))
}

func TestHWM(t *testing.T) {
	for _, tc := range []struct {
		hwm        int
		dispatched int // of 6 tasks on 2 engines
	}{
		{1, 2},
		{2, 4},
		{0, 6},
	} {
		t.Run(fmt.Sprint("hwm=", tc.hwm), func(t *testing.T) {
			s := newSched(t, Config{HWM: tc.hwm}, "e1", "e2")
			n := 0
			for i := range 6 {
				n += len(s.Submit(Task{MsgID: fmt.Sprint("t", i)}, t0))
			}
			if n != tc.dispatched {
				t.Fatalf("dispatched %d tasks, want %d", n, tc.dispatched)
			}
			st := s.Stats()
			if st.Queued != 6-tc.dispatched {
				t.Fatalf("Stats.Queued = %d, want %d", st.Queued, 6-tc.dispatched)
			}
			for _, e := range st.Engines {
				if tc.hwm > 0 && e.Load > tc.hwm {
					t.Fatalf("engine %s load %d exceeds hwm %d", e.UUID, e.Load, tc.hwm)
				}
			}
		})
	}
}

// TestQueueOrder: queued tasks go out in submission order as capacity
// appears, whether from a reply or from a new engine.
func TestQueueOrder(t *testing.T) {
	s := newSched(t, DefaultConfig(), "e1")
	want(t, "a", s.Submit(Task{MsgID: "a"}, t0), "dispatch a->e1")
	for _, id := range []string{"b", "c", "d"} {
		want(t, id, s.Submit(Task{MsgID: id}, t0))
	}
	want(t, "reply a", s.Result("a", "e1", ReplyOK, t0), "relay a<-e1", "dispatch b->e1")
	want(t, "new engine", s.AddEngine("e2", t0), "dispatch c->e2")
	want(t, "reply c", s.Result("c", "e2", ReplyError, t0), "relay c<-e2", "dispatch d->e2")
}

// TestNoHeadOfLineBlocking: tasks that cannot run yet (busy target, unmet
// location, unmet time dependency) are passed over by later tasks.
func TestNoHeadOfLineBlocking(t *testing.T) {
	s := newSched(t, DefaultConfig(), "e1", "e2", "e3")
	want(t, "p", s.Submit(Task{MsgID: "p", Targets: []string{"e1"}}, t0), "dispatch p->e1")
	want(t, "stuck on busy e1", s.Submit(Task{MsgID: "x", Targets: []string{"e1"}}, t0))
	want(t, "stuck on follow p", s.Submit(Task{MsgID: "y", Follow: NewDependency("p")}, t0))
	want(t, "stuck on after p", s.Submit(Task{MsgID: "z", After: NewDependency("p")}, t0))
	want(t, "free task behind them", s.Submit(Task{MsgID: "free"}, t0), "dispatch free->e2")
	want(t, "reply free", s.Result("free", "e2", ReplyOK, t0), "relay free<-e2")
	// e2 and e3 idle now; none of x, y, z can use them yet.
	want(t, "another free task", s.Submit(Task{MsgID: "free2"}, t0), "dispatch free2->e3")
	// p finishing on e1 releases all three: x (first in line) takes e1,
	// which y needs, so y waits; z can go anywhere and takes e2.
	want(t, "reply p", s.Result("p", "e1", ReplyOK, t0), "relay p<-e1", "dispatch x->e1", "dispatch z->e2")
	want(t, "reply x", s.Result("x", "e1", ReplyOK, t0), "relay x<-e1", "dispatch y->e1")
}

func TestAfterDependency(t *testing.T) {
	type parent struct {
		id string
		r  Reply
	}
	for _, tc := range []struct {
		name    string
		dep     Dependency
		parents []parent // replies, in order, to tasks p1 and p2
		want    []string // actions after the last reply, parent relay excluded
	}{
		{"all success: both ok", NewDependency("p1", "p2"),
			[]parent{{"p1", ReplyOK}, {"p2", ReplyOK}}, []string{"dispatch c->e1"}},
		{"all success: first ok, second pending", NewDependency("p1", "p2"),
			[]parent{{"p1", ReplyOK}}, nil},
		{"all success: one failed", NewDependency("p1", "p2"),
			[]parent{{"p1", ReplyError}}, []string{"fail c ImpossibleDependency"}},
		{"all failure: both failed", Dependency{IDs: []string{"p1", "p2"}, All: true, Failure: true},
			[]parent{{"p1", ReplyError}, {"p2", ReplyError}}, []string{"dispatch c->e1"}},
		{"all failure: one succeeded", Dependency{IDs: []string{"p1", "p2"}, All: true, Failure: true},
			[]parent{{"p1", ReplyOK}}, []string{"fail c ImpossibleDependency"}},
		{"all either: ok and failed", Dependency{IDs: []string{"p1", "p2"}, All: true, Success: true, Failure: true},
			[]parent{{"p1", ReplyOK}, {"p2", ReplyError}}, []string{"dispatch c->e1"}},
		{"any success: second ok", Dependency{IDs: []string{"p1", "p2"}, Success: true},
			[]parent{{"p2", ReplyOK}}, []string{"dispatch c->e1"}},
		{"any success: one failed, one pending", Dependency{IDs: []string{"p1", "p2"}, Success: true},
			[]parent{{"p1", ReplyError}}, nil},
		{"any success: both failed", Dependency{IDs: []string{"p1", "p2"}, Success: true},
			[]parent{{"p1", ReplyError}, {"p2", ReplyError}}, []string{"fail c ImpossibleDependency"}},
		{"any failure: one failed", Dependency{IDs: []string{"p1", "p2"}, Failure: true},
			[]parent{{"p1", ReplyError}}, []string{"dispatch c->e1"}},
		{"any failure: both ok", Dependency{IDs: []string{"p1", "p2"}, Failure: true},
			[]parent{{"p1", ReplyOK}, {"p2", ReplyOK}}, []string{"fail c ImpossibleDependency"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// hwm 0 so parents and child never compete for a slot.
			s := newSched(t, Config{}, "e1")
			s.Submit(Task{MsgID: "p1"}, t0)
			s.Submit(Task{MsgID: "p2"}, t0)
			want(t, "child submitted", s.Submit(Task{MsgID: "c", After: tc.dep}, t0))
			var got []Action
			for _, p := range tc.parents {
				got = s.Result(p.id, "e1", p.r, t0)
			}
			want(t, "after last parent reply", got[1:], tc.want...)
		})
	}
}

// TestDependencyAlreadyDecided: the same table applies at submission when
// the parents have finished before the child arrives.
func TestDependencyAlreadyDecided(t *testing.T) {
	s := newSched(t, Config{}, "e1")
	s.Submit(Task{MsgID: "ok"}, t0)
	s.Submit(Task{MsgID: "bad"}, t0)
	s.Result("ok", "e1", ReplyOK, t0)
	s.Result("bad", "e1", ReplyError, t0)
	onFailure := Dependency{IDs: []string{"bad"}, All: true, Failure: true}
	want(t, "after ok", s.Submit(Task{MsgID: "c1", After: NewDependency("ok")}, t0), "dispatch c1->e1")
	want(t, "after bad", s.Submit(Task{MsgID: "c2", After: NewDependency("bad")}, t0), "fail c2 ImpossibleDependency")
	want(t, "after bad, failure accepted", s.Submit(Task{MsgID: "c3", After: onFailure}, t0), "dispatch c3->e1")
	want(t, "follow bad", s.Submit(Task{MsgID: "c4", Follow: NewDependency("bad")}, t0), "fail c4 ImpossibleDependency")
	// The scheduler's own failure counts as a failure for later tasks.
	want(t, "after c2", s.Submit(Task{MsgID: "c5", After: NewDependency("c2")}, t0), "fail c5 ImpossibleDependency")
}

func TestInvalidDependency(t *testing.T) {
	s := newSched(t, Config{}, "e1")
	s.Submit(Task{MsgID: "known"}, t0)
	for _, tc := range []struct {
		name string
		task Task
	}{
		{"after itself", Task{MsgID: "t1", After: NewDependency("t1")}},
		{"follow itself", Task{MsgID: "t2", Follow: NewDependency("known", "t2")}},
		{"after unknown id", Task{MsgID: "t3", After: NewDependency("known", "ghost")}},
		{"follow unknown id", Task{MsgID: "t4", Follow: NewDependency("ghost")}},
		{"neither success nor failure", Task{MsgID: "t5", After: Dependency{IDs: []string{"known"}, All: true}}},
	} {
		want(t, tc.name, s.Submit(tc.task, t0), "fail "+tc.task.MsgID+" InvalidDependency")
	}
	// An invalid task is a failed task to those depending on it.
	want(t, "after an invalid task", s.Submit(Task{MsgID: "t6", After: NewDependency("t1")}, t0), "fail t6 ImpossibleDependency")
	// A rejected request likewise.
	want(t, "reject", s.Reject(Task{MsgID: "r"}, InvalidDependency, "bad metadata"), "fail r InvalidDependency")
	want(t, "after a rejected task", s.Submit(Task{MsgID: "t7", After: NewDependency("r")}, t0), "fail t7 ImpossibleDependency")
	if st := s.Stats(); st.Queued != 0 {
		t.Fatalf("failed tasks left in the queue: %+v", st)
	}
}

// TestCascade: an impossible task fails its own dependents in turn.
func TestCascade(t *testing.T) {
	s := newSched(t, Config{}, "e1")
	s.Submit(Task{MsgID: "a"}, t0)
	s.Submit(Task{MsgID: "b", After: NewDependency("a")}, t0)
	s.Submit(Task{MsgID: "c", After: NewDependency("b")}, t0)
	s.Submit(Task{MsgID: "d", After: Dependency{IDs: []string{"c"}, All: true, Failure: true}}, t0)
	want(t, "a fails", s.Result("a", "e1", ReplyError, t0),
		"relay a<-e1", "fail b ImpossibleDependency", "fail c ImpossibleDependency", "dispatch d->e1")
}

func TestFollow(t *testing.T) {
	setup := func(t *testing.T) *Scheduler {
		// p1 ran on e1, p2 on e2; e3 is the least recently used.
		s := newSched(t, Config{HWM: 1, StrandedDelay: time.Minute}, "e1", "e2", "e3")
		s.Submit(Task{MsgID: "p1", Targets: []string{"e1"}}, t0)
		s.Submit(Task{MsgID: "p2", Targets: []string{"e2"}}, t0)
		s.Result("p1", "e1", ReplyOK, t0)
		s.Result("p2", "e2", ReplyOK, t0)
		return s
	}
	anyOf := func(ids ...string) Dependency { d := NewDependency(ids...); d.All = false; return d }
	for _, tc := range []struct {
		name string
		task Task
		want string
	}{
		{"follow p1 runs on e1", Task{MsgID: "c", Follow: NewDependency("p1")}, "dispatch c->e1"},
		{"follow p2 runs on e2", Task{MsgID: "c", Follow: NewDependency("p2")}, "dispatch c->e2"},
		{"follow all of p1, p2 on different engines", Task{MsgID: "c", Follow: NewDependency("p1", "p2")}, "fail c ImpossibleDependency"},
		{"follow any of p1, p2", Task{MsgID: "c", Follow: anyOf("p1", "p2")}, "dispatch c->e1"},
		{"follow p1 but targets e2", Task{MsgID: "c", Follow: NewDependency("p1"), Targets: []string{"e2"}}, "fail c ImpossibleDependency"},
		{"no follow takes the LRU engine", Task{MsgID: "c"}, "dispatch c->e3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want(t, "submit", setup(t).Submit(tc.task, t0), tc.want)
		})
	}

	t.Run("waits for its engine", func(t *testing.T) {
		s := setup(t)
		s.Submit(Task{MsgID: "busy", Targets: []string{"e1"}}, t0)
		want(t, "e1 busy", s.Submit(Task{MsgID: "c", Follow: NewDependency("p1")}, t0))
		want(t, "e1 free", s.Result("busy", "e1", ReplyOK, t0), "relay busy<-e1", "dispatch c->e1")
	})
	t.Run("pending parent decides the location", func(t *testing.T) {
		s := setup(t)
		s.Submit(Task{MsgID: "p3", Targets: []string{"e2"}}, t0)
		want(t, "p3 running", s.Submit(Task{MsgID: "c", Follow: NewDependency("p3")}, t0))
		want(t, "p3 done", s.Result("p3", "e2", ReplyOK, t0), "relay p3<-e2", "dispatch c->e2")
	})
	t.Run("pending parents end up on two engines", func(t *testing.T) {
		s := setup(t)
		s.Submit(Task{MsgID: "q1", Targets: []string{"e1"}}, t0)
		s.Submit(Task{MsgID: "q2", Targets: []string{"e2"}}, t0)
		want(t, "both running", s.Submit(Task{MsgID: "c", Follow: NewDependency("q1", "q2")}, t0))
		want(t, "q1 done", s.Result("q1", "e1", ReplyOK, t0), "relay q1<-e1")
		want(t, "q2 done elsewhere", s.Result("q2", "e2", ReplyOK, t0), "relay q2<-e2", "fail c ImpossibleDependency")
	})
	t.Run("its engine dies", func(t *testing.T) {
		s := setup(t)
		s.Submit(Task{MsgID: "busy", Targets: []string{"e1"}}, t0)
		want(t, "e1 busy", s.Submit(Task{MsgID: "c", Follow: NewDependency("p1")}, t0))
		want(t, "e1 dies", s.RemoveEngine("e1", t0), "fail c ImpossibleDependency")
		want(t, "follow the dead engine later", s.Submit(Task{MsgID: "d", Follow: NewDependency("p1")}, t0), "fail d ImpossibleDependency")
	})
}

func TestTargets(t *testing.T) {
	s := newSched(t, DefaultConfig(), "e1", "e2", "e3")
	want(t, "target e3", s.Submit(Task{MsgID: "a", Targets: []string{"e3"}}, t0), "dispatch a->e3")
	want(t, "target busy e3", s.Submit(Task{MsgID: "b", Targets: []string{"e3"}}, t0))
	want(t, "target e2 or e3", s.Submit(Task{MsgID: "c", Targets: []string{"e3", "e2"}}, t0), "dispatch c->e2")
	want(t, "unknown target", s.Submit(Task{MsgID: "d", Targets: []string{"gone"}}, t0), "fail d ImpossibleDependency")
	want(t, "e3 dies with b queued for it", s.RemoveEngine("e3", t0), "fail b ImpossibleDependency")
	if st := s.Stats(); st.Queued != 0 || st.Stranded != 1 {
		t.Fatalf("stats after e3 died = %+v, want nothing queued and a stranded", st)
	}
}

func TestTimeoutWhileQueued(t *testing.T) {
	s := newSched(t, DefaultConfig(), "e1")
	want(t, "a runs", s.Submit(Task{MsgID: "a", Timeout: time.Second}, t0), "dispatch a->e1")
	if _, ok := s.NextDeadline(); ok {
		t.Fatal("a dispatched task must not arm a timeout")
	}
	want(t, "b queued", s.Submit(Task{MsgID: "b", Timeout: 10 * time.Second}, t0))
	want(t, "c queued", s.Submit(Task{MsgID: "c", Timeout: 20 * time.Second}, t0.Add(time.Second)))
	if d, ok := s.NextDeadline(); !ok || !d.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("NextDeadline = %v, %v; want b's at t0+10s", d, ok)
	}
	want(t, "tick just before", s.Tick(t0.Add(10*time.Second-time.Nanosecond)))
	want(t, "tick at b's deadline", s.Tick(t0.Add(10*time.Second)), "fail b TaskTimeout")
	if d, _ := s.NextDeadline(); !d.Equal(t0.Add(21 * time.Second)) {
		t.Fatalf("NextDeadline = %v, want c's at t0+21s", d)
	}
	// a running for a long time never times out; c does, even when the
	// reply that would free the engine arrives after c's deadline but
	// before the controller got round to calling Tick.
	want(t, "late reply", s.Result("a", "e1", ReplyOK, t0.Add(time.Hour)), "fail c TaskTimeout", "relay a<-e1")
	if _, ok := s.NextDeadline(); ok {
		t.Fatal("no deadline should remain")
	}
}

func TestTimeoutWaitingOnDependency(t *testing.T) {
	s := newSched(t, Config{}, "e1")
	s.Submit(Task{MsgID: "p"}, t0)
	want(t, "child waits", s.Submit(Task{MsgID: "c", After: NewDependency("p"), Timeout: time.Minute}, t0))
	s.Submit(Task{MsgID: "g", After: NewDependency("c")}, t0)
	want(t, "timeout", s.Tick(t0.Add(time.Minute)), "fail c TaskTimeout", "fail g ImpossibleDependency")
	want(t, "parent finishes later", s.Result("p", "e1", ReplyOK, t0.Add(2*time.Minute)), "relay p<-e1")
}

func TestRetries(t *testing.T) {
	s := newSched(t, DefaultConfig(), "e1", "e2")
	want(t, "submit", s.Submit(Task{MsgID: "a", Retries: 1}, t0), "dispatch a->e1")
	want(t, "first failure is swallowed, retried elsewhere", s.Result("a", "e1", ReplyError, t0), "dispatch a->e2")
	want(t, "second failure is relayed", s.Result("a", "e2", ReplyError, t0), "relay a<-e2")

	want(t, "success needs no retry", s.Submit(Task{MsgID: "b", Retries: 3}, t0), "dispatch b->e1")
	want(t, "ok", s.Result("b", "e1", ReplyOK, t0), "relay b<-e1")
}

// TestRetryWaitsForAnotherEngine: a retry prefers an engine it has not
// failed on, even a busy one, while one exists.
func TestRetryWaitsForAnotherEngine(t *testing.T) {
	s := newSched(t, DefaultConfig(), "e1", "e2")
	s.Submit(Task{MsgID: "a", Retries: 1}, t0)
	s.Submit(Task{MsgID: "long"}, t0) // occupies e2
	want(t, "a fails on e1, e2 busy", s.Result("a", "e1", ReplyError, t0))
	want(t, "a plain task takes idle e1", s.Submit(Task{MsgID: "b"}, t0), "dispatch b->e1")
	want(t, "e2 frees", s.Result("long", "e2", ReplyOK, t0), "relay long<-e2", "dispatch a->e2")
}

// TestRetriesSingleEngine: ipyparallel blacklists the engine a task failed
// on and waits for another one; only a still-queued task times out.
func TestRetriesSingleEngine(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		s := newSched(t, DefaultConfig(), "e1")
		want(t, "submit", s.Submit(Task{MsgID: "a", Retries: 2, Timeout: 10 * time.Second}, t0), "dispatch a->e1")
		at := t0.Add(time.Minute)
		want(t, "failure: held, not re-run on e1", s.Result("a", "e1", ReplyError, at))
		if d, ok := s.NextDeadline(); !ok || !d.Equal(at.Add(10*time.Second)) {
			t.Fatalf("NextDeadline = %v, %v; want the reply time + 10s", d, ok)
		}
		want(t, "a free e1 does not take it", s.Submit(Task{MsgID: "b"}, at), "dispatch b->e1")
		want(t, "nor when e1 frees", s.Result("b", "e1", ReplyOK, at), "relay b<-e1")
		got := s.Tick(at.Add(10 * time.Second))
		want(t, "times out", got, "fail a TaskTimeout")
		if v := got[0].ErrValue; !strings.Contains(v, "retry_failed_engines") {
			t.Fatalf("TaskTimeout should say why the task was held: %q", v)
		}
	})
	t.Run("a new engine takes it", func(t *testing.T) {
		s := newSched(t, DefaultConfig(), "e1")
		s.Submit(Task{MsgID: "a", Retries: 1, Timeout: 10 * time.Second}, t0)
		want(t, "held", s.Result("a", "e1", ReplyError, t0))
		want(t, "e2 registers", s.AddEngine("e2", t0.Add(time.Second)), "dispatch a->e2")
		want(t, "its reply ends it", s.Result("a", "e2", ReplyOK, t0.Add(2*time.Second)), "relay a<-e2")
	})
	t.Run("no timeout", func(t *testing.T) {
		// Python would wait forever: the failure itself is relayed.
		s := newSched(t, DefaultConfig(), "e1")
		s.Submit(Task{MsgID: "a", Retries: 3}, t0)
		want(t, "nowhere to retry", s.Result("a", "e1", ReplyError, t0), "relay a<-e1")
	})
	t.Run("no timeout, the last untried engine dies", func(t *testing.T) {
		s := newSched(t, DefaultConfig(), "e1", "e2")
		s.Submit(Task{MsgID: "long"}, t0) // on e1
		s.Submit(Task{MsgID: "a", Retries: 3}, t0)
		want(t, "fails on e2, waits for e1", s.Result("a", "e2", ReplyError, t0))
		want(t, "e1 dies", s.RemoveEngine("e1", t0), "fail a ImpossibleDependency")
	})
	t.Run("targets", func(t *testing.T) {
		// As in Python: blacklist == targets is ImpossibleDependency, with
		// or without a timeout.
		s := newSched(t, DefaultConfig(), "e1", "e2")
		want(t, "submit", s.Submit(Task{MsgID: "b", Retries: 1, Targets: []string{"e1"}, Timeout: time.Hour}, t0), "dispatch b->e1")
		got := s.Result("b", "e1", ReplyError, t0)
		want(t, "targeted failure", got, "fail b ImpossibleDependency")
		if v := got[0].ErrValue; !strings.Contains(v, "failed on every live engine among its targets") {
			t.Fatalf("ErrValue = %q", v)
		}
	})
	t.Run("retry_failed_engines", func(t *testing.T) {
		// The opt-in: the retry goes back to the engine, marked Repeat, and
		// the last failure reaches the client.
		s := newSched(t, DefaultConfig(), "e1")
		want(t, "submit", s.Submit(Task{MsgID: "a", Retries: 2, RetryFailedEngines: true}, t0), "dispatch a->e1")
		want(t, "failure 1", s.Result("a", "e1", ReplyError, t0), "dispatch a->e1 repeat")
		want(t, "failure 2", s.Result("a", "e1", ReplyError, t0), "dispatch a->e1 repeat")
		want(t, "failure 3", s.Result("a", "e1", ReplyError, t0), "relay a<-e1")

		want(t, "targeted", s.Submit(Task{MsgID: "b", Retries: 1, Targets: []string{"e1"}, RetryFailedEngines: true}, t0), "dispatch b->e1")
		want(t, "targeted failure", s.Result("b", "e1", ReplyError, t0), "dispatch b->e1 repeat")
		want(t, "targeted success", s.Result("b", "e1", ReplyOK, t0), "relay b<-e1")
	})
}

func TestUnmetDependency(t *testing.T) {
	s := newSched(t, DefaultConfig(), "e1", "e2", "e3")
	want(t, "submit", s.Submit(Task{MsgID: "a"}, t0), "dispatch a->e1")
	want(t, "unmet on e1: re-routed without a retry", s.Result("a", "e1", ReplyUnmet, t0), "dispatch a->e2")
	want(t, "unmet on e2", s.Result("a", "e2", ReplyUnmet, t0), "dispatch a->e3")
	want(t, "unmet everywhere", s.Result("a", "e3", ReplyUnmet, t0), "fail a ImpossibleDependency")

	// A banned engine stays banned even when the task has retries.
	want(t, "b", s.Submit(Task{MsgID: "b", Retries: 5, Targets: []string{"e1", "e2"}}, t0), "dispatch b->e1")
	want(t, "b unmet on e1", s.Result("b", "e1", ReplyUnmet, t0), "dispatch b->e2")
	want(t, "b fails on e2: every target is excluded", s.Result("b", "e2", ReplyError, t0), "fail b ImpossibleDependency")

	// With the opt-in the failed engine stays usable, the banned one does not.
	want(t, "c", s.Submit(Task{MsgID: "c", Retries: 5, Targets: []string{"e1", "e2"}, RetryFailedEngines: true}, t0), "dispatch c->e1")
	want(t, "c unmet on e1", s.Result("c", "e1", ReplyUnmet, t0), "dispatch c->e2")
	want(t, "c fails on e2", s.Result("c", "e2", ReplyError, t0), "dispatch c->e2 repeat")
	want(t, "c unmet on e2", s.Result("c", "e2", ReplyUnmet, t0), "fail c ImpossibleDependency")
}

func TestEngineDeath(t *testing.T) {
	cfg := DefaultConfig() // 5 s stranded delay
	t.Run("no retries", func(t *testing.T) {
		s := newSched(t, cfg, "e1", "e2")
		s.Submit(Task{MsgID: "a"}, t0)
		s.Submit(Task{MsgID: "q"}, t0) // on e2
		s.Submit(Task{MsgID: "w"}, t0) // queued
		want(t, "death", s.RemoveEngine("e1", t0))
		if st := s.Stats(); st.Stranded != 1 || len(st.Engines) != 1 {
			t.Fatalf("stats after death = %+v", st)
		}
		if d, ok := s.NextDeadline(); !ok || !d.Equal(t0.Add(5*time.Second)) {
			t.Fatalf("NextDeadline = %v, %v; want t0+5s", d, ok)
		}
		want(t, "before the delay", s.Tick(t0.Add(4*time.Second)))
		got := s.Tick(t0.Add(5 * time.Second))
		want(t, "after the delay", got, "fail a EngineError@e1")
		if v := got[0].ErrValue; v != "Engine e1 died while running task 'a'" {
			t.Fatalf("ErrValue = %q", v)
		}
		want(t, "stale reply", s.Result("a", "e1", ReplyOK, t0.Add(6*time.Second)))
		want(t, "dependents see a failure", s.Submit(Task{MsgID: "c", After: NewDependency("a")}, t0.Add(6*time.Second)), "fail c ImpossibleDependency")
	})
	t.Run("retries", func(t *testing.T) {
		s := newSched(t, cfg, "e1", "e2")
		s.Submit(Task{MsgID: "a", Retries: 1}, t0)
		want(t, "death", s.RemoveEngine("e1", t0))
		want(t, "retried on e2", s.Tick(t0.Add(5*time.Second)), "dispatch a->e2")
		want(t, "e2 dies too", s.RemoveEngine("e2", t0.Add(6*time.Second)))
		want(t, "out of retries", s.Tick(t0.Add(11*time.Second)), "fail a EngineError@e2")
	})
	t.Run("late reply within the delay", func(t *testing.T) {
		s := newSched(t, cfg, "e1", "e2")
		s.Submit(Task{MsgID: "a"}, t0)
		s.RemoveEngine("e1", t0)
		want(t, "reply in flight", s.Result("a", "e1", ReplyOK, t0.Add(time.Second)), "relay a<-e1")
		if _, ok := s.NextDeadline(); ok {
			t.Fatal("nothing left stranded, no deadline expected")
		}
	})
	t.Run("zero delay", func(t *testing.T) {
		s := newSched(t, Config{HWM: 1}, "e1", "e2")
		s.Submit(Task{MsgID: "a", Retries: 1}, t0) // on e1
		s.Submit(Task{MsgID: "b"}, t0)             // on e2
		s.Submit(Task{MsgID: "c"}, t0)             // queued
		want(t, "e1 dies: a requeued at once, no engine free", s.RemoveEngine("e1", t0))
		want(t, "e2 frees: a keeps its turn ahead of c", s.Result("b", "e2", ReplyOK, t0), "relay b<-e2", "dispatch a->e2")
		want(t, "e2 dies: a is out of retries", s.RemoveEngine("e2", t0), "fail a EngineError@e2")
		want(t, "c still waits for an engine", s.AddEngine("e3", t0), "dispatch c->e3")
	})
}

func TestStats(t *testing.T) {
	s := newSched(t, DefaultConfig(), "e1", "e2")
	s.Submit(Task{MsgID: "a"}, t0)
	s.Submit(Task{MsgID: "b"}, t0)
	s.Submit(Task{MsgID: "c"}, t0)
	s.Submit(Task{MsgID: "d", After: NewDependency("c")}, t0)
	st := s.Stats()
	if st.Queued != 2 || st.Stranded != 0 || fmt.Sprint(st.Engines) != "[{e1 1} {e2 1}]" {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestDuplicateMsgID(t *testing.T) {
	s := newSched(t, DefaultConfig(), "e1")
	s.Submit(Task{MsgID: "a"}, t0)
	want(t, "duplicate", s.Submit(Task{MsgID: "a"}, t0), "fail a TaskRejectError")
	want(t, "original unaffected", s.Result("a", "e1", ReplyOK, t0), "relay a<-e1")
}

// TestTimeoutRestartsOnRequeue: a task back in the queue after an unmet
// dependency gets its full timeout again, counted from the reply, as in
// Python (save_unmet re-arms it).
func TestTimeoutRestartsOnRequeue(t *testing.T) {
	s := newSched(t, DefaultConfig(), "e1", "e2")
	want(t, "a", s.Submit(Task{MsgID: "a", Timeout: 10 * time.Second}, t0), "dispatch a->e1")
	want(t, "long", s.Submit(Task{MsgID: "long"}, t0), "dispatch long->e2")
	at := t0.Add(time.Minute)
	want(t, "unmet on e1, e2 busy", s.Result("a", "e1", ReplyUnmet, at))
	if d, ok := s.NextDeadline(); !ok || !d.Equal(at.Add(10*time.Second)) {
		t.Fatalf("NextDeadline = %v, %v; want the reply time + 10s", d, ok)
	}
	want(t, "times out in the queue", s.Tick(at.Add(10*time.Second)), "fail a TaskTimeout")
}

func TestReadyQueue(t *testing.T) {
	var q readyQueue
	jobs := map[uint64]*job{}
	add := func(seq uint64) {
		j := jobs[seq]
		if j == nil {
			j = &job{seq: seq}
			jobs[seq] = j
		}
		j.gen++
		j.state = stateReady
		q.insert(j)
	}
	kill := func(seq uint64) { jobs[seq].state = stateRunning; q.left() }
	live := func() []uint64 {
		var out []uint64
		for _, e := range q.entries {
			if e.live() {
				out = append(out, e.j.seq)
			}
		}
		return out
	}
	for _, seq := range []uint64{1, 2, 5, 6, 3} {
		add(seq)
	}
	kill(2)
	add(2) // back in, in its old place, its old entry dead
	kill(5)
	if got := fmt.Sprint(live()); got != "[1 2 3 6]" {
		t.Fatalf("live order = %s", got)
	}
	q.squeeze(len(q.entries))
	if len(q.entries) != 4 || q.dead != 0 {
		t.Fatalf("after squeeze: %d entries, %d dead; want 4, 0", len(q.entries), q.dead)
	}
	for seq := uint64(100); seq < 300; seq++ {
		add(seq)
		kill(seq)
	}
	q.tidy()
	if got := fmt.Sprint(live()); got != "[1 2 3 6]" || len(q.entries) != 4 {
		t.Fatalf("after tidy: live %s in %d entries", got, len(q.entries))
	}
}
