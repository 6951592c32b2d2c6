// Command bench measures ipp on this machine beside the peers it replaces,
// Python ipyparallel 7.1 (and Dask when installed), run in the same
// invocation so the numbers share a machine and a moment.
//
//	go run ./bench [-sizes 2,8,32] [-tasks 10000] [-calls 1000] [-push-mb 100] [-peers ipyparallel,dask]
//	               [-slurm-sizes 4,32] [-only local,slurm,tunnel] [-db sqlite|memory|none]
//
// The slurm measures (start to N engines registered by the Slurm launcher)
// need a reachable Slurm: SLURM_CONF, else /tmp/ipp-slurm/etc/slurm.conf
// when it exists; without one they are skipped with a line saying why.
//
// The tunnel measure (one apply round trip through an SSH tunnel versus
// direct, on the same cluster) goes through $IPP_BENCH_SSH, else host "ci"
// of scripts/sshd.sh; without either it is skipped likewise.
//
// It prints a table of our numbers, the peers' numbers and the ratios
// against the targets, and writes bench/results/<date>-<host>.{json,md}.
// Build bin/ipcluster first (make bench does).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/internal/protocol"
)

type options struct {
	ipcluster string
	sizes     []int
	tasks     int
	calls     int
	pushMB    int
	peers     []string
	out       string
	hwm       int
	burst     int
	// db is the controller's --db ("" = its default, sqlite).
	db string
	// slurmSizes are the engine counts of the Slurm start measure.
	slurmSizes []int
	// only selects groups of measures: "local" (everything on local
	// engines), "slurm" and "tunnel"; empty means all. "thousand" (the
	// 1,000-engine check, minutes of a saturated machine) runs only
	// when named.
	only []string
	// thousand is the engine count of the "thousand" group.
	thousand int
}

func main() {
	var o options
	var sizes, peers, slurmSizes, only string
	flag.StringVar(&o.ipcluster, "ipcluster", "bin/ipcluster", "the ipcluster binary to benchmark")
	flag.StringVar(&sizes, "sizes", "2,8,32", "cluster sizes for start-to-ready")
	flag.IntVar(&o.tasks, "tasks", 10000, "load-balanced no-op tasks")
	flag.IntVar(&o.calls, "calls", 1000, "direct apply calls for latency")
	flag.IntVar(&o.pushMB, "push-mb", 100, "MB of float64 pushed to 2 engines")
	flag.StringVar(&peers, "peers", "ipyparallel,dask", "peers to run beside us (comma-separated; empty for none)")
	flag.StringVar(&o.out, "out", "bench/results", "directory for the results")
	flag.IntVar(&o.hwm, "hwm", 0, "controller --hwm (0: the default)")
	flag.IntVar(&o.burst, "burst", -1, "controller --burst (-1: the default)")
	flag.StringVar(&o.db, "db", "", "controller --db: sqlite, memory or none (empty: the default)")
	flag.StringVar(&slurmSizes, "slurm-sizes", "4,32", "engine counts for start-to-registered under Slurm")
	flag.StringVar(&only, "only", "", "run only these groups of measures: local, slurm, tunnel, thousand (comma-separated; empty for all but thousand)")
	flag.IntVar(&o.thousand, "thousand", 1000, "engines of the thousand group: start, exec on all, stop")
	flag.Parse()
	o.sizes = parseSizes(sizes)
	o.slurmSizes = parseSizes(slurmSizes)
	if peers != "" {
		o.peers = strings.Split(peers, ",")
	}
	if only != "" {
		for _, g := range strings.Split(only, ",") {
			if g = strings.TrimSpace(g); g != "local" && g != "slurm" && g != "tunnel" && g != "thousand" {
				fmt.Fprintf(os.Stderr, "bench: -only: unknown group %q (have local, slurm, tunnel, thousand)\n", g)
				os.Exit(2)
			}
			o.only = append(o.only, strings.TrimSpace(g))
		}
	}
	if dir := os.Getenv(protocol.EnvCPUProfileDir); dir != "" {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("bench-%d.pprof", os.Getpid())))
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func parseSizes(list string) []int {
	var sizes []int
	for _, s := range strings.Split(list, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && n > 0 {
			sizes = append(sizes, n)
		}
	}
	return sizes
}

func (o options) want(group string) bool {
	return len(o.only) == 0 || slices.Contains(o.only, group)
}

// results maps a measure's name to its value, per system.
type results map[string]float64

func run(o options) error {
	exe, err := filepath.Abs(o.ipcluster)
	if err != nil {
		return err
	}
	if _, err := os.Stat(exe); err != nil {
		return fmt.Errorf("%s not built (run make build): %w", o.ipcluster, err)
	}
	report := map[string]any{"machine": machine(), "when": time.Now().UTC().Format(time.RFC3339)}
	fmt.Println("machine:", report["machine"])

	ours := results{}
	peerResults := map[string]results{}
	if o.want("local") {
		ours, err = measureOurs(o, exe)
		if err != nil {
			return fmt.Errorf("ipp: %w", err)
		}
		for _, p := range o.peers {
			r, err := measurePeer(p, o)
			if err != nil {
				fmt.Fprintf(os.Stderr, "peer %s: %v\n", p, err)
				report[p+"_error"] = err.Error()
				continue
			}
			peerResults[p] = r
		}
	}
	if o.want("slurm") && len(o.slurmSizes) > 0 {
		if conf, err := findSlurm(); err != nil {
			fmt.Printf("bench: skipping the Slurm start measure: %v\n", err)
			report["slurm_skipped"] = err.Error()
		} else {
			fmt.Println("slurm: SLURM_CONF=" + conf)
			measureSlurm(o, exe, conf, ours, peerResults, report)
		}
	}
	if o.want("tunnel") {
		if host, err := findSSH(); err != nil {
			fmt.Printf("bench: skipping the tunnel measure: %v\n", err)
			report["tunnel_skipped"] = err.Error()
		} else if err := measureTunnel(o, exe, host, ours); err != nil {
			fmt.Fprintf(os.Stderr, "bench: tunnel measure: %v\n", err)
			report["tunnel_error"] = err.Error()
		}
	}
	if slices.Contains(o.only, "thousand") {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		r, err := measureThousand(ctx, exe, o.thousand)
		cancel()
		fmt.Println("thousand:", r)
		report["thousand"] = r
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: thousand: %v\n", err)
			report["thousand_error"] = err.Error()
		}
	}
	report["ipp"] = ours
	for p, r := range peerResults {
		report[p] = r
	}
	table := render(o, ours, peerResults)
	fmt.Print(table)
	return save(o.out, report, table)
}

// measureOurs starts clusters with the ipp Cluster API and times the
// same workloads as the peer scripts.
func measureOurs(o options, exe string) (results, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "ipp-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctrlArgs := []string{}
	if o.hwm != 0 {
		ctrlArgs = append(ctrlArgs, "--hwm="+strconv.Itoa(o.hwm))
	}
	if o.burst >= 0 {
		ctrlArgs = append(ctrlArgs, "--burst="+strconv.Itoa(o.burst))
	}
	if o.db != "" {
		ctrlArgs = append(ctrlArgs, "--db="+o.db)
	}
	start := func(n int) (*ipp.Cluster, *ipp.Client, time.Duration, error) {
		t0 := time.Now()
		c, err := ipp.NewCluster(ipp.ClusterOptions{
			N: n, ProfileDir: filepath.Join(dir, "profile_bench"), Logger: quiet,
			ControllerCmd: []string{exe, "controller"}, EngineCmd: []string{exe, "engine"},
			ControllerArgs: ctrlArgs, EngineTimeout: 5 * time.Minute,
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
	r := results{}
	for _, n := range o.sizes {
		if n == 2 {
			continue
		}
		c, cl, dt, err := start(n)
		if err != nil {
			return nil, err
		}
		r[fmt.Sprintf("startup_%d_s", n)] = dt.Seconds()
		fmt.Printf("ipp: %d engines ready in %.3f s\n", n, dt.Seconds())
		cl.Close()
		c.Stop(ctx)
	}
	c, cl, dt, err := start(2)
	if err != nil {
		return nil, err
	}
	defer c.Stop(context.Background())
	defer cl.Close()
	r["startup_2_s"] = dt.Seconds()
	fmt.Printf("ipp: 2 engines ready in %.3f s\n", dt.Seconds())

	// Load-balanced no-op tasks, one item per task, ordered results.
	items := make([]int, o.tasks)
	for i := range items {
		items[i] = i
	}
	lb := cl.LoadBalanced()
	if ar, err := lb.Apply(ctx, protocol.Noop, 0); err != nil {
		return nil, err
	} else if _, err := ar.Get(ctx); err != nil {
		return nil, err
	}
	t0 := time.Now()
	ar, err := lb.Map(ctx, protocol.Noop, items, ipp.MapOptions{ChunkSize: 1})
	if err != nil {
		return nil, err
	}
	got, err := ipp.GetAll[int](ctx, ar)
	if err != nil {
		return nil, err
	}
	el := time.Since(t0)
	if !slices.Equal(got, items) {
		return nil, fmt.Errorf("load-balanced map returned wrong results")
	}
	r["lb_tasks_per_s"] = float64(o.tasks) / el.Seconds()
	fmt.Printf("ipp: %d load-balanced no-op tasks in %.3f s = %.0f tasks/s\n", o.tasks, el.Seconds(), r["lb_tasks_per_s"])

	// Direct apply latency on one engine.
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
			return nil, err
		}
	}
	lat := make([]float64, 0, o.calls)
	for range o.calls {
		t := time.Now()
		if err := call(); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(t).Seconds()*1e3)
	}
	slices.Sort(lat)
	r["apply_median_ms"] = lat[len(lat)/2]
	r["apply_p99_ms"] = lat[len(lat)*99/100]
	fmt.Printf("ipp: direct apply median %.3f ms, p99 %.3f ms\n", r["apply_median_ms"], r["apply_p99_ms"])

	// Push of pushMB of float64 to both engines; best of two.
	arr := make([]float64, o.pushMB*1000*1000/8)
	rng := rand.New(rand.NewPCG(1, 2))
	sum := 0.0
	for i := range arr {
		arr[i] = rng.Float64()
		sum += arr[i]
	}
	best := time.Duration(0)
	for range 2 {
		t0 := time.Now()
		ar, err := cl.All().Push(ctx, map[string]any{"a": arr})
		if err != nil {
			return nil, err
		}
		if err := ar.Wait(ctx); err != nil {
			return nil, err
		}
		if _, err := ar.Get(ctx); err != nil {
			return nil, err
		}
		if d := time.Since(t0); best == 0 || d < best {
			best = d
		}
	}
	check, err := cl.All().Apply(ctx, protocol.Eval, "len(a)")
	if err != nil {
		return nil, err
	}
	lens, err := ipp.GetAll[int](ctx, check)
	if err != nil {
		return nil, err
	}
	for _, l := range lens {
		if l != len(arr) {
			return nil, fmt.Errorf("push: engine holds %d values, want %d", l, len(arr))
		}
	}
	r["push_s"] = best.Seconds()
	fmt.Printf("ipp: push %d MB to 2 engines in %.3f s (sum %.3f)\n", o.pushMB, best.Seconds(), sum)
	return r, nil
}

// measurePeer runs a peer script with Debian's Python in a private
// IPYTHONDIR and reads its JSON.
func measurePeer(name string, o options) (results, error) {
	var args []string
	switch name {
	case "ipyparallel":
		sizes := make([]string, len(o.sizes))
		for i, n := range o.sizes {
			sizes[i] = strconv.Itoa(n)
		}
		args = []string{"bench/peers/ipyparallel_peer.py", "--sizes", strings.Join(sizes, ","),
			"--tasks", strconv.Itoa(o.tasks), "--calls", strconv.Itoa(o.calls), "--push-mb", strconv.Itoa(o.pushMB)}
	case "dask":
		args = []string{"bench/peers/dask_peer.py", "--tasks", strconv.Itoa(o.tasks), "--calls", strconv.Itoa(o.calls)}
	default:
		return nil, fmt.Errorf("unknown peer %q", name)
	}
	dir, err := os.MkdirTemp("", "ipp-bench-peer-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("%s: running %s\n", name, strings.Join(args, " "))
	cmd := exec.Command("/usr/bin/python3", args...)
	cmd.Env = append(os.Environ(), "IPYTHONDIR="+dir, protocol.EnvNonInteractive+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, err
	}
	return parseJSONLine(out)
}

// parseJSONLine reads the numbers of the JSON object a peer script prints
// as its last line.
func parseJSONLine(out []byte) (results, error) {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var raw map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &raw); err != nil {
		return nil, fmt.Errorf("%v: %s", err, out)
	}
	r := results{}
	for k, v := range raw {
		if f, ok := v.(float64); ok {
			r[k] = f
		}
	}
	return r, nil
}

// target is one line of the report: a measure, how the ratio is taken,
// and the goal.
type target struct {
	key, label string
	higher     bool // higher is better (throughput)
	goal       float64
}

var targets = []target{
	{"lb_tasks_per_s", "load-balanced no-op tasks/s", true, 40},
	{"apply_median_ms", "direct apply latency, median ms", false, 10},
	{"apply_p99_ms", "direct apply latency, p99 ms", false, 0},
	{"startup_2_s", "start to 2 engines ready, s", false, 0},
	{"startup_8_s", "start to 8 engines ready, s", false, 0},
	{"startup_32_s", "start to 32 engines ready, s", false, 20},
	{"push_s", "push of float64 to 2 engines, s", false, 2},
	{"tunnel_direct_median_ms", "apply round trip, direct (beside the tunnel), median ms", false, 0},
	{"tunnel_direct_p90_ms", "apply round trip, direct (beside the tunnel), p90 ms", false, 0},
	{"tunnel_apply_median_ms", "apply round trip through an ssh tunnel, median ms", false, 0},
	{"tunnel_apply_p90_ms", "apply round trip through an ssh tunnel, p90 ms", false, 0},
	{"tunnel_added_median_ms", "latency the tunnel adds, median ms", false, 0},
}

// targetsFor adds the Slurm measures of the sizes asked for; the issue's
// target for them is ≥ 10x faster than ipyparallel's Slurm launcher.
func targetsFor(o options) []target {
	ts := slices.Clone(targets)
	for _, n := range o.slurmSizes {
		ts = append(ts,
			target{fmt.Sprintf("slurm_startup_%d_s", n), fmt.Sprintf("Slurm: start to %d MPI engines registered, s", n), false, 10},
			target{fmt.Sprintf("slurm_plain_startup_%d_s", n), fmt.Sprintf("Slurm: start to %d engines registered, without MPI (as ipyparallel's), s", n), false, 10},
			target{fmt.Sprintf("slurm_stop_%d_s", n), fmt.Sprintf("Slurm: stop of %d engines to empty queue, s", n), false, 0})
	}
	return ts
}

func render(o options, ours results, peers map[string]results) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n| measure | ipp | ipyparallel | ratio | target | met | dask |\n|---|---|---|---|---|---|---|\n")
	for _, t := range targetsFor(o) {
		v, ok := ours[t.key]
		if !ok {
			continue
		}
		py, hasPy := peers["ipyparallel"][t.key]
		ratio, met := "", ""
		if hasPy && v > 0 && py > 0 {
			x := py / v
			if t.higher {
				x = v / py
			}
			ratio = fmt.Sprintf("%.1fx", x)
			if t.goal > 0 {
				met = "no"
				if x >= t.goal {
					met = "yes"
				}
			}
		}
		goal := ""
		if t.goal > 0 {
			goal = fmt.Sprintf("≥ %gx", t.goal)
		}
		dk := ""
		if d, ok := peers["dask"][t.key]; ok {
			dk = fmt.Sprintf("%.4g", d)
		}
		fmt.Fprintf(&b, "| %s | %.4g | %s | %s | %s | %s | %s |\n", t.label, v, fmtOpt(py, hasPy), ratio, goal, met, dk)
	}
	fmt.Fprintf(&b, "\nratio: how many times better ipp is (throughput: ours/theirs; times: theirs/ours).")
	if o.want("local") {
		fmt.Fprintf(&b, " %d tasks, %d calls, %d MB push.", o.tasks, o.calls, o.pushMB)
	}
	b.WriteString("\n")
	return b.String()
}

func fmtOpt(v float64, ok bool) string {
	if !ok {
		return ""
	}
	return fmt.Sprintf("%.4g", v)
}

func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		f := strings.Fields(string(b))
		if len(f) > 1 {
			if kb, err := strconv.Atoi(f[1]); err == nil {
				mem = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	distro := "linux"
	if b, err := os.ReadFile("/etc/debian_version"); err == nil {
		distro = "Debian " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%s, %d CPUs (%s)%s, kernel %s, %s", distro, runtime.NumCPU(), cpu, mem, strings.TrimSpace(string(kernel)), runtime.Version())
}

func save(dir string, report map[string]any, table string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	host, _ := os.Hostname()
	base := filepath.Join(dir, time.Now().UTC().Format("2006-01-02T150405")+"-"+host)
	data, err := json.MarshalIndent(report, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(base+".json", data, 0o644); err != nil {
		return err
	}
	md := fmt.Sprintf("# Benchmark %s\n\nMachine: %s\n%s", report["when"], report["machine"], table)
	if err := os.WriteFile(base+".md", []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Println("saved", base+".{json,md}")
	return nil
}
