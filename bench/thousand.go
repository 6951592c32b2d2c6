package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// thousandResult is one run of the issue-10 "1,000 local engines" check,
// done as a user would by hand: `ipcluster start -n N --daemonize`,
// `ipcluster exec 'fmt.Println(1)'`, `ipcluster stop`.
type thousandResult struct {
	// N is the number of engines asked for.
	N int
	// Start is the wall time of `start -n N --daemonize`, which returns
	// once all N engines are registered (it fails otherwise).
	Start time.Duration
	// Exec is the wall time of `exec 'fmt.Println(1)'` on all engines,
	// the client's own start and connection included.
	Exec time.Duration
	// ExecEngines is how many distinct engines printed "1".
	ExecEngines int
	// Stop is the wall time of `ipcluster stop`.
	Stop time.Duration
	// Left are the processes of the cluster still alive after stop (found
	// by the cluster's private IPYTHONDIR in their environment).
	Left []int
	// EngineCPU is the mean CPU time (user + system) each engine had used
	// when exec finished, and ControllerCPU the controller's.
	EngineCPU, ControllerCPU time.Duration
	// LoadBefore is the 1-minute load average when the run began: the
	// machine is shared, so every time above depends on it.
	LoadBefore float64
}

// stdoutOne matches exec's line for an engine that printed 1.
var stdoutOne = regexp.MustCompile(`(?m)^\[stdout:(\d+)\] 1$`)

// measureThousand starts n local engines with the ipcluster binary exe in
// a private IPYTHONDIR, runs one snippet on all of them and stops them,
// timing each step. Whatever happens, it stops the cluster and kills
// what is left before returning, so a failed run never leaves n
// processes behind.
func measureThousand(ctx context.Context, exe string, n int) (thousandResult, error) {
	r := thousandResult{N: n, LoadBefore: loadAverage()}
	dir, err := os.MkdirTemp("", "ipp-bench-thousand-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	ipdir := filepath.Join(dir, "ipython")
	env := append(os.Environ(), "HOME="+dir, "IPYTHONDIR="+ipdir, "IPP_NONINTERACTIVE=1")
	run := func(timeout time.Duration, args ...string) ([]byte, time.Duration, error) {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		cmd := exec.CommandContext(cctx, exe, args...)
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		// The daemonized controller and engines inherit nothing of ours
		// but may keep the pipe a moment: do not wait for them.
		cmd.WaitDelay = 2 * time.Second
		t0 := time.Now()
		err := cmd.Run()
		return out.Bytes(), time.Since(t0), err
	}
	stopped := false
	defer func() {
		if !stopped {
			run(5*time.Minute, "stop")
		}
		for _, pid := range thousandPIDs(ipdir) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}()

	out, took, err := run(10*time.Minute, "start", "-n", strconv.Itoa(n), "--daemonize", "--wait-timeout", "600")
	r.Start = took
	if err != nil {
		return r, fmt.Errorf("ipcluster start -n %d: %v: %s", n, err, tail(out, 2000))
	}
	// --prefix: distinct engines are counted, not lines, so the prefixes
	// exec leaves out in a pipe are asked for.
	out, took, err = run(5*time.Minute, "exec", "--prefix", "fmt.Println(1)")
	r.Exec = took
	seen := map[string]bool{}
	for _, m := range stdoutOne.FindAllSubmatch(out, -1) {
		seen[string(m[1])] = true
	}
	r.ExecEngines = len(seen)
	r.EngineCPU, r.ControllerCPU = clusterCPU(ipdir)
	if err != nil {
		return r, fmt.Errorf("ipcluster exec: %v: %s", err, tail(out, 2000))
	}
	out, took, err = run(10*time.Minute, "stop")
	r.Stop, stopped = took, true
	if err != nil {
		return r, fmt.Errorf("ipcluster stop: %v: %s", err, tail(out, 2000))
	}
	r.Left = thousandPIDs(ipdir)
	if r.ExecEngines != n {
		return r, fmt.Errorf("exec: %d of %d engines printed 1", r.ExecEngines, n)
	}
	if len(r.Left) > 0 {
		return r, fmt.Errorf("stop left %d processes: %v", len(r.Left), r.Left)
	}
	return r, nil
}

// clusterPIDs lists the live processes whose environment names ipdir as
// IPYTHONDIR: the controller and engines of a run, and nothing else.
func thousandPIDs(ipdir string) []int {
	want := []byte("IPYTHONDIR=" + ipdir + "\x00")
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(data, want) {
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && procState(st) == "Z" {
			continue // exited, waiting for its parent
		}
		pids = append(pids, pid)
	}
	return pids
}

// clusterCPU returns the mean CPU time of the engines and the
// controller's, from /proc/<pid>/stat (clock ticks of 10 ms).
func clusterCPU(ipdir string) (engine, controller time.Duration) {
	var total time.Duration
	engines := 0
	for _, pid := range thousandPIDs(ipdir) {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		cpu := procCPU(st)
		switch args := strings.Split(string(cmdline), "\x00"); {
		case len(args) > 1 && args[1] == "engine":
			total += cpu
			engines++
		case len(args) > 1 && args[1] == "controller":
			controller = cpu
		}
	}
	if engines > 0 {
		engine = total / time.Duration(engines)
	}
	return engine, controller
}

// procFields returns the fields of /proc/<pid>/stat after the command
// name (which may hold blanks): state is the first.
func procFields(stat []byte) []string {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(stat[i+1:]))
}

func procState(stat []byte) string {
	if f := procFields(stat); len(f) > 0 {
		return f[0]
	}
	return ""
}

// procCPU is utime + stime (fields 14 and 15 of stat) at 100 ticks/s.
func procCPU(stat []byte) time.Duration {
	f := procFields(stat)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

// loadAverage is the 1-minute load average, or -1.
func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// String is one line for the bench's output.
func (r thousandResult) String() string {
	return fmt.Sprintf("%d engines: start %.1f s, exec %.2f s (%d printed 1), stop %.1f s, %d left; CPU per engine %v, controller %v; load before %.1f",
		r.N, r.Start.Seconds(), r.Exec.Seconds(), r.ExecEngines, r.Stop.Seconds(), len(r.Left),
		r.EngineCPU, r.ControllerCPU, r.LoadBefore)
}

// The thousand group: the check by hand, in every full run since
// it takes about a minute (-thousand 0 or -quick leaves it out).
func init() {
	registerMeasure(Measure{Name: "thousand", Order: 90, Run: func(r *Run) error {
		if r.Opts.thousand <= 0 {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		res, err := measureThousand(ctx, r.Exe, r.Opts.thousand)
		fmt.Println("thousand:", res)
		r.Notes["thousand"] = res
		r.Ours["thousand_start_s"] = res.Start.Seconds()
		r.Ours["thousand_exec_s"] = res.Exec.Seconds()
		r.Ours["thousand_exec_engines"] = float64(res.ExecEngines)
		r.Ours["thousand_stop_s"] = res.Stop.Seconds()
		r.Ours["thousand_left"] = float64(len(res.Left))
		return err
	}})
	registerTarget(Target{Key: "thousand_start_s", Label: "1,000 local engines: start → all registered, s", Absolute: 30})
	registerTarget(Target{Key: "thousand_exec_s", Label: "1,000 local engines: exec on all, s", Absolute: 2})
}
