package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/internal/protocol"
)

// measureLocal takes every local curve for us, then the loopback TCP
// floor of the same sizes, then each peer's.
func measureLocal(r *Run) error {
	if err := measureOurs(r); err != nil {
		r.Notes["ipp_error"] = err.Error()
	}
	measureFloor(r)
	for _, p := range r.Opts.peers {
		if err := measurePeer(r, p); err != nil {
			fmt.Fprintf(os.Stderr, "peer %s: %v\n", p, err)
			r.Notes[p+"_error"] = err.Error()
		}
	}
	return nil
}

// engineCounts are the cluster sizes a system starts: one cluster per
// count serves every measure taken at that count (2 engines carry the
// latency and push/pull, 4 carry scatter/gather).
func engineCounts(o options, startup []int) []int {
	ns := slices.Concat(startup, o.taskSizes, []int{2})
	if o.scatterMB > 0 {
		ns = append(ns, 4)
	}
	slices.Sort(ns)
	return slices.Compact(ns)
}

// localCluster starts n of our engines with ipp.Cluster and returns the
// time to all registered and seen by the client.
type localCluster struct {
	exe, dir string
	ctrlArgs []string
	log      *slog.Logger
}

func newLocalCluster(o options, exe, dir string) localCluster {
	var args []string
	if o.hwm != 0 {
		args = append(args, "--hwm="+strconv.Itoa(o.hwm))
	}
	if o.burst >= 0 {
		args = append(args, "--burst="+strconv.Itoa(o.burst))
	}
	if o.db != "" {
		args = append(args, "--db="+o.db)
	}
	return localCluster{exe: exe, dir: dir, ctrlArgs: args, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func (l localCluster) start(ctx context.Context, n int) (*ipp.Cluster, *ipp.Client, time.Duration, error) {
	t0 := time.Now()
	c, err := ipp.NewCluster(ipp.ClusterOptions{
		N: n, ProfileDir: filepath.Join(l.dir, "profile_bench"), Logger: l.log,
		ControllerCmd: []string{l.exe, "controller"}, EngineCmd: []string{l.exe, "engine"},
		// A count this machine cannot start must not eat the bench's
		// quarter hour: a minute, plus 60 ms an engine (2 minutes at 1,000).
		ControllerArgs: l.ctrlArgs, EngineTimeout: time.Minute + time.Duration(n)*60*time.Millisecond,
	})
	if err != nil {
		return nil, nil, 0, err
	}
	cl, err := c.StartAndConnect(ctx)
	if err != nil {
		c.Stop(context.Background())
		return nil, nil, 0, err
	}
	return c, cl, time.Since(t0), nil
}

func measureOurs(r *Run) error {
	o := r.Opts
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "ipp-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	lc := newLocalCluster(o, r.Exe, dir)
	// A count that fails (1,000 engines beyond a limit of this machine,
	// say) is reported and the others are still taken.
	var errs []error
	for _, n := range engineCounts(o, slices.Concat(o.startup, o.oursStartup)) {
		if err := lc.measure(ctx, r, n); err != nil {
			err = fmt.Errorf("%d engines: %w", n, err)
			fmt.Fprintln(os.Stderr, "ipp:", err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// measure starts n engines, takes every measure of that count and stops
// them, also when a measure panics: a cluster left running would skew
// every later measure of the bench and outlive it.
func (l localCluster) measure(ctx context.Context, r *Run, n int) error {
	c, cl, dt, err := l.start(ctx, n)
	if err != nil {
		return err
	}
	defer c.Stop(context.Background())
	defer cl.Close()
	return oursAt(ctx, r, cl, n, dt)
}

// oursAt takes every measure of engine count n on a running cluster.
func oursAt(ctx context.Context, r *Run, cl *ipp.Client, n int, startup time.Duration) error {
	o := r.Opts
	if slices.Contains(o.startup, n) || slices.Contains(o.oursStartup, n) {
		r.Ours[fmt.Sprintf("startup_%d_s", n)] = startup.Seconds()
		fmt.Printf("ipp: %d engines ready in %.3f s\n", n, startup.Seconds())
	}
	if slices.Contains(o.taskSizes, n) {
		count := o.curveTasks
		if n == 2 {
			count = o.tasks
		}
		rate, err := taskRate(ctx, cl, count)
		if err != nil {
			return fmt.Errorf("tasks at %d engines: %w", n, err)
		}
		r.Ours[fmt.Sprintf("lb_tasks_per_s_%d", n)] = rate
		if n == 2 {
			r.Ours["lb_tasks_per_s"] = rate
		}
		fmt.Printf("ipp: %d engines: %d load-balanced no-op tasks, %.0f tasks/s\n", n, count, rate)
	}
	if n == 2 {
		if err := applyLatency(ctx, cl, o.calls, r.Ours); err != nil {
			return fmt.Errorf("apply latency: %w", err)
		}
		fmt.Printf("ipp: direct apply median %.3f ms, p99 %.3f ms\n", r.Ours["apply_median_ms"], r.Ours["apply_p99_ms"])
		if err := oursData(ctx, r, cl); err != nil {
			return err
		}
	}
	if n == 4 && o.scatterMB > 0 {
		if err := oursScatterGather(ctx, r, cl); err != nil {
			return err
		}
	}
	return nil
}

// oursScatterGather scatters -scatter-mb MB over the engines and gathers
// it back, dataRounds times each, and keeps the medians.
func oursScatterGather(ctx context.Context, r *Run, cl *ipp.Client) error {
	mb := r.Opts.scatterMB
	arr := floats(mb)
	var scatters, gathers []time.Duration
	for range dataRounds(mb) {
		t0 := time.Now()
		ar, err := cl.All().Scatter(ctx, "s", arr)
		if err == nil {
			_, err = ar.Get(ctx)
		}
		if err != nil {
			return fmt.Errorf("scatter: %w", err)
		}
		scatters = append(scatters, time.Since(t0))
		t0 = time.Now()
		ar, err = cl.All().Gather(ctx, "s")
		var got any
		if err == nil {
			got, err = ar.Get(ctx)
		}
		if err != nil {
			return fmt.Errorf("gather: %w", err)
		}
		gathers = append(gathers, time.Since(t0))
		if g, ok := got.([]float64); !ok || len(g) != len(arr) || g[len(g)-1] != arr[len(arr)-1] {
			return fmt.Errorf("gather returned %T, not the %d values scattered", got, len(arr))
		}
	}
	r.Ours["scatter_s"], r.Ours["gather_s"] = median(scatters).Seconds(), median(gathers).Seconds()
	fmt.Printf("ipp: scatter %d MB over 4 engines %.3f s, gather %.3f s (medians of %d)\n", mb, r.Ours["scatter_s"], r.Ours["gather_s"], len(scatters))
	return nil
}

// floats returns mb MB of seeded random float64.
func floats(mb int) []float64 {
	arr := make([]float64, mb*1000*1000/8)
	rng := rand.New(rand.NewPCG(uint64(mb), 2))
	for i := range arr {
		arr[i] = rng.Float64()
	}
	return arr
}

// taskRate maps a no-op over count items, one per task, and checks the
// ordered results.
func taskRate(ctx context.Context, cl *ipp.Client, count int) (float64, error) {
	items := make([]int, count)
	for i := range items {
		items[i] = i
	}
	lb := cl.LoadBalanced()
	if ar, err := lb.Apply(ctx, protocol.Noop, 0); err != nil {
		return 0, err
	} else if _, err := ar.Get(ctx); err != nil {
		return 0, err
	}
	t0 := time.Now()
	ar, err := lb.Map(ctx, protocol.Noop, items, ipp.MapOptions{ChunkSize: 1})
	if err != nil {
		return 0, err
	}
	got, err := ipp.GetAll[int](ctx, ar)
	if err != nil {
		return 0, err
	}
	el := time.Since(t0)
	if !slices.Equal(got, items) {
		return 0, fmt.Errorf("load-balanced map returned wrong results")
	}
	return float64(count) / el.Seconds(), nil
}

// applyLatency times calls sequential direct applies on the first engine
// after 20 warm-ups.
func applyLatency(ctx context.Context, cl *ipp.Client, calls int, out results) error {
	v := cl.View(cl.IDs()[0])
	call := func() error {
		ar, err := v.Apply(ctx, protocol.Noop)
		if err != nil {
			return err
		}
		_, err = ar.Get(ctx)
		return err
	}
	for range 20 {
		if err := call(); err != nil {
			return err
		}
	}
	lat := make([]float64, 0, calls)
	for range calls {
		t := time.Now()
		if err := call(); err != nil {
			return err
		}
		lat = append(lat, time.Since(t).Seconds()*1e3)
	}
	slices.Sort(lat)
	out["apply_median_ms"] = percentile(lat, 50)
	out["apply_p99_ms"] = percentile(lat, 99)
	return nil
}

// pushTime pushes arr as "a" to every engine rounds times, and checks the
// length the engines hold; it returns the median time.
func pushTime(ctx context.Context, cl *ipp.Client, arr []float64, rounds int) (time.Duration, error) {
	var times []time.Duration
	for range rounds {
		t0 := time.Now()
		ar, err := cl.All().Push(ctx, map[string]any{"a": arr})
		if err != nil {
			return 0, err
		}
		if _, err := ar.Get(ctx); err != nil {
			return 0, err
		}
		times = append(times, time.Since(t0))
	}
	check, err := cl.All().Apply(ctx, protocol.Eval, "len(a)")
	if err != nil {
		return 0, err
	}
	lens, err := ipp.GetAll[int](ctx, check)
	if err != nil {
		return 0, err
	}
	for _, l := range lens {
		if l != len(arr) {
			return 0, fmt.Errorf("push: engine holds %d values, want %d", l, len(arr))
		}
	}
	return median(times), nil
}

// pullTime pulls "a" back from every engine rounds times; it returns the
// median time.
func pullTime(ctx context.Context, cl *ipp.Client, want []float64, rounds int) (time.Duration, error) {
	var times []time.Duration
	for range rounds {
		t0 := time.Now()
		ar, err := cl.All().Pull(ctx, "a")
		if err != nil {
			return 0, err
		}
		got, err := ipp.GetAll[[]float64](ctx, ar)
		if err != nil {
			return 0, err
		}
		times = append(times, time.Since(t0))
		for _, g := range got {
			if len(g) != len(want) || g[len(g)-1] != want[len(want)-1] {
				return 0, fmt.Errorf("pull: got %d values, want the %d pushed", len(g), len(want))
			}
		}
	}
	return median(times), nil
}

// percentile returns the p-th percentile of sorted xs: the element at
// p % of its length, the last one at most.
func percentile(sorted []float64, p int) float64 {
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

// median returns the middle of times (the upper one of an even count).
func median(times []time.Duration) time.Duration {
	s := slices.Clone(times)
	slices.Sort(s)
	return s[len(s)/2]
}

// dataRounds is how many times a size is pushed and pulled; the median
// counts. Five: on the project's VM one round of 100 MB moves between 0.2
// and 0.6 s on one build (fresh memory, the host's balloon), and the best
// of two, the first of them cold, could not tell a 30 % change from noise
// (docs/large-data.md). One from 1 GB on, which would otherwise take
// minutes of the bench's quarter hour per system. The peer scripts do the
// same (bench/peers).
func dataRounds(mb int) int {
	if mb >= 1000 {
		return 1
	}
	return 5
}

// oursData pushes and pulls each size of -data-mb, the median of
// dataRounds.
func oursData(ctx context.Context, r *Run, cl *ipp.Client) error {
	o := r.Opts
	if len(o.dataMB) == 0 {
		return nil
	}
	all := floats(slices.Max(o.dataMB))
	for _, mb := range o.dataMB {
		arr := all[:mb*1000*1000/8]
		rounds := dataRounds(mb)
		push, err := pushTime(ctx, cl, arr, rounds)
		if err != nil {
			return fmt.Errorf("push %d MB: %w", mb, err)
		}
		pull, err := pullTime(ctx, cl, arr, rounds)
		if err != nil {
			return fmt.Errorf("pull %d MB: %w", mb, err)
		}
		r.Ours[fmt.Sprintf("push_s_%d", mb)] = push.Seconds()
		r.Ours[fmt.Sprintf("pull_s_%d", mb)] = pull.Seconds()
		if mb == o.ratioMB {
			r.Ours["push_s"], r.Ours["pull_s"] = push.Seconds(), pull.Seconds()
		}
		fmt.Printf("ipp: %d MB to 2 engines: push %.3f s, pull %.3f s\n", mb, push.Seconds(), pull.Seconds())
	}
	return nil
}

// measurePeer runs a peer script with Debian's Python in a private
// IPYTHONDIR and reads its JSON: numbers under our keys, "versions" and
// "skipped" (measure -> why the peer could not take it).
func measurePeer(r *Run, name string) error {
	o := r.Opts
	startup := o.startup
	var script string
	switch name {
	case "ipyparallel":
		script = "bench/peers/ipyparallel_peer.py"
	case "dask":
		script, startup = "bench/peers/dask_peer.py", o.daskStartup
		for _, n := range o.startup {
			if !slices.Contains(startup, n) {
				r.Skip(name, fmt.Sprintf("startup_%d_s", n), "not in -dask-startup-sizes (one worker process each; kept out of the default run for time)")
			}
		}
	default:
		return fmt.Errorf("unknown peer %q", name)
	}
	args := []string{script, "--startup-sizes", joinInts(startup), "--task-sizes", joinInts(o.taskSizes),
		"--tasks", strconv.Itoa(o.tasks), "--curve-tasks", strconv.Itoa(o.curveTasks), "--calls", strconv.Itoa(o.calls),
		"--data-mb", joinInts(o.dataMB), "--scatter-mb", strconv.Itoa(o.scatterMB)}
	dir, err := os.MkdirTemp("", "ipp-bench-peer-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("%s: running %s\n", name, strings.Join(args, " "))
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", args...)
	cmd.Env = append(os.Environ(), "IPYTHONDIR="+dir, protocol.EnvNonInteractive+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return err
	}
	res, extra, err := parseJSONLine(out)
	if err != nil {
		return err
	}
	pr := r.Peer(name)
	for k, v := range res {
		pr[k] = v
	}
	if v, ok := pr["lb_tasks_per_s_2"]; ok {
		pr["lb_tasks_per_s"] = v
	}
	if v, ok := pr[fmt.Sprintf("push_s_%d", o.ratioMB)]; ok {
		pr["push_s"] = v
	}
	if v, ok := pr[fmt.Sprintf("pull_s_%d", o.ratioMB)]; ok {
		pr["pull_s"] = v
	}
	var meta struct {
		Versions map[string]string `json:"versions"`
		Skipped  map[string]string `json:"skipped"`
	}
	if json.Unmarshal(extra, &meta) == nil {
		r.Versions[name] = meta.Versions
		for k, why := range meta.Skipped {
			r.Skip(name, k, why)
		}
	}
	fmt.Printf("%s: %d numbers\n", name, len(res))
	return nil
}

// parseJSONLine reads the JSON object a peer script prints as its last
// line: its numbers, and the line itself for the other fields.
func parseJSONLine(out []byte) (results, []byte, error) {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	last := []byte(lines[len(lines)-1])
	var raw map[string]any
	if err := json.Unmarshal(last, &raw); err != nil {
		return nil, nil, fmt.Errorf("%v: %s", err, tail(out, 500))
	}
	r := results{}
	for k, v := range raw {
		if f, ok := v.(float64); ok {
			r[k] = f
		}
	}
	return r, last, nil
}
