package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/fakebatch"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/launchers"
)

// These tests run the real ipcluster, controller and engines against
// internal/fakebatch's qsub/qstat/qdel, bsub/bjobs/bkill and
// condor_submit/condor_q/condor_rm, which print what the real commands
// print (see internal/fakebatch) and run the job scripts here. The
// engines run inside the fake jobs, with the system's job environment.

// fakeSystem is one batch system as these tests drive and check it.
type fakeSystem struct {
	system   string // fakebatch's name
	launcher string // ipcluster's --launcher
	// vars are the job variables an engine prints.
	vars []string
	// want is what engine id prints for vars, in the job jobID.
	want func(jobID string, id int) []string
	// rejected is the system's own refusal (FAKEBATCH_REJECT=1).
	rejected string
	// failed is how a job that failed at once shows in start's error:
	// the queue's own verdict, not the launcher's guess after its grace
	// for jobs missing from the queue ("no longer in the queue").
	failed string
	// held is how a held job shows while start waits (FAKEBATCH_HOLD=1):
	// with the scheduler's reason where the dialect asks for it.
	held string
}

// pbsSubJob is the sub-job id of array index idx in the PBS array job
// "1234[].server".
func pbsSubJob(jobID string, idx int) string {
	return strings.Replace(jobID, "[]", "["+strconv.Itoa(idx)+"]", 1)
}

var fakeSystems = []fakeSystem{
	{
		system: "pbspro", launcher: "pbs",
		vars: []string{"PBS_JOBID", "PBS_ARRAY_INDEX", "PBS_ENVIRONMENT", protocol.EnvEngineIndex},
		// Array indices start at 1 (#PBS -J 1-N); engine ids at 0.
		want: func(job string, id int) []string {
			return []string{pbsSubJob(job, id+1), strconv.Itoa(id + 1), "PBS_BATCH", strconv.Itoa(id)}
		},
		rejected: "qsub: Unknown queue",
		failed:   "GONE (finished)",
		held:     "PENDING",
	},
	{
		system: "torque", launcher: "pbs",
		vars: []string{"PBS_JOBID", "PBS_ARRAYID", "PBS_NP", protocol.EnvEngineIndex},
		want: func(job string, id int) []string {
			return []string{pbsSubJob(job, id+1), strconv.Itoa(id + 1), "1", strconv.Itoa(id)}
		},
		rejected: "qsub: submit error (Unknown queue MSG=requested queue not found)",
		failed:   "GONE (completed)",
		held:     "PENDING",
	},
	{
		system: "lsf", launcher: "lsf",
		vars: []string{"LSB_JOBID", "LSB_JOBINDEX", protocol.EnvEngineIndex},
		want: func(job string, id int) []string {
			return []string{job, strconv.Itoa(id + 1), strconv.Itoa(id)}
		},
		rejected: "Request aborted by esub. Job not submitted.",
		failed:   "FAILED (non-zero exit)",
		held:     "PENDING (Not enough job slot(s))",
	},
	{
		// HTCondor puts no job id in the environment: the proc number
		// reaches the script as its argument ($(Process)), which the
		// template turns into IPP_ENGINE_INDEX.
		system: "htcondor", launcher: "htcondor",
		vars: []string{"BATCH_SYSTEM", protocol.EnvEngineIndex},
		want: func(_ string, id int) []string {
			return []string{"HTCondor", strconv.Itoa(id)}
		},
		rejected: "ERROR: Can't find address of local schedd",
		failed:   "GONE (left the queue)",
		held:     "PENDING",
	},
}

// fakeBatch is an e2e whose PATH starts with the fake commands of one
// system. Debian's gridengine owns /usr/bin/qsub, so first matters.
func fakeBatch(t *testing.T, system string) (*e2e, string) {
	t.Helper()
	e := newE2E(t)
	bin := fakebatch.Install(t, system)
	found := false
	for i, kv := range e.env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			e.env[i], found = "PATH="+bin+string(os.PathListSeparator)+v, true
		}
	}
	if !found {
		e.env = append(e.env, "PATH="+bin)
	}
	// Whatever a failing test leaves behind is stopped before the fake's
	// own cleanup kills the jobs (cleanups run last registered first).
	t.Cleanup(func() {
		if _, err := os.Stat(wire.ClusterFile(e.profile, "")); err == nil {
			e.run("stop")
		}
	})
	return e, bin
}

// with is e with more environment variables for the commands it runs.
func (e *e2e) with(kv ...string) *e2e {
	c := *e
	c.env = append(slices.Clone(e.env), kv...)
	return &c
}

// startArgs are the arguments of a batch start that compute nodes could
// call back to: every address, and a name they can use (loopback, as
// the jobs run here).
func startArgs(launcher string, n int, extra ...string) []string {
	return append([]string{"start", "--launcher", launcher, "-n", strconv.Itoa(n), "--daemonize",
		"--ip", "*", "--location", "127.0.0.1", "--wait-timeout", "60"}, extra...)
}

func fakeJobs(t *testing.T, bin string) []fakebatch.Job {
	t.Helper()
	jobs, err := fakebatch.Jobs(bin)
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

func activeJobs(t *testing.T, bin string) []string {
	t.Helper()
	ids, err := fakebatch.Active(bin)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// enginePrints runs `ipcluster exec code` and returns each engine's
// output line by engine id.
func enginePrints(t *testing.T, e *e2e, code string) map[int]string {
	t.Helper()
	out, _ := e.must(0, "exec", code)
	got := map[int]string{}
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		rest, ok := strings.CutPrefix(line, "[stdout:")
		head, text, ok2 := strings.Cut(rest, "] ")
		n, err := strconv.Atoi(head)
		if !ok || !ok2 || err != nil {
			t.Fatalf("exec output line %q is not \"[stdout:N] text\":\n%s", line, out)
		}
		got[n] += text
	}
	return got
}

// assertAllGone fails unless every pid has exited, allowing the
// processes a moment to finish dying after their job was cancelled.
func assertAllGone(t *testing.T, what string, pids []int) {
	t.Helper()
	testutil.Eventually(t, 15*time.Second, func() bool {
		for _, pid := range pids {
			if launchers.PIDAlive(pid) {
				return false
			}
		}
		return true
	}, "%s %v still running after stop", what, pids)
}

// TestFakeBatchLoopbackRefused: batch engines cannot reach a controller
// bound to loopback, and the fakes cannot list compute hosts to prove
// otherwise, so start refuses before submitting, naming the flags.
func TestFakeBatchLoopbackRefused(t *testing.T) {
	e, bin := fakeBatch(t, "pbspro")
	_, errOut, code := e.run("start", "--launcher", "pbs", "-n", "3", "--daemonize", "--wait-timeout", "60")
	if code == 0 {
		t.Fatalf("start against a loopback controller succeeded:\n%s", errOut)
	}
	for _, want := range []string{"the controller listens on 127.0.0.1 only", "PBS Pro / Torque engines", "--ip='*'", "--location="} {
		if !strings.Contains(errOut, want) {
			t.Errorf("refusal lacks %q:\n%s", want, errOut)
		}
	}
	if jobs := fakeJobs(t, bin); len(jobs) != 0 {
		t.Errorf("refused start submitted jobs: %+v", jobs)
	}
	if _, err := os.Stat(wire.ClusterFile(e.profile, "")); !os.IsNotExist(err) {
		t.Errorf("refused start left its cluster file: %v", err)
	}

	// A controller in a job has the same problem the other way round.
	_, errOut, code = e.run("start", "--controller", "pbs", "--launcher", "pbs", "-n", "1", "--daemonize", "--wait-timeout", "60")
	if code == 0 || !strings.Contains(errOut, "a controller in a PBS Pro / Torque job") || !strings.Contains(errOut, "add --ip='*'") {
		t.Errorf("batch controller on loopback: exit %d\n%s", code, errOut)
	}
	if jobs := fakeJobs(t, bin); len(jobs) != 0 {
		t.Errorf("refused controller start submitted jobs: %+v", jobs)
	}
}

// TestFakeBatchEndToEnd: for each system, 3 engines in one array job
// register as engines 0..2 (array index order), see their job's
// variables, show as RUNNING in list, and stop leaves neither a job in
// the queue nor an engine process.
func TestFakeBatchEndToEnd(t *testing.T) {
	for _, fs := range fakeSystems {
		t.Run(fs.system, func(t *testing.T) {
			e, bin := fakeBatch(t, fs.system)
			_, errOut := e.must(0, startArgs(fs.launcher, 3)...)
			clusterFile := wire.ClusterFile(e.profile, "")
			if !strings.Contains(errOut, "Leaving cluster running: "+clusterFile) {
				t.Errorf("start did not leave the cluster running:\n%s", errOut)
			}
			e.pids = slices.DeleteFunc(recordedPIDs(t, clusterFile), func(p int) bool { return p == 0 })
			if len(e.pids) != 1 {
				t.Errorf("local processes %v, want the controller only", e.pids)
			}
			jobs := fakeJobs(t, bin)
			if len(jobs) != 1 || len(jobs[0].Tasks) != 3 {
				t.Fatalf("fake queue %+v, want one job of 3 tasks", jobs)
			}
			job := jobs[0].ID

			verbs := make([]string, len(fs.vars))
			args := make([]string, len(fs.vars))
			for i, v := range fs.vars {
				verbs[i], args[i] = "|%s", fmt.Sprintf("os.Getenv(%q)", v)
			}
			code := fmt.Sprintf("fmt.Printf(\"%%d%s\\n\", os.Getpid(), %s)", strings.Join(verbs, ""), strings.Join(args, ", "))
			prints := enginePrints(t, e, code)
			if len(prints) != 3 {
				t.Fatalf("engines that answered: %v, want 0, 1, 2", prints)
			}
			var enginePIDs []int
			for id := range 3 {
				f := strings.Split(prints[id], "|")
				pid, err := strconv.Atoi(f[0])
				if err != nil {
					t.Fatalf("engine %d printed %q", id, prints[id])
				}
				enginePIDs = append(enginePIDs, pid)
				if want := fs.want(job, id); !slices.Equal(f[1:], want) {
					t.Errorf("engine %d: %s = %q, want %q", id, strings.Join(fs.vars, ","), f[1:], want)
				}
			}

			rows := e.listRows()
			if len(rows) != 1 || !strings.HasSuffix(rows[0], " "+job+":RUNNING") || !strings.Contains(rows[0], " 3/3 ") {
				t.Errorf("list rows %q, want the job %s RUNNING with 3/3 engines", rows, job)
			}

			e.must(0, "stop")
			if ids := activeJobs(t, bin); len(ids) != 0 {
				t.Errorf("jobs still active in the queue after stop: %v", ids)
			}
			for _, task := range fakeJobs(t, bin)[0].Tasks {
				if !task.Cancelled {
					t.Errorf("task %d ended on its own (exit %d), not cancelled by stop", task.Index, task.Exit)
				}
			}
			assertAllGone(t, "engines", enginePIDs)
			assertAllGone(t, "controller", e.pids)
			if _, err := os.Stat(clusterFile); !os.IsNotExist(err) {
				t.Errorf("cluster file left after stop: %v", err)
			}
		})
	}
}

// TestFakeBatchFaults: a rejected submission shows the system's own text
// and leaves nothing queued; a job that fails at once ends start with its
// output; a held job shows PENDING while start waits, and stop removes it.
func TestFakeBatchFaults(t *testing.T) {
	for _, fs := range fakeSystems {
		t.Run(fs.system, func(t *testing.T) {
			e, bin := fakeBatch(t, fs.system)
			clusterFile := wire.ClusterFile(e.profile, "")

			_, errOut, code := e.with("FAKEBATCH_REJECT=1").run(startArgs(fs.launcher, 3)...)
			if code == 0 || !strings.Contains(errOut, "ipcluster: submitting the ") || !strings.Contains(errOut, fs.rejected) {
				t.Errorf("rejected submission: exit %d, want the scheduler's %q:\n%s", code, fs.rejected, errOut)
			}
			if jobs := fakeJobs(t, bin); len(jobs) != 0 {
				t.Errorf("rejected submission left jobs: %+v", jobs)
			}
			if _, err := os.Stat(clusterFile); !os.IsNotExist(err) {
				t.Errorf("rejected start left its cluster file: %v", err)
			}

			_, errOut, code = e.with("FAKEBATCH_FAIL=1").run(startArgs(fs.launcher, 3)...)
			if code == 0 || !strings.Contains(errOut, "3 of 3 engines ended before registering") ||
				!strings.Contains(errOut, "fakebatch: job failed at once (FAKEBATCH_FAIL)") {
				t.Errorf("job failing at once: exit %d, want its output in the error:\n%s", code, errOut)
			}
			if ids := activeJobs(t, bin); len(ids) != 0 {
				t.Errorf("failed job still active: %v", ids)
			}
			if jobs := fakeJobs(t, bin); len(jobs) != 1 || !strings.Contains(errOut, "job "+jobs[0].ID+" "+fs.failed) {
				t.Errorf("failed job %+v not reported as %q:\n%s", jobs, fs.failed, errOut)
			}

			held, errBuf := startBackground(t, e.with("FAKEBATCH_HOLD=1"), startArgs(fs.launcher, 3)...)
			var heldJob fakebatch.Job
			testutil.Eventually(t, 60*time.Second, func() bool {
				jobs := fakeJobs(t, bin)
				if len(jobs) < 2 {
					return false
				}
				heldJob = jobs[len(jobs)-1]
				return strings.Contains(errBuf.String(), "job "+heldJob.ID+" "+fs.held+"\n")
			}, "start never showed the held job %s:\n%s", fs.held, errBuf)
			if rows := e.listRows(); len(rows) != 1 || !strings.Contains(rows[0], heldJob.ID+":PENDING") {
				t.Errorf("list rows %q, want job %s PENDING", rows, heldJob.ID)
			}
			e.must(0, "stop")
			if ids := activeJobs(t, bin); len(ids) != 0 {
				t.Errorf("held job still in the queue after stop: %v", ids)
			}
			for _, j := range fakeJobs(t, bin) {
				for _, task := range j.Tasks {
					if j.ID == heldJob.ID && !task.Cancelled {
						t.Errorf("held job %s task %d not cancelled by stop: %+v", j.ID, task.Index, task)
					}
				}
			}
			select {
			case err := <-held:
				if err == nil {
					t.Errorf("start succeeded although its job was held and then stopped:\n%s", errBuf)
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("start still waiting a minute after stop:\n%s", errBuf)
			}
		})
	}
}

// startBackground runs ipcluster with args and returns its exit and its
// stderr as it grows.
func startBackground(t *testing.T, e *e2e, args ...string) (<-chan error, *testutil.SyncBuffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Env = e.env
	var errBuf testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &errBuf, &errBuf
	// A daemonized cluster's processes keep the output pipe open.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	result, finished := make(chan error, 1), make(chan struct{})
	go func() {
		result <- cmd.Wait()
		close(finished)
	}()
	t.Cleanup(func() {
		cancel()
		<-finished
	})
	return result, &errBuf
}

// TestFakeBatchController runs the controller itself in a PBS job, and
// the engines in another, as on a cluster whose login node may not run
// long processes.
func TestFakeBatchController(t *testing.T) {
	e, bin := fakeBatch(t, "pbspro")
	e.must(0, startArgs("pbs", 2, "--controller", "pbs")...)
	jobs := fakeJobs(t, bin)
	if len(jobs) != 2 || strings.Contains(jobs[0].ID, "[]") || len(jobs[1].Tasks) != 2 {
		t.Fatalf("fake queue %+v, want the controller's job, then an array of 2", jobs)
	}
	ctlJob, engJob := jobs[0].ID, jobs[1].ID
	prints := enginePrints(t, e, `fmt.Printf("%d|%s\n", os.Getpid(), os.Getenv("PBS_JOBID"))`)
	var pids []int
	for id := range 2 {
		pid, job, _ := strings.Cut(prints[id], "|")
		n, err := strconv.Atoi(pid)
		if err != nil || job != pbsSubJob(engJob, id+1) {
			t.Errorf("engine %d printed %q, want its pid and job %s", id, prints[id], pbsSubJob(engJob, id+1))
		}
		pids = append(pids, n)
	}
	rows := e.listRows()
	if len(rows) != 1 || !strings.Contains(rows[0], ctlJob+":RUNNING") || !strings.Contains(rows[0], engJob+":RUNNING") {
		t.Errorf("list rows %q, want jobs %s and %s RUNNING", rows, ctlJob, engJob)
	}
	// The controller wrote its connection files into the shared profile
	// from inside its job.
	if _, err := os.Stat(filepath.Join(e.profile, "security", "ipcontroller-engine.json")); err != nil {
		t.Errorf("controller job's connection file: %v", err)
	}
	e.must(0, "stop")
	if ids := activeJobs(t, bin); len(ids) != 0 {
		t.Errorf("jobs still active after stop: %v", ids)
	}
	assertAllGone(t, "engines", pids)
}

// TestFakeBatchMPI: with --mpi, PBS (both flavours) and LSF run the
// engines as one MPI job, one task running `mpiexec -n 2` (the real Open
// MPI or MPICH mpiexec, since the fakes run scripts locally): ranks 0 and
// 1 of a world of 2, and stop leaves nothing active.
func TestFakeBatchMPI(t *testing.T) {
	tag := testutil.MPITag()
	if tag == "" {
		testutil.Missing(t, "no MPI installed (pkg-config ompi or mpich): engines could not be MPI ranks")
		return
	}
	for _, fs := range fakeSystems {
		if fs.launcher == "htcondor" {
			continue
		}
		t.Run(fs.system, func(t *testing.T) {
			e, bin := fakeBatch(t, fs.system)
			e.bin = testutil.IPCluster(t, tag)
			e.must(0, startArgs(fs.launcher, 2, "--mpi")...)
			jobs := fakeJobs(t, bin)
			if len(jobs) != 1 || len(jobs[0].Tasks) != 1 {
				t.Fatalf("fake queue %+v, want one job of one task (mpiexec)", jobs)
			}
			prints := enginePrints(t, e, `fmt.Println(mpi.Rank(), mpi.Size())`)
			if prints[0] != "0 2" || prints[1] != "1 2" || len(prints) != 2 {
				t.Errorf("engines printed %v, want ranks 0 and 1 of 2", prints)
			}
			e.must(0, "stop")
			if left := activeJobs(t, bin); len(left) != 0 {
				t.Errorf("jobs still active after stop: %v", left)
			}
		})
	}
}
