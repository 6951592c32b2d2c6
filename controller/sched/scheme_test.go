package sched

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestParseScheme(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Scheme
		ok   bool
	}{
		{"", LeastLoad, true},
		{"leastload", LeastLoad, true},
		{"lru", LRU, true},
		{"plainrandom", PlainRandom, true},
		{"twobin", TwoBin, true},
		{"weighted", Weighted, true},
		{"pure", Pure, true},
		{"none", "", false},
		{"LRU", "", false},
		{"bogus", "", false},
	} {
		got, err := ParseScheme(tc.in)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("ParseScheme(%q) = %q, %v; want %q, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestPickDeterministic covers the schemes whose choice follows from the
// loads alone.
func TestPickDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for _, tc := range []struct {
		scheme Scheme
		loads  []int
		want   int
	}{
		{LeastLoad, []int{2, 1, 1, 3}, 1}, // tie goes to the less recently used
		{LeastLoad, []int{0, 0}, 0},
		{LeastLoad, []int{4, 3, 0}, 2},
		{LeastLoad, []int{5}, 0},
		{LRU, []int{9, 0, 0}, 0}, // loads ignored
		{Pure, []int{9, 0, 0}, 0},
	} {
		if got := tc.scheme.pick(tc.loads, r); got != tc.want {
			t.Errorf("%s.pick(%v) = %d, want %d", tc.scheme, tc.loads, got, tc.want)
		}
	}
}

// TestPickRandom checks the random schemes by their distributions over many
// seeded draws: counts are far from the thresholds, so the test is not
// flaky, only reproducible.
func TestPickRandom(t *testing.T) {
	const n = 4000
	draw := func(sc Scheme, loads []int) []int {
		r := rand.New(rand.NewPCG(3, 4))
		counts := make([]int, len(loads))
		for range n {
			counts[sc.pick(loads, r)]++
		}
		return counts
	}

	// Uniform: each of 4 indices about n/4.
	for i, c := range draw(PlainRandom, []int{0, 5, 0, 5}) {
		if c < n/4-200 || c > n/4+200 {
			t.Errorf("plainrandom index %d drawn %d times of %d, want about %d", i, c, n, n/4)
		}
	}

	// Min of two uniform draws over 4: P(i) = (9-2i)/16 -> 7/16, 5/16, 3/16, 1/16.
	tb := draw(TwoBin, []int{9, 9, 0, 0})
	for i, p := range []int{7, 5, 3, 1} {
		exp := n * p / 16
		if tb[i] < exp-150 || tb[i] > exp+150 {
			t.Errorf("twobin index %d drawn %d times, want about %d (loads must not matter)", i, tb[i], exp)
		}
	}

	// Weighted: an idle engine is a million times likelier than a busy one.
	if w := draw(Weighted, []int{3, 0, 3}); w[1] != n {
		t.Errorf("weighted with one idle engine: counts %v, want all on index 1", w)
	}
	if w := draw(Weighted, []int{0, 0, 7}); w[2] != 0 || w[0] < n/3 || w[1] < n/3 {
		t.Errorf("weighted over two idle engines: counts %v, want the idle ones shared, none on index 2", w)
	}
	// Loads 1 and 2: each draw lands on index 0 with p=2/3 and the lighter
	// of the two is kept, so index 1 wins only if both draws hit it (1/9).
	if w := draw(Weighted, []int{1, 2}); w[1] < n/9-150 || w[1] > n/9+150 {
		t.Errorf("weighted with loads 1, 2: counts %v, want index 1 about %d times", w, n/9)
	}
	// Equal loads: two draws, first kept on ties, so still roughly uniform.
	if w := draw(Weighted, []int{1, 1}); w[0] < n/3 || w[1] < n/3 {
		t.Errorf("weighted with equal loads: counts %v, want both used", w)
	}
}

// TestSchemeChoiceInScheduler checks that the scheduler hands the chooser
// the candidates in LRU order with their loads. Targeted tasks set up
// engines b, a, c (least recently used first) with loads 2, 0, 1; an
// untargeted task then shows each scheme's rule.
func TestSchemeChoiceInScheduler(t *testing.T) {
	for _, tc := range []struct {
		scheme Scheme
		want   string
	}{
		{LeastLoad, "dispatch y->a"}, // the idle one
		{LRU, "dispatch y->b"},       // the least recently used, busy or not
	} {
		t.Run(string(tc.scheme), func(t *testing.T) {
			s := newSched(t, Config{Scheme: tc.scheme}, "a", "b", "c")
			for _, step := range []struct{ id, engine string }{
				{"1", "b"}, {"2", "b"}, {"3", "a"}, {"4", "c"}, {"5", "c"},
			} {
				s.Submit(Task{MsgID: step.id, Targets: []string{step.engine}}, t0)
			}
			s.Result("3", "a", ReplyOK, t0)
			s.Result("4", "c", ReplyOK, t0)
			st := s.Stats()
			if got := fmt.Sprint(st.Engines); got != "[{b 2} {a 0} {c 1}]" {
				t.Fatalf("setup: engines %s", got)
			}
			want(t, "y", s.Submit(Task{MsgID: "y"}, t0), tc.want)
		})
	}
}

// TestRandomSchemesRespectCandidates: whatever the draw, only engines with
// room are chosen.
func TestRandomSchemesRespectCandidates(t *testing.T) {
	for _, sc := range []Scheme{PlainRandom, TwoBin, Weighted} {
		t.Run(string(sc), func(t *testing.T) {
			s := newSched(t, Config{Scheme: sc, HWM: 1}, "a", "b", "c", "d")
			busy := map[string]bool{}
			for i := range 4 {
				as := s.Submit(Task{MsgID: string(rune('p' + i))}, t0)
				if len(as) != 1 || as[0].Kind != Dispatch || busy[as[0].Engine] {
					t.Fatalf("submit %d: %v (busy %v)", i, show(as), busy)
				}
				busy[as[0].Engine] = true
			}
			want(t, "fifth task with every engine full", s.Submit(Task{MsgID: "z"}, t0))
		})
	}
}

// TestPureRoundRobin: pure behaves like libzmq's DEALER: strict rotation,
// no high-water mark, and the metadata the Python client would refuse to
// send is ignored rather than acted upon.
func TestPureRoundRobin(t *testing.T) {
	s := newSched(t, Config{Scheme: Pure, HWM: 1}, "a", "b", "c")
	var got []Action
	for _, id := range []string{"1", "2", "3", "4", "5"} {
		got = append(got, s.Submit(Task{MsgID: id, Targets: []string{"c"}, After: NewDependency("nope"), Timeout: 1}, t0)...)
	}
	want(t, "round-robin", got, "dispatch 1->a", "dispatch 2->b", "dispatch 3->c", "dispatch 4->a", "dispatch 5->b")
}
