package sched

import (
	"fmt"
	"math/rand/v2"
)

// Scheme names the rule that picks one engine among those able to take a
// task. The names are those of ipyparallel's TaskScheduler.scheme_name, so a
// --scheme value can be passed straight through ParseScheme.
type Scheme string

// The supported schemes. Every chooser sees the candidates in
// least-recently-used order (the engine that was sent a task longest ago
// first), which is what gives "lru" and "twobin" their meaning and makes
// ties in "leastload" go to the engine that has waited longest.
const (
	// LeastLoad picks the first engine with the fewest outstanding tasks.
	LeastLoad Scheme = "leastload"
	// LRU picks the least recently used engine, ignoring loads.
	LRU Scheme = "lru"
	// PlainRandom picks uniformly at random.
	PlainRandom Scheme = "plainrandom"
	// TwoBin draws two engines uniformly and keeps the less recently used.
	TwoBin Scheme = "twobin"
	// Weighted draws two engines with probability proportional to
	// 1/(load+1e-6) and keeps the less loaded.
	Weighted Scheme = "weighted"
	// Pure stands in for Python's libzmq ROUTER→DEALER queue: strict
	// round-robin, every task goes out at once (no high-water mark), and
	// dependencies, targets, retries and timeouts are ignored because the
	// Python client refuses to send them to a pure scheduler (a plain ZMQ queue).
	Pure Scheme = "pure"
)

// ParseScheme validates a scheme name; the empty string selects LeastLoad,
// Python's default. "none" (no task scheduler at all) is deliberately not a
// scheme here: the controller must then not create a Scheduler.
func ParseScheme(s string) (Scheme, error) {
	switch sc := Scheme(s); sc {
	case "":
		return LeastLoad, nil
	case LeastLoad, LRU, PlainRandom, TwoBin, Weighted, Pure:
		return sc, nil
	}
	return "", fmt.Errorf("sched: unknown scheme %q (want leastload, lru, plainrandom, twobin, weighted or pure)", s)
}

// pick returns an index into loads, the outstanding-task counts of the
// candidates in LRU order. loads is never empty.
func (sc Scheme) pick(loads []int, r *rand.Rand) int {
	switch sc {
	case PlainRandom:
		return r.IntN(len(loads))
	case TwoBin:
		return min(r.IntN(len(loads)), r.IntN(len(loads)))
	case Weighted:
		return pickWeighted(loads, r)
	case LeastLoad:
		best := 0
		for i, l := range loads {
			// Strictly less, so the earliest (least recently used) wins ties.
			if l < loads[best] {
				best = i
			}
		}
		return best
	default: // LRU, Pure
		return 0
	}
}

// pickWeighted follows Python's weighted chooser: the 1e-6 offset makes an
// idle engine about a million times likelier than one with a single task,
// and drawing twice then keeping the lighter one sharpens that preference
// further without making the choice deterministic.
func pickWeighted(loads []int, r *rand.Rand) int {
	total := 0.0
	for _, l := range loads {
		total += weight(l)
	}
	a := locate(loads, r.Float64()*total)
	b := locate(loads, r.Float64()*total)
	if weight(loads[b]) > weight(loads[a]) {
		return b
	}
	return a
}

func weight(load int) float64 { return 1 / (float64(load) + 1e-6) }

// locate finds the first index whose cumulative weight reaches x.
func locate(loads []int, x float64) int {
	sum := 0.0
	for i, l := range loads {
		sum += weight(l)
		if sum >= x {
			return i
		}
	}
	// Rounding can leave x a hair above the final sum.
	return len(loads) - 1
}
