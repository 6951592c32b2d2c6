package launchers

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/templates"
)

var captureDialects = flag.Bool("capture", false, "TestDialectReal: record the schedulers' answers in testdata/dialects/real-*")

// realRun runs c and, with -capture, records its answer as
// testdata/dialects/real-<system>-<name>.{stdout,stderr,rc}, which
// TestDialectRecorded parses. These files are real outputs of this
// machine's Slurm 22.05 and Son of Grid Engine 8.1.9.
func realRun(t *testing.T, system, name string, c Command) (Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := OSRunner{}.Run(ctx, c)
	t.Logf("%s %s: %s -> rc=%d err=%v\nstdout:\n%s\nstderr:\n%s", system, name, c, res.ExitCode, err, res.Stdout, res.Stderr)
	var ce *CommandError
	if err != nil && !errors.As(err, &ce) {
		t.Fatalf("%s: %v", c, err)
	}
	if *captureDialects {
		base := filepath.Join("testdata", "dialects", "real-"+system+"-"+name)
		os.WriteFile(base+".stdout", res.Stdout, 0o644)
		os.WriteFile(base+".stderr", res.Stderr, 0o644)
		os.WriteFile(base+".rc", []byte(strconv.Itoa(res.ExitCode)+"\n"), 0o644)
	}
	return res, err
}

// TestDialectReal drives the Slurm and Grid Engine dialects against the
// schedulers running on this machine: render, submit, query while pending
// and running, cancel, query after; a rejected submission; compute hosts.
// It finds the schedulers with testutil.Slurm and testutil.GridEngine
// (a loud skip on a laptop, a failure in CI) and cancels every job it
// submits.
func TestDialectReal(t *testing.T) {
	for _, c := range []struct {
		d   *Dialect
		env func(testing.TB) []string
	}{{slurmDialect, testutil.Slurm}, {sgeDialect, testutil.GridEngine}} {
		t.Run(c.d.Name, func(t *testing.T) {
			for _, kv := range c.env(t) {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			realDialect(t, c.d)
		})
	}
}

func realDialect(t *testing.T, d *Dialect) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755) // SGE's execd drops to the job owner; keep it readable
	submit := func(name string, job templates.Job) (string, error) {
		t.Helper()
		script, err := templates.Render("", d.EngineTemplate, job)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name+".sh")
		if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		res, err := realRun(t, d.Name, "submit-"+name, d.Submit(path, script))
		if err != nil {
			return "", fmt.Errorf("%w (stderr %q)", err, res.Stderr)
		}
		return d.ParseSubmit(string(res.Stdout))
	}
	query := func(name string, ids ...string) map[string]JobStatus {
		t.Helper()
		res, err := realRun(t, d.Name, "query-"+name, d.Query(ids))
		got, perr := d.ParseQuery(res, err, ids)
		if perr != nil {
			t.Fatalf("ParseQuery: %v", perr)
		}
		t.Logf("ParseQuery(%s) = %+v", name, got)
		return got
	}
	var submitted []string
	defer func() {
		if len(submitted) > 0 {
			realRun(t, d.Name, "cancel", d.Cancel(submitted))
		}
	}()
	base := templates.Job{
		Name: "ipp-dialect-" + d.Name, N: 2, Output: filepath.Join(dir, "out.log"),
		Command: "sleep 30", Prologue: `echo "index=${IPP_ENGINE_INDEX:-} base=$IPP_ENGINE_ID_BASE"`,
		IDBase: 5,
	}
	if d.Name == "slurm" {
		base.Launch = "srun"
	}
	run, err := submit("run", base)
	if err != nil {
		t.Fatal(err)
	}
	submitted = append(submitted, run)
	// Never runnable: a Slurm job wanting more CPUs than the node has, an
	// SGE job on hold.
	held := base
	held.Name += "-held"
	if d.Name == "slurm" {
		held.CoresPerEngine = 1000
	} else {
		held.Directives = []string{"#$ -h"}
	}
	pend, err := submit("held", held)
	if err != nil {
		t.Fatal(err)
	}
	submitted = append(submitted, pend)

	var last map[string]JobStatus
	testutil.Eventually(t, 60*time.Second, func() bool {
		last = query("poll", run, pend)
		return last[run].State == JobRunning
	}, "job %s never RUNNING: %+v", run, last)
	got := query("running", run, pend)
	if got[run].State != JobRunning || got[pend].State != JobPending || got[pend].Reason == "" {
		t.Errorf("running/held: %+v", got)
	}

	if _, err := realRun(t, d.Name, "cancel", d.Cancel(submitted)); err != nil {
		t.Errorf("cancel: %v", err)
	}
	testutil.Eventually(t, 60*time.Second, func() bool {
		last = query("after-cancel", run, pend)
		return (last[run].State.Finished() || last[run].State == "") && (last[pend].State.Finished() || last[pend].State == "")
	}, "jobs still there after cancel: %+v", last)
	submitted = nil

	// An id the scheduler never knew.
	if got := query("unknown", "987654"); len(got) != 0 {
		t.Errorf("unknown id: %+v", got)
	}

	// Every directive the template can write is accepted by the real
	// scheduler.
	full := base
	full.Name += "-full"
	full.Account, full.QoS, full.Walltime, full.CoresPerEngine, full.WorkDir = "proj1", "normal", "00:05:00", 1, dir
	full.Nodes, full.TasksPerNode = 1, 2
	full.Directives = []string{d.Directive + " -V"}
	if d.Name == "slurm" {
		full.Queue, full.Memory, full.Directives = "debug", "100M", []string{"#SBATCH --comment=full"}
	} else {
		full.Queue, full.Memory = "all.q", "1G"
	}
	fullID, err := submit("full", full)
	if err != nil {
		t.Errorf("all directives: %v", err)
	} else {
		realRun(t, d.Name, "cancel-full", d.Cancel([]string{fullID}))
	}

	bad := base
	bad.Queue = "nosuch"
	if id, err := submit("badqueue", bad); err == nil {
		submitted = append(submitted, id)
		t.Errorf("submission to a missing queue accepted: %s", id)
	}

	// A job that runs to the end: its state afterwards, and the engine
	// index and id base each task saw.
	short := base
	short.Name += "-done"
	short.Output = filepath.Join(dir, "done.log")
	short.Command = "true"
	done, err := submit("done", short)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 60*time.Second, func() bool {
		last = query("finished", done)
		return last[done].State.Finished() || last[done].State == ""
	}, "job %s never finished: %+v", done, last)
	if st := last[done].State; st != JobCompleted && st != "" {
		t.Errorf("finished job: %+v", last[done])
	}
	testutil.Eventually(t, 30*time.Second, func() bool {
		out, _ := os.ReadFile(short.Output)
		if d.Array {
			return strings.Contains(string(out), "index=0 base=5") && strings.Contains(string(out), "index=1 base=5")
		}
		return strings.Contains(string(out), "index= base=5")
	}, "engine index and id base not seen in the job output")

	if d.ComputeHosts != nil {
		hosts, err := d.ComputeHosts(context.Background(), OSRunner{}, "")
		if err != nil || len(hosts) == 0 {
			t.Errorf("ComputeHosts: %v %v", hosts, err)
		}
		host, _ := os.Hostname()
		if !strings.Contains(strings.Join(hosts, " "), host) {
			t.Errorf("ComputeHosts %v lacks this host %s", hosts, host)
		}
		if _, err := d.ComputeHosts(context.Background(), OSRunner{}, "nosuch"); err == nil {
			t.Error("ComputeHosts of a missing queue: no error")
		}
	}
	out, _ := os.ReadFile(base.Output)
	t.Logf("job output:\n%s", out)
}
