package main

import (
	"fmt"
	"slices"
)

// The groups that come with the bench; see registry.go for adding one.
func init() {
	registerMeasure(Measure{Name: "local", Order: 10, Run: measureLocal})
	registerMeasure(Measure{Name: "slurm", Order: 50, Run: func(r *Run) error {
		if len(r.Opts.slurmSizes) == 0 {
			return nil
		}
		conf, err := findSlurm()
		if err != nil {
			fmt.Printf("bench: skipping the Slurm start measure: %v\n", err)
			r.Notes["slurm_skipped"] = err.Error()
			return nil
		}
		fmt.Println("slurm: SLURM_CONF=" + conf)
		measureSlurm(r.Opts, r.Exe, conf, r.Ours, r.Peers, r.Notes)
		return nil
	}})
	registerMeasure(Measure{Name: "tunnel", Order: 60, Run: func(r *Run) error {
		host, err := findSSH()
		if err != nil {
			fmt.Printf("bench: skipping the tunnel measure: %v\n", err)
			r.Notes["tunnel_skipped"] = err.Error()
			return nil
		}
		return measureTunnel(r.Opts, r.Exe, host, r.Ours)
	}})
	for _, n := range []int{4, 32} {
		registerTarget(Target{Key: fmt.Sprintf("slurm_plain_startup_%d_s", n),
			Label: fmt.Sprintf("Slurm: start → %d engines registered, without MPI (as ipyparallel's)", n),
			Goals: map[string]float64{"ipyparallel": 10}})
		registerTarget(Target{Key: fmt.Sprintf("slurm_startup_%d_s", n),
			Label: fmt.Sprintf("Slurm: start → %d MPI engines registered", n),
			Goals: map[string]float64{"ipyparallel": 10}})
	}
	registerTarget(Target{Key: "tunnel_added_median_ms", Label: "latency an ssh tunnel adds, median ms"})
	registerCurves()
}

// targets are the rows of the ratio table, then the registered ones.
func targets(o options) []Target {
	mb := o.ratioMB
	ts := []Target{
		{Key: "lb_tasks_per_s", Label: "load-balanced no-op tasks/s, 2 engines", Higher: true,
			Goals: map[string]float64{"ipyparallel": 50, "dask": 30}},
		{Key: "apply_median_ms", Label: "direct apply round trip, median ms", Goals: map[string]float64{"ipyparallel": 15}},
		{Key: "apply_p99_ms", Label: "direct apply round trip, p99 ms", Goals: map[string]float64{"ipyparallel": 15}},
		{Key: "push_s", Label: fmt.Sprintf("push %d MB float64 to 2 engines, s", mb), Goals: map[string]float64{"ipyparallel": 3},
			Floor: []string{fmt.Sprintf("tcp_warm_s_%d", mb), fmt.Sprintf("tcp_fresh_s_%d", mb)}},
		{Key: "pull_s", Label: fmt.Sprintf("pull %d MB float64 from 2 engines, s", mb), Goals: map[string]float64{"ipyparallel": 3},
			Floor: []string{fmt.Sprintf("tcp_warm_s_%d", mb), fmt.Sprintf("tcp_fresh_s_%d", mb)}},
		{Key: "startup_32_s", Label: "start → 32 engines ready, s", Goals: map[string]float64{"ipyparallel": 30}},
		{Key: "scatter_s", Label: fmt.Sprintf("scatter %d MB over 4 engines, s", o.scatterMB), Goals: map[string]float64{"ipyparallel": 3}},
		{Key: "gather_s", Label: fmt.Sprintf("gather %d MB from 4 engines, s", o.scatterMB), Goals: map[string]float64{"ipyparallel": 3}},
	}
	return append(ts, extraTargets...)
}

// curves are the charts of the report, in the order registered.
func curves() []Curve { return extraCurves }

// registerCurves registers the built-in charts.
func registerCurves() {
	tcp := []Series{
		{Label: "loopback TCP copy, warm", Key: func(x int) string { return fmt.Sprintf("tcp_warm_s_%d", x) }},
		{Label: "loopback TCP copy, fresh buffers", Key: func(x int) string { return fmt.Sprintf("tcp_fresh_s_%d", x) }},
	}
	cs := []Curve{
		{File: "tasks.svg", Title: "Load-balanced no-op tasks/s", XLabel: "engines", YLabel: "tasks/s", LogY: true,
			Xs: func(o options) []int { return o.taskSizes }, Key: func(x int) string { return fmt.Sprintf("lb_tasks_per_s_%d", x) }},
		{File: "push.svg", Title: "Push float64 to 2 engines", XLabel: "MB", YLabel: "seconds", LogY: true,
			Xs: func(o options) []int { return o.dataMB }, Key: func(x int) string { return fmt.Sprintf("push_s_%d", x) }, Extra: tcp},
		{File: "pull.svg", Title: "Pull float64 from 2 engines", XLabel: "MB", YLabel: "seconds", LogY: true,
			Xs: func(o options) []int { return o.dataMB }, Key: func(x int) string { return fmt.Sprintf("pull_s_%d", x) }, Extra: tcp},
		{File: "startup.svg", Title: "Start → N engines ready", XLabel: "engines", YLabel: "seconds", LogY: true,
			Xs: func(o options) []int {
				xs := slices.Concat(o.startup, o.oursStartup, o.daskStartup)
				slices.Sort(xs)
				return slices.Compact(xs)
			}, Key: func(x int) string { return fmt.Sprintf("startup_%d_s", x) }},
	}
	for _, c := range cs {
		registerCurve(c)
	}
}
