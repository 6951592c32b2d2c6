package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

// defaultSlurmConf is where scripts/batch-systems.sh (and the tests) start
// the single-node Slurm when SLURM_CONF is not set.
const defaultSlurmConf = "/tmp/ipp-slurm/etc/slurm.conf"

// findSlurm returns the SLURM_CONF to use, or why Slurm cannot be used:
// the bench must still run on a laptop without one.
func findSlurm() (string, error) {
	conf := os.Getenv("SLURM_CONF")
	if conf == "" {
		if _, err := os.Stat(defaultSlurmConf); err != nil {
			return "", fmt.Errorf("SLURM_CONF is not set and %s does not exist", defaultSlurmConf)
		}
		conf = defaultSlurmConf
	} else if _, err := os.Stat(conf); err != nil {
		// squeue would retry for a minute before saying so.
		return "", fmt.Errorf("SLURM_CONF: %w", err)
	}
	for _, p := range []string{"sbatch", "squeue", "scancel"} {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("%s not on PATH", p)
		}
	}
	// squeue asks slurmctld: a stale slurm.conf whose daemons are gone fails here.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "squeue", "-h", "-o", "%i")
	cmd.Env = append(os.Environ(), "SLURM_CONF="+conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("squeue with SLURM_CONF=%s: %v: %s", conf, err, tail(out, 300))
	}
	return conf, nil
}

// measureSlurm times, for each size, our `ipcluster start --launcher
// slurm --daemonize` and then Python ipyparallel's Slurm launcher (when
// it is among the peers), one after the other so that no two clusters
// share the node. Results go into ours and peers["ipyparallel"].
func measureSlurm(o options, exe, conf string, ours results, peers map[string]results, report map[string]any) {
	runPy := slices.Contains(o.peers, "ipyparallel")
	for _, n := range o.slurmSizes {
		// Slurm start times swing with the node's load (compilers and other
		// clusters beside us): keep it next to the numbers.
		report[fmt.Sprintf("slurm_%d_loadavg", n)] = loadavg()
		fmt.Printf("slurm: %d engines, load average %s\n", n, loadavg())
		// ipyparallel's Slurm engines do not initialise MPI (its batch
		// launchers start engine_cmd without --mpi), ours do by default:
		// time ours both ways, the plain one being the like-for-like.
		if start, _, err := slurmOurs(exe, conf, n, "--srun-args=--mpi=none"); err != nil {
			fmt.Fprintf(os.Stderr, "ipp slurm %d without MPI: %v\n", n, err)
			report[fmt.Sprintf("ipp_slurm_plain_%d_error", n)] = err.Error()
		} else {
			ours[fmt.Sprintf("slurm_plain_startup_%d_s", n)] = start.Seconds()
			fmt.Printf("ipp: slurm start to %d engines (without MPI) registered in %.3f s\n", n, start.Seconds())
		}
		start, stop, err := slurmOurs(exe, conf, n)
		if err != nil {
			fmt.Fprintf(os.Stderr, "ipp slurm %d: %v\n", n, err)
			report[fmt.Sprintf("ipp_slurm_%d_error", n)] = err.Error()
		} else {
			ours[fmt.Sprintf("slurm_startup_%d_s", n)] = start.Seconds()
			ours[fmt.Sprintf("slurm_stop_%d_s", n)] = stop.Seconds()
			fmt.Printf("ipp: slurm start to %d engines registered in %.3f s, stop to empty queue in %.3f s\n", n, start.Seconds(), stop.Seconds())
		}
		if !runPy {
			continue
		}
		r, err := slurmPython(conf, n)
		if err != nil {
			fmt.Fprintf(os.Stderr, "ipyparallel slurm %d: %v\n", n, err)
			report[fmt.Sprintf("ipyparallel_slurm_%d_error", n)] = err.Error()
			continue
		}
		if peers["ipyparallel"] == nil {
			peers["ipyparallel"] = results{}
		}
		for k, v := range r {
			peers["ipyparallel"][k] = v
		}
		peers["ipyparallel"][fmt.Sprintf("slurm_plain_startup_%d_s", n)] = r[fmt.Sprintf("slurm_startup_%d_s", n)]
		fmt.Printf("ipyparallel: slurm start to %d engines registered in %.3f s, stop to empty queue in %.3f s\n",
			n, r[fmt.Sprintf("slurm_startup_%d_s", n)], r[fmt.Sprintf("slurm_stop_%d_s", n)])
	}
}

// slurmEnv is the environment of a measured cluster: a private IPYTHONDIR
// and no IPP_* variable of the caller's that could point it elsewhere.
func slurmEnv(conf, ipythonDir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, protocol.EnvPrefix) && !strings.HasPrefix(kv, "IPYTHONDIR=") && !strings.HasPrefix(kv, "SLURM_CONF=") {
			env = append(env, kv)
		}
	}
	return append(env, "SLURM_CONF="+conf, "IPYTHONDIR="+ipythonDir, protocol.EnvNonInteractive+"=1")
}

// slurmOurs times `ipcluster start --launcher slurm -n n --daemonize` from
// its start to its return (it returns once n engines have registered),
// checks with a client that n engines are there, then times `ipcluster
// stop` until squeue no longer lists the job. A job left queued is
// cancelled and reported as an error.
func slurmOurs(exe, conf string, n int, extra ...string) (start, stop time.Duration, err error) {
	dir, err := os.MkdirTemp("", "ipp-bench-slurm-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	cid := fmt.Sprintf("bench%dn%d", os.Getpid(), n)
	name := "ipengine-" + cid
	env := slurmEnv(conf, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	run := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, exe, args...)
		cmd.Env, cmd.Dir = env, dir
		return cmd.CombinedOutput()
	}
	t0 := time.Now()
	out, startErr := run(append([]string{"start", "--launcher", "slurm", "-n", strconv.Itoa(n), "--daemonize", "--cluster-id", cid}, extra...)...)
	start = time.Since(t0)
	if startErr != nil {
		err = fmt.Errorf("ipcluster start: %v: %s", startErr, tail(out, 2000))
	} else {
		err = checkEngines(ctx, filepath.Join(dir, "profile_default"), cid, n)
	}
	t1 := time.Now()
	if out, stopErr := run("stop", "--cluster-id", cid); stopErr != nil {
		err = errors.Join(err, fmt.Errorf("ipcluster stop: %v: %s", stopErr, tail(out, 2000)))
	}
	left, qerr := waitQueueEmpty(conf, name, time.Minute)
	stop = time.Since(t1)
	err = errors.Join(err, qerr)
	if len(left) > 0 {
		scancel(conf, left)
		err = errors.Join(err, fmt.Errorf("jobs %v still queued a minute after ipcluster stop (scancelled)", left))
	}
	return start, stop, err
}

// checkEngines connects a client and checks that n engines are registered:
// the measure is only meaningful if start returned with all of them.
func checkEngines(ctx context.Context, profileDir, cid string, n int) error {
	cl, err := ipp.ConnectProfile(ctx, profileDir, cid)
	if err != nil {
		return fmt.Errorf("connecting after start: %w", err)
	}
	defer cl.Close()
	if got := len(cl.IDs()); got != n {
		return fmt.Errorf("ipcluster start returned with %d engines registered, want %d", got, n)
	}
	return nil
}

// slurmPython runs bench/peers/ipyparallel_slurm_peer.py for one size in
// a private IPYTHONDIR and reads its JSON.
func slurmPython(conf string, n int) (results, error) {
	script, err := filepath.Abs("bench/peers/ipyparallel_slurm_peer.py")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ipp-bench-slurm-py-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", script, "--sizes", strconv.Itoa(n))
	cmd.Env, cmd.Dir = slurmEnv(conf, dir), dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, tail(stderr.Bytes(), 2000))
	}
	r, _, err := parseJSONLine(out)
	return r, err
}

// waitQueueEmpty polls squeue for jobs named name until none is listed or
// the timeout passes, and returns the ids still listed.
func waitQueueEmpty(conf, name string, timeout time.Duration) ([]string, error) {
	deadline := time.Now().Add(timeout)
	for {
		cmd := exec.Command("squeue", "-h", "-o", "%i", "-n", name)
		cmd.Env = append(os.Environ(), "SLURM_CONF="+conf)
		out, err := cmd.Output()
		if err == nil && len(bytes.TrimSpace(out)) == 0 {
			return nil, nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return nil, fmt.Errorf("squeue -n %s: %w", name, err)
			}
			return strings.Fields(string(out)), nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func scancel(conf string, ids []string) {
	cmd := exec.Command("scancel", ids...)
	cmd.Env = append(os.Environ(), "SLURM_CONF="+conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "scancel %v: %v: %s\n", ids, err, out)
	}
}

// loadavg is the 1-minute load average, or "?" where /proc has none.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

// tail keeps the end of a command's output, where its error is.
func tail(b []byte, max int) string {
	s := strings.TrimSpace(string(b))
	if len(s) > max {
		s = "…" + s[len(s)-max:]
	}
	return s
}
