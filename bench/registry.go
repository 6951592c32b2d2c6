package main

import (
	"fmt"
	"slices"
)

// This file is the bench's registration point. A new group of measures
// (idle engines, 1,000 engines, ...) lives in its own file of this package
// and registers itself from an init function:
//
//	func init() {
//		registerMeasure(Measure{Name: "idle", Order: 30, Run: measureIdle})
//		registerTarget(Target{Key: "idle_wakeups_per_s", Label: "idle engine wake-ups/s", Absolute: 10})
//		registerCurve(Curve{...}) // only for a measure taken at several points
//	}
//
// Run stores numbers with r.Ours[key] = v (and r.Peer(name)[key] for a peer);
// `-only name` runs that group alone, and the report lists every key
// stored, the registered targets in its ratio table and each curve as a
// chart. Keys end in their unit (_s, _ms, _per_s, _mb) so that the report
// and the comparison with the previous run need no other description.

// Run is what one measure reads and writes.
type Run struct {
	Opts options
	// Exe is the absolute path of the ipcluster under test.
	Exe string
	// Ours holds our numbers, by key.
	Ours results
	// Peers holds each peer's numbers under the same keys as ours.
	Peers map[string]results
	// Floor holds reference numbers that are neither ours nor a peer's
	// (the raw loopback TCP copy).
	Floor results
	// Notes go into results.json as they are: errors, skipped measures
	// and why, load averages.
	Notes map[string]any
	// Versions names what ran, per system ("ipyparallel" -> its versions).
	Versions map[string]map[string]string
}

// Peer returns the results of peer name, creating them.
func (r *Run) Peer(name string) results {
	if r.Peers[name] == nil {
		r.Peers[name] = results{}
	}
	return r.Peers[name]
}

// Skip records that key was not measured for system, and why: the report
// prints the reason instead of an empty cell.
func (r *Run) Skip(system, key, why string) {
	sk, _ := r.Notes["skipped"].(map[string]map[string]string)
	if sk == nil {
		sk = map[string]map[string]string{}
		r.Notes["skipped"] = sk
	}
	if sk[system] == nil {
		sk[system] = map[string]string{}
	}
	sk[system][key] = why
	fmt.Printf("bench: %s: %s not measured: %s\n", system, key, why)
}

// Measure is a group of measures selected by name with -only.
type Measure struct {
	Name string
	// Order sorts the groups: lower runs first (local 10, slurm 50,
	// tunnel 60). Long or disruptive groups go last.
	Order int
	// Run measures and stores its numbers in r. An error is reported in
	// the notes and the bench goes on with the next group.
	Run func(r *Run) error
}

// Target is one row of the ratio table: our number against each peer's,
// with the goal for the ratio.
type Target struct {
	Key, Label string
	// Higher is true for throughputs (ratio = ours / theirs); times and
	// latencies take theirs / ours, so a ratio above 1 is always ours better.
	Higher bool
	// Goals is the ratio wanted against each peer ("ipyparallel", "dask");
	// a peer without a goal is shown without a verdict.
	Goals map[string]float64
	// Absolute, when set, is a bound on our own value instead (≤ for
	// times and counts, ≥ when Higher): rows without a peer, e.g. idle
	// wake-ups or 1,000 engines registered.
	Absolute float64
	// Floor names the Floor keys shown beside our value (same run).
	Floor []string
}

// Curve is one chart: a measure taken at several points, one line per
// system (ours, every peer, and Extra lines such as the TCP floor).
type Curve struct {
	// File is the chart's file name in the run's directory (.svg or .png).
	File, Title, XLabel, YLabel string
	// Xs are the points asked for in this run.
	Xs func(o options) []int
	// Key is the results key of point x.
	Key func(x int) string
	// LogY draws the values on a log scale (times spanning decades).
	LogY bool
	// Extra are lines from Run.Floor: label -> key of point x.
	Extra []Series
}

// Series is one extra line of a chart.
type Series struct {
	Label string
	Key   func(x int) string
}

var (
	measures      []Measure
	extraTargets  []Target
	extraCurves   []Curve
	measureByName = map[string]bool{}
)

// registerMeasure adds a group of measures; names must be unique.
func registerMeasure(m Measure) {
	if measureByName[m.Name] {
		panic("bench: measure registered twice: " + m.Name)
	}
	measureByName[m.Name] = true
	measures = append(measures, m)
	slices.SortStableFunc(measures, func(a, b Measure) int { return a.Order - b.Order })
}

// registerTarget adds a row to the ratio table, after the rows.
func registerTarget(t Target) { extraTargets = append(extraTargets, t) }

// registerCurve adds a chart, after the built-in ones.
func registerCurve(c Curve) { extraCurves = append(extraCurves, c) }

func measureNames() []string {
	var names []string
	for _, m := range measures {
		names = append(names, m.Name)
	}
	return names
}
