package testutil

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// jobDeadline bounds a trivial job from submission to its output file; it
// takes about a second on an idle machine.
const jobDeadline = 2 * time.Minute

// run runs a scheduler command with a bounded time and returns its output.
func run(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := Command(ctx, env, name, args...).CombinedOutput()
	return string(out), err
}

// TestSlurmJob submits a one-line batch job with the environment Slurm
// returns, waits for Slurm to report it finished and reads what it wrote.
func TestSlurmJob(t *testing.T) {
	env := Slurm(t)
	dir := t.TempDir()
	out, err := run(t, env, "sbatch", "--parsable", "-J", "ipp-testutil", "-D", dir,
		"-o", filepath.Join(dir, "job-%j.out"), "--wrap", `echo "ipp-slurm-ok $SLURM_JOB_ID"`)
	if err != nil {
		t.Fatalf("sbatch: %v: %s", err, out)
	}
	// --parsable prints "id" or "id;cluster".
	id, _, _ := strings.Cut(strings.TrimSpace(out), ";")
	if !regexp.MustCompile(`^[0-9]+$`).MatchString(id) {
		t.Fatalf("sbatch --parsable printed %q, want a job id", out)
	}
	t.Cleanup(func() { run(t, env, "scancel", id) })

	// squeue forgets a job once it is over; scontrol keeps it for
	// MinJobAge with its final state. Either ends the wait.
	var state string
	Eventually(t, jobDeadline, func() bool {
		q, err := run(t, env, "squeue", "-h", "-j", id, "-o", "%T")
		if err == nil && strings.TrimSpace(q) != "" {
			state = strings.TrimSpace(q)
			return false
		}
		s, _ := run(t, env, "scontrol", "show", "job", id)
		if m := regexp.MustCompile(`JobState=(\S+)`).FindStringSubmatch(s); m != nil {
			state = m[1]
			return state != "PENDING" && state != "RUNNING" && state != "CONFIGURING" && state != "COMPLETING"
		}
		// Neither knows it: it ended longer than MinJobAge ago.
		state = "gone"
		return true
	}, "slurm job %s still not finished (last state %s)", id, latest{&state})
	if state != "COMPLETED" && state != "gone" {
		t.Fatalf("slurm job %s ended %s", id, state)
	}
	want := "ipp-slurm-ok " + id
	checkOutput(t, filepath.Join(dir, "job-"+id+".out"), want)
}

// TestGridEngineJob submits a one-line script with the environment
// GridEngine returns, waits until qstat no longer knows the job and reads
// what it wrote.
func TestGridEngineJob(t *testing.T) {
	env := GridEngine(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "job.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"ipp-sge-ok $JOB_ID\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	outFile := filepath.Join(dir, "job.out")
	args := []string{"-terse", "-N", "ipp-testutil", "-S", "/bin/sh", "-wd", dir, "-o", outFile, "-j", "y", script}
	out, err := run(t, env, "qsub", args...)
	if err != nil && strings.Contains(out, "Error reading answer list from qmaster") {
		// Seen once by hand right after a qmaster start; the job was not
		// queued, so one more submission cannot double it.
		out, err = run(t, env, "qsub", args...)
	}
	if err != nil {
		t.Fatalf("qsub: %v: %s", err, out)
	}
	// -terse prints the job id alone ("id.first-last:step" for arrays).
	id := strings.TrimSpace(out)
	if !regexp.MustCompile(`^[0-9]+$`).MatchString(id) {
		t.Fatalf("qsub -terse printed %q, want a job id", out)
	}
	t.Cleanup(func() { run(t, env, "qdel", id) })

	var last string
	Eventually(t, jobDeadline, func() bool {
		q, err := run(t, env, "qstat", "-j", id)
		last = strings.TrimSpace(q)
		// qstat -j fails for both an unknown job and an unreachable
		// qmaster: only the former ends the wait.
		return err != nil && strings.Contains(q, "do not exist")
	}, "grid engine job %s still known to qstat: %s", id, latest{&last})
	checkOutput(t, outFile, "ipp-sge-ok "+id)
}

// checkOutput waits for path to hold want on a line of its own: the job is
// over, but the file may be written by a daemon that closes it a moment
// after the scheduler records the end.
func checkOutput(t *testing.T, path, want string) {
	t.Helper()
	var got string
	Eventually(t, 30*time.Second, func() bool {
		b, _ := os.ReadFile(path)
		got = string(b)
		for _, line := range strings.Split(got, "\n") {
			if strings.TrimSpace(line) == want {
				return true
			}
		}
		return false
	}, "%s holds %q, want a line %q", path, latest{&got}, want)
}

// latest shows a variable's value when a failure message is formatted,
// not when Eventually is called.
type latest struct{ p *string }

func (l latest) String() string { return *l.p }
