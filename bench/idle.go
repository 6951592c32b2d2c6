package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/internal/procstat"
)

// idleCost is what an idle cluster costs: every process of a 2-engine
// cluster started with `ipcluster start -n 2 --daemonize` and a connected
// Go client (this process), once all are registered and the warm-up is
// over, watched over the same window.
type idleCost struct {
	Engines    []procstat.Idle
	Controller procstat.Idle
	Client     procstat.Idle
}

// idleWarmup is left out of the window: an engine finishes its start-up
// (ready probes, giving back start-up memory) just after it registers.
const idleWarmup = time.Second

// measureIdle starts the cluster under a private HOME and IPYTHONDIR,
// watches it for window and stops it.
func measureIdle(exe string, window time.Duration) (idleCost, error) {
	var cost idleCost
	home, err := os.MkdirTemp("", "ipp-idle-")
	if err != nil {
		return cost, err
	}
	defer os.RemoveAll(home)
	ipydir := filepath.Join(home, "ipython")
	env := append(os.Environ(), "HOME="+home, "IPYTHONDIR="+ipydir)
	ipcluster := func(ctx context.Context, args ...string) error {
		cmd := exec.CommandContext(ctx, exe, args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("ipcluster %v: %w\n%s", args, err, out)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := ipcluster(ctx, "start", "-n", "2", "--daemonize"); err != nil {
		return cost, err
	}
	defer ipcluster(context.Background(), "stop")
	security := filepath.Join(ipydir, "profile_default", "security")
	cl, err := ipp.Connect(ctx, filepath.Join(security, "ipcontroller-client.json"))
	if err != nil {
		return cost, err
	}
	defer cl.Close()
	if err := cl.WaitForEngines(ctx, 2); err != nil {
		return cost, err
	}
	files, err := filepath.Glob(filepath.Join(security, "cluster-*.json"))
	if err != nil || len(files) != 1 {
		return cost, fmt.Errorf("want one cluster file in %s, found %d (%v)", security, len(files), err)
	}
	ctrl, engines, err := clusterPIDs(files[0])
	if err != nil {
		return cost, err
	}
	if len(engines) != 2 {
		return cost, fmt.Errorf("the cluster file lists %d engines, want 2", len(engines))
	}
	time.Sleep(idleWarmup)
	got, err := procstat.Watch(append([]int{ctrl, os.Getpid()}, engines...), window)
	if err != nil {
		return cost, err
	}
	cost.Controller, cost.Client, cost.Engines = got[0], got[1], got[2:]
	return cost, nil
}

// clusterPIDs reads the controller's and the engines' pids from a cluster
// file (ipyparallel's layout, written by launchers.Cluster).
func clusterPIDs(path string) (int, []int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, err
	}
	var f struct {
		Controller struct {
			State struct {
				PID int `json:"pid"`
			} `json:"state"`
		} `json:"controller"`
		Engines struct {
			Sets map[string]struct {
				Engines map[string]struct {
					PID int `json:"pid"`
				} `json:"engines"`
			} `json:"sets"`
		} `json:"engines"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return 0, nil, fmt.Errorf("%s: %w", path, err)
	}
	var engines []int
	for _, set := range f.Engines.Sets {
		for _, e := range set.Engines {
			engines = append(engines, e.PID)
		}
	}
	if f.Controller.State.PID == 0 {
		return 0, nil, fmt.Errorf("%s: no controller pid", path)
	}
	return f.Controller.State.PID, engines, nil
}

// worstEngine is the highest of each engine figure, engine by engine.
func (c idleCost) worstEngine() procstat.Idle {
	var worst procstat.Idle
	for _, e := range c.Engines {
		worst.WakeupsPerSec = max(worst.WakeupsPerSec, e.WakeupsPerSec)
		worst.RSSKB = max(worst.RSSKB, e.RSSKB)
		worst.PSSKB = max(worst.PSSKB, e.PSSKB)
	}
	return worst
}

// addIdle runs the idle measure and records it in r: the worse engine's
// wake-ups and memory, the controller's, and the client's wake-ups (its
// memory is this bench process's, so it is not reported).
func addIdle(exe string, r results) error {
	cost, err := measureIdle(exe, 10*time.Second)
	if err != nil {
		return err
	}
	worst := cost.worstEngine()
	r["idle_engine_wakeups_per_s"] = worst.WakeupsPerSec
	r["idle_engine_rss_mb"] = float64(worst.RSSKB) / 1024
	r["idle_engine_pss_mb"] = float64(worst.PSSKB) / 1024
	r["idle_controller_wakeups_per_s"] = cost.Controller.WakeupsPerSec
	r["idle_controller_rss_mb"] = float64(cost.Controller.RSSKB) / 1024
	r["idle_client_wakeups_per_s"] = cost.Client.WakeupsPerSec
	// The same, from an executable read back from disk: idle RSS depends
	// on how the page cache holds the binary, not only on our code (see
	// evictFromPageCache).
	if err := evictFromPageCache(exe); err != nil {
		return fmt.Errorf("evicting %s from the page cache: %w", exe, err)
	}
	cold, err := measureIdle(exe, 10*time.Second)
	if err != nil {
		return err
	}
	coldWorst := cold.worstEngine()
	r["idle_engine_rss_read_mb"] = float64(coldWorst.RSSKB) / 1024
	r["idle_engine_pss_read_mb"] = float64(coldWorst.PSSKB) / 1024
	fmt.Printf("ipp: idle engine from an executable read from disk: %.1f MB RSS (%.1f MB PSS)\n",
		r["idle_engine_rss_read_mb"], r["idle_engine_pss_read_mb"])
	fmt.Printf("ipp: idle engine %.1f wake-ups/s, %.1f MB RSS (%.1f MB PSS); idle controller %.1f wake-ups/s, %.1f MB RSS; idle Go client %.1f wake-ups/s\n",
		worst.WakeupsPerSec, r["idle_engine_rss_mb"], r["idle_engine_pss_mb"],
		cost.Controller.WakeupsPerSec, r["idle_controller_rss_mb"], cost.Client.WakeupsPerSec)
	return nil
}

// evictFromPageCache drops the cached pages of the executable at path
// that no process maps (POSIX_FADV_DONTNEED), so that the next engines read
// it back from disk. A binary the linker or an installer has just written
// sits in the page cache as large folios, which faults map whole: engines
// started from it show ~14 MB more RSS (all of it shared, clean file pages)
// than engines started from the same binary read from disk (2026-12-07:
// 31.7 against 17.7 MB, PSS 14.6 against 9.9 MB), which is the state of an
// installed binary once its write has left the cache.
func evictFromPageCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

// The idle measure runs after the local group, with its own clusters.
func init() {
	registerMeasure(Measure{Name: "idle", Order: 20, Run: func(r *Run) error { return addIdle(r.Exe, r.Ours) }})
	registerTarget(Target{Key: "idle_engine_wakeups_per_s", Label: "idle engine: wake-ups per second", Absolute: 10})
	registerTarget(Target{Key: "idle_engine_rss_mb", Label: "idle engine: RSS, MB", Absolute: 20})
}
