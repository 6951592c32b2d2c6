// Command bench measures ipp on this machine beside the peers it replaces,
// Python ipyparallel 7.1 and Dask distributed, run in the same invocation
// so the numbers share a machine and a moment, and writes a report people
// can look at: bench/results/<date>T<time>-<host>/report.md with a chart
// per curve (all systems on one chart), the machine described, the
// issue's ratio table and results.json with every number.
//
//	go run ./bench [-quick] [-only local,slurm,tunnel,...] [-peers ipyparallel,dask]
//	               [-startup-sizes 2,8,32,128] [-ours-startup-sizes 1000] [-dask-startup-sizes 2,8,32]
//	               [-task-sizes 1,2,4,8,32] [-tasks 10000] [-curve-tasks 5000] [-calls 1000]
//	               [-data-mb 1,10,100,1000] [-ratio-mb 100] [-scatter-mb 100]
//	               [-slurm-sizes 4,32] [-db sqlite|memory|none] [-compare old/results.json]
//
// -quick takes few, small points (seconds for us, a few minutes with the
// peers); flags given beside it win. make bench passes $(BENCH_ARGS).
//
// The slurm measures (start to N engines registered by the Slurm launcher)
// need a reachable Slurm: SLURM_CONF, else /tmp/ipp-slurm/etc/slurm.conf
// when it exists; without one they are skipped with a line saying why.
// The tunnel measure goes through $IPP_BENCH_SSH, else host "ci" of
// scripts/sshd.sh; without either it is skipped likewise.
//
// New measures register in registry.go's way. Build bin/ipcluster first
// (make bench does).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ipp-hpc/ipp/internal/protocol"
)

type options struct {
	ipcluster string
	// startup are the engine counts of start → ready for every system;
	// oursStartup are taken for us only (1,000 engines), daskStartup
	// replace startup for Dask (one worker process each).
	startup, oursStartup, daskStartup []int
	// taskSizes are the engine counts of the tasks/s curve; tasks is the
	// count at 2 engines (the ratio row), curveTasks at the others.
	taskSizes         []int
	tasks, curveTasks int
	calls             int
	// dataMB are the push/pull points (MB of float64 to 2 engines);
	// ratioMB is the one of the ratio table.
	dataMB    []int
	ratioMB   int
	scatterMB int
	peers     []string
	out       string
	compare   string
	hwm       int
	burst     int
	// db is the controller's --db ("" = its default, sqlite).
	db string
	// slurmSizes are the engine counts of the Slurm start measure.
	slurmSizes []int
	// only selects groups of measures by name; empty means all.
	only []string
	// thousand is the engine count of the "thousand" group.
	thousand int
}

func main() {
	var o options
	var startup, oursStartup, daskStartup, taskSizes, dataMB, peers, slurmSizes, only string
	var quick bool
	flag.StringVar(&o.ipcluster, "ipcluster", "bin/ipcluster", "the ipcluster binary to benchmark")
	flag.StringVar(&startup, "startup-sizes", "2,8,32,128", "engine counts for start-to-ready, every system")
	flag.StringVar(&startup, "sizes", "2,8,32,128", "same as -startup-sizes (older name)")
	flag.StringVar(&oursStartup, "ours-startup-sizes", "1000", "engine counts for start-to-ready, ours only (empty to skip)")
	flag.StringVar(&daskStartup, "dask-startup-sizes", "2,8,32", "worker counts for Dask's start-to-ready")
	flag.StringVar(&taskSizes, "task-sizes", "1,2,4,8,32", "engine counts for load-balanced tasks/s")
	flag.IntVar(&o.tasks, "tasks", 10000, "load-balanced no-op tasks at 2 engines")
	flag.IntVar(&o.curveTasks, "curve-tasks", 5000, "load-balanced no-op tasks at the other engine counts")
	flag.IntVar(&o.calls, "calls", 1000, "direct apply calls for latency")
	flag.StringVar(&dataMB, "data-mb", "1,10,100,1000", "MB of float64 pushed to and pulled from 2 engines")
	flag.IntVar(&o.ratioMB, "ratio-mb", 100, "the push/pull size of the ratio table")
	flag.IntVar(&o.scatterMB, "scatter-mb", 100, "MB of float64 scattered over and gathered from 4 engines (0 to skip)")
	flag.StringVar(&peers, "peers", "ipyparallel,dask", "peers to run beside us (comma-separated; empty for none)")
	flag.StringVar(&o.out, "out", "bench/results", "directory for the results")
	flag.StringVar(&o.compare, "compare", "", "results json of the run to compare with (default: the newest one in -out)")
	flag.IntVar(&o.hwm, "hwm", 0, "controller --hwm (0: the default)")
	flag.IntVar(&o.burst, "burst", -1, "controller --burst (-1: the default)")
	flag.StringVar(&o.db, "db", "", "controller --db: sqlite, memory or none (empty: the default)")
	flag.StringVar(&slurmSizes, "slurm-sizes", "4,32", "engine counts for start-to-registered under Slurm")
	flag.StringVar(&only, "only", "", "run only these groups of measures (comma-separated; empty for all)")
	flag.BoolVar(&quick, "quick", false, "few small points: a check of the bench, not a measurement")
	flag.IntVar(&o.thousand, "thousand", 1000, "engines of the thousand group (start, exec on all, stop; 0 to skip)")
	flag.Parse()
	if quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		set["startup-sizes"] = set["startup-sizes"] || set["sizes"]
		for name, v := range map[string]string{
			"startup-sizes": "2,4", "ours-startup-sizes": "", "dask-startup-sizes": "2",
			"task-sizes": "1,2", "tasks": "2000", "curve-tasks": "1000", "calls": "200",
			"data-mb": "1,10", "ratio-mb": "10", "scatter-mb": "10", "slurm-sizes": "4", "thousand": "0",
		} {
			if !set[name] {
				if err := flag.Set(name, v); err != nil {
					panic(err)
				}
			}
		}
	}
	o.startup, o.oursStartup, o.daskStartup = parseSizes(startup), parseSizes(oursStartup), parseSizes(daskStartup)
	o.taskSizes, o.dataMB, o.slurmSizes = parseSizes(taskSizes), parseSizes(dataMB), parseSizes(slurmSizes)
	if peers != "" {
		o.peers = strings.Split(peers, ",")
	}
	if o.calls < 1 {
		fmt.Fprintf(os.Stderr, "bench: -calls %d: the apply latency needs at least one call\n", o.calls)
		os.Exit(2)
	}
	if only != "" {
		for _, g := range strings.Split(only, ",") {
			g = strings.TrimSpace(g)
			if !measureByName[g] {
				fmt.Fprintf(os.Stderr, "bench: -only: unknown group %q (have %s)\n", g, strings.Join(measureNames(), ", "))
				os.Exit(2)
			}
			o.only = append(o.only, g)
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

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
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
	start := time.Now().UTC()
	m := describeMachine(exe)
	fmt.Println("machine:", m.summary())
	r := &Run{Opts: o, Exe: exe, Ours: results{}, Peers: map[string]results{}, Floor: results{},
		Notes: map[string]any{"loadavg_start": loadavg()}, Versions: map[string]map[string]string{}}
	for _, ms := range measures {
		if !o.want(ms.Name) {
			continue
		}
		fmt.Printf("bench: %s (load average %s)\n", ms.Name, loadavg())
		if err := ms.Run(r); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", ms.Name, err)
			r.Notes[ms.Name+"_error"] = err.Error()
		}
	}
	r.Notes["loadavg_end"] = loadavg()
	return writeReport(o, r, m, start, time.Since(start))
}
