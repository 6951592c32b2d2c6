package testutil

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Where scripts/batch-systems.sh puts the single-node schedulers when the
// environment names none. Tests rely on these fixed places because `go test`
// runs packages in separate processes that the Makefile does not export
// anything to.
const (
	// SlurmBase is the default $SLURM_BASE of scripts/batch-systems.sh.
	SlurmBase = "/tmp/ipp-slurm"
	// SGEBase is the default $SGE_BASE of scripts/batch-systems.sh.
	SGEBase = "/tmp/ipp-sge"
	// SGEBin holds Debian's real Grid Engine commands (/usr/bin has wrappers).
	SGEBin = "/usr/lib/gridengine"
)

// probeTimeout bounds each command that checks a scheduler answers: a
// daemon that is wedged must make the test skip or fail, not hang.
const probeTimeout = 15 * time.Second

// startHint is how to get the schedulers, for skip and failure messages.
const startHint = "scripts/install-deps.sh test && scripts/batch-systems.sh start (as root), or `make services`"

// probes remembers, per scheduler, the outcome of the first check in this
// test process, so that many tests do not each wait on a broken daemon.
var probes struct {
	sync.Mutex
	done map[string]probeResult
}

type probeResult struct {
	env []string
	err error
}

func probeOnce(name string, probe func() ([]string, error)) ([]string, error) {
	probes.Lock()
	defer probes.Unlock()
	if r, ok := probes.done[name]; ok {
		return r.env, r.err
	}
	env, err := probe()
	if probes.done == nil {
		probes.done = map[string]probeResult{}
	}
	probes.done[name] = probeResult{env, err}
	return env, err
}

// Slurm returns the environment additions (KEY=VALUE, to append to
// os.Environ()) with which sbatch, squeue, scontrol and scancel reach a
// running Slurm: $SLURM_CONF when set, else the one of
// scripts/batch-systems.sh. If no Slurm answers, the test is skipped with a
// loud reason, or failed when CI=true.
func Slurm(t testing.TB) []string {
	t.Helper()
	env, err := probeOnce("slurm", probeSlurm)
	if err != nil {
		Missing(t, "no Slurm: %v (start one with %s)", err, startHint)
	}
	return env
}

func probeSlurm() ([]string, error) {
	conf := os.Getenv("SLURM_CONF")
	if conf == "" {
		conf = filepath.Join(SlurmBase, "etc", "slurm.conf")
	}
	if _, err := os.Stat(conf); err != nil {
		return nil, fmt.Errorf("slurm.conf: %w", err)
	}
	for _, cmd := range []string{"sbatch", "squeue", "scontrol", "scancel", "sinfo"} {
		if _, err := exec.LookPath(cmd); err != nil {
			return nil, fmt.Errorf("%s not installed (apt-get install slurm-wlm munge): %w", cmd, err)
		}
	}
	env := []string{"SLURM_CONF=" + conf}
	// The controller answering is not enough: a node that is down or
	// drained accepts jobs that never start.
	out, err := runProbe(env, "sinfo", "-h", "-N", "-o", "%T")
	if err != nil {
		return nil, err
	}
	state := strings.TrimRight(strings.TrimSpace(firstLine(out)), "*~#$@")
	switch state {
	case "idle", "mixed", "allocated", "completing":
		return env, nil
	}
	return nil, fmt.Errorf("SLURM_CONF=%s answers but its node is %q, not idle/mixed/allocated", conf, state)
}

// GridEngine returns the environment additions (KEY=VALUE, to append to
// os.Environ()) with which qsub, qstat and qdel reach a running Grid
// Engine: $SGE_ROOT and $SGE_CELL when set, else the installation of
// scripts/batch-systems.sh; PATH starts with Debian's Grid Engine command
// directory. If no Grid Engine answers, the test is skipped with a loud
// reason, or failed when CI=true.
func GridEngine(t testing.TB) []string {
	t.Helper()
	env, err := probeOnce("sge", probeGridEngine)
	if err != nil {
		Missing(t, "no Grid Engine: %v (start one with %s)", err, startHint)
	}
	return env
}

func probeGridEngine() ([]string, error) {
	root := os.Getenv("SGE_ROOT")
	if root == "" {
		root = filepath.Join(SGEBase, "root")
	}
	cell := os.Getenv("SGE_CELL")
	if cell == "" {
		cell = "default"
	}
	master := filepath.Join(root, cell, "common", "act_qmaster")
	if _, err := os.Stat(master); err != nil {
		return nil, fmt.Errorf("no Grid Engine cell at SGE_ROOT=%s SGE_CELL=%s: %w", root, cell, err)
	}
	path := os.Getenv("PATH")
	if _, err := os.Stat(filepath.Join(SGEBin, "qsub")); err == nil {
		path = SGEBin + string(os.PathListSeparator) + path
	}
	env := []string{"SGE_ROOT=" + root, "SGE_CELL=" + cell, "PATH=" + path}
	for _, cmd := range []string{"qsub", "qstat", "qdel"} {
		if _, err := lookPathIn(cmd, path); err != nil {
			return nil, fmt.Errorf("%s not installed (apt-get install gridengine-master gridengine-exec gridengine-client): %w", cmd, err)
		}
	}
	out, err := runProbe(env, "qstat", "-f")
	if err != nil {
		return nil, err
	}
	// A queue instance line with no state column is one that takes jobs;
	// "au" (alarm, unknown) means its execd is not there.
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 5 && strings.Contains(f[0], "@") {
			return env, nil
		}
	}
	return nil, fmt.Errorf("SGE_ROOT=%s answers but no queue instance is ready:\n%s", root, out)
}

// Command is exec.CommandContext with env (from Slurm or GridEngine) added
// to the process environment and name looked up in env's PATH when it has
// one: exec.Command alone would search the test process's PATH, where
// Debian's /usr/bin wrappers may stand in for the real commands.
func Command(ctx context.Context, env []string, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	if path := envValue(env, "PATH"); path != "" && !strings.Contains(name, "/") {
		if p, err := lookPathIn(name, path); err == nil {
			cmd.Path = p
			cmd.Err = nil
		}
	}
	cmd.WaitDelay = time.Second
	return cmd
}

// runProbe runs a scheduler command with env added, bounded by probeTimeout.
func runProbe(env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	out, err := Command(ctx, env, name, args...).CombinedOutput()
	if ctx.Err() != nil {
		return "", fmt.Errorf("%s %s did not answer within %v", name, strings.Join(args, " "), probeTimeout)
	}
	if err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// lookPathIn finds an executable in the given PATH value.
func lookPathIn(name, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("not found in PATH")
}

// envValue returns the value of key in a KEY=VALUE list, "" if absent.
func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
