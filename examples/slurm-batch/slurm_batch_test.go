package slurmbatch_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/testutil"
)

// The example's scripts against the real single-node Slurm: login.sh run
// as a user would on a login node, job.sh through sbatch. Both build on
// the same client program, whose lines the checks below look for.

// jobDeadline bounds each script: a job that cannot start (node down)
// fails the test instead of hanging it. Both take seconds here.
const jobDeadline = 4 * time.Minute

// setup builds ipcluster (with MPI: the client checks a collective) and
// the client, and returns the environment both scripts need.
func setup(t *testing.T) (env []string, dir string) {
	t.Helper()
	slurm := testutil.Slurm(t)
	tag := testutil.MPITag()
	if tag == "" {
		testutil.Missing(t, "no MPI library (libopenmpi-dev or libmpich-dev): the example's engines are MPI ranks")
	}
	ipcluster := testutil.IPCluster(t, tag)
	dir = t.TempDir()
	client := filepath.Join(dir, "slurm-batch-client")
	if out, err := exec.Command("go", "build", "-o", client, "github.com/ipp-hpc/ipp/examples/slurm-batch/client").CombinedOutput(); err != nil {
		t.Fatalf("building the client: %v\n%s", err, out)
	}
	env = append(append(cleanEnv(), slurm...),
		"IPCLUSTER="+ipcluster,
		"IPP_CLIENT="+client,
		"IPYTHONDIR="+filepath.Join(dir, "ipython"),
	)
	return env, dir
}

// cleanEnv is the test's environment without the variables that would
// steer the scripts or ipcluster elsewhere (a developer's own cluster).
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, protocol.EnvPrefix), strings.HasPrefix(k, "SLURM_"),
			k == "IPYTHONDIR", k == "IPCLUSTER", k == "ENGINES", k == "CLUSTER_ID", k == "IPCLUSTER_ARGS":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// clientLines are what a successful client run prints for n engines.
func clientLines(n int) []*regexp.Regexp {
	return []*regexp.Regexp{
		regexp.MustCompile(fmt.Sprintf(`(?m)^client: %d engines registered`, n)),
		regexp.MustCompile(`(?m)^client: direct view: sum of 1\.\.100 in \d+ parts .* = 5050$`),
		regexp.MustCompile(fmt.Sprintf(`(?m)^client: MPI allreduce over %d ranks \(\w+\): totals \[5050( 5050){%d}\]$`, n, n-1)),
		regexp.MustCompile(`(?m)^client: load-balanced map: sum of squares of 1\.\.100 = 338350, tasks per engine`),
		regexp.MustCompile(`(?m)^client: all checks passed$`),
	}
}

func checkLines(t *testing.T, what, out string, res ...*regexp.Regexp) {
	t.Helper()
	for _, re := range res {
		if !re.MatchString(out) {
			t.Errorf("%s: no line matching %s in:\n%s", what, re, out)
		}
	}
}

// squeue runs squeue with the test's Slurm environment.
func squeue(t *testing.T, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "squeue", args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("squeue %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestSlurmBatchLoginScript(t *testing.T) {
	env, _ := setup(t)
	const n = 4
	cid := fmt.Sprintf("t-login-%d", os.Getpid())
	env = append(env, fmt.Sprintf("ENGINES=%d", n), "CLUSTER_ID="+cid)
	ctx, cancel := context.WithTimeout(context.Background(), jobDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, "./login.sh")
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	text := string(out)
	// Whatever happened, no job of ours may be left (the script checks
	// too; this is the test's own look).
	if left := squeue(t, env, "--noheader", "--name=ipengine-"+cid, "--format=%i %T"); left != "" {
		t.Errorf("jobs left in the queue: %s", left)
		c := exec.Command("scancel", "--name=ipengine-"+cid) // ours only
		c.Env = env
		_ = c.Run()
	}
	if ctx.Err() != nil {
		t.Fatalf("login.sh did not finish within %v:\n%s", jobDeadline, text)
	}
	if err != nil {
		t.Fatalf("login.sh: %v\n%s", err, text)
	}
	checkLines(t, "login.sh", text, append(clientLines(n),
		// list shows the engines' job, running.
		regexp.MustCompile(`(?m)^default\s+`+cid+`\s+True\s+4/4\s+Slurm\s+\d+:RUNNING\s*$`),
		regexp.MustCompile(`(?m)^slurm-batch login: squeue: no job of cluster `+cid+` left$`),
		regexp.MustCompile(`(?m)^slurm-batch login: OK\n?\z`),
	)...)
}

// sbatchJob submits job.sh with env and waits until Slurm reports it
// finished; it returns scontrol's JobState and ExitCode and the job's
// output.
func sbatchJob(t *testing.T, env []string, dir string, ntasks int) (state, exitCode, output string) {
	t.Helper()
	script, err := filepath.Abs("job.sh")
	if err != nil {
		t.Fatal(err)
	}
	outFile := filepath.Join(dir, "job-%j.out")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sbatch", "--parsable", "--output="+outFile, "--chdir="+dir,
		fmt.Sprintf("--ntasks=%d", ntasks), "--time=00:05:00", script)
	cmd.Env = env
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("sbatch: %v", err)
	}
	id, _, _ := strings.Cut(strings.TrimSpace(string(raw)), ";")
	if _, err := fmt.Sscan(id, new(int)); err != nil {
		t.Fatalf("sbatch printed %q, not a job id", raw)
	}
	outFile = strings.ReplaceAll(outFile, "%j", id)
	finished := false
	t.Cleanup(func() {
		if !finished {
			c := exec.Command("scancel", id) // our own job only
			c.Env = env
			_ = c.Run()
		}
	})

	// squeue keeps a finished job for MinJobAge with its final state;
	// an empty answer means it is already gone, which scontrol tells.
	var last string
	testutil.Eventually(t, jobDeadline, func() bool {
		last = squeue(t, env, "--noheader", "--states=all", "--jobs="+id, "--format=%T")
		switch last {
		case "", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "PREEMPTED":
			return true
		}
		return false
	}, "job %s still %q", id, last)
	finished = true

	c := exec.Command("scontrol", "show", "job", id)
	c.Env = env
	info, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("scontrol show job %s: %v\n%s", id, err, info)
	}
	if m := regexp.MustCompile(`\bJobState=(\S+)`).FindSubmatch(info); m != nil {
		state = string(m[1])
	}
	if m := regexp.MustCompile(`\bExitCode=(\S+)`).FindSubmatch(info); m != nil {
		exitCode = string(m[1])
	}
	text, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatalf("job %s (%s, exit %s) left no output file: %v", id, state, exitCode, err)
	}
	return state, exitCode, string(text)
}

func TestSlurmBatchJobScript(t *testing.T) {
	env, dir := setup(t)
	const n = 4
	state, exit, out := sbatchJob(t, env, dir, n)
	if state != "COMPLETED" || exit != "0:0" {
		t.Fatalf("job.sh ended %s with ExitCode %s:\n%s", state, exit, out)
	}
	checkLines(t, "job.sh", out, append(clientLines(n),
		regexp.MustCompile(`(?m)\s+True\s+4/4\s+Srun\s+`),
		regexp.MustCompile(`(?m)^Stopped cluster job-\d+ `),
		regexp.MustCompile(`(?m)^slurm-batch job: OK\n?\z`),
	)...)
}

// TestSlurmBatchJobScriptFails checks that a failing client fails the
// job, with the script's marker, and that the cluster is still stopped.
func TestSlurmBatchJobScriptFails(t *testing.T) {
	env, dir := setup(t)
	env = append(env, "IPP_CLIENT=false")
	state, exit, out := sbatchJob(t, env, dir, 2)
	if state != "FAILED" || exit != "1:0" {
		t.Errorf("job.sh with a failing client ended %s with ExitCode %s, want FAILED 1:0", state, exit)
	}
	checkLines(t, "job.sh", out,
		regexp.MustCompile(`(?m)^slurm-batch job: \+ false -cluster-id job-\d+ -n 2$`),
		regexp.MustCompile(`(?m)^Stopped cluster job-\d+ `),
		regexp.MustCompile(`(?m)^slurm-batch job: FAILED \(exit 1\)\n?\z`),
	)
}
