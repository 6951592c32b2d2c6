package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/launchers"
)

// The tests here drive the MPI-linked ipcluster binary against the real
// single-node Slurm and Grid Engine that scripts/batch-systems.sh starts
// (testutil.Slurm / testutil.GridEngine skip loudly without them, and fail
// with CI=true). Other users may have jobs in the same queues: every test
// uses its own IPYTHONDIR and a cluster id with this process's pid in it,
// and only ever looks at, and cancels, the jobs it submitted itself.

// batchE2E is an e2e whose children reach a scheduler.
type batchE2E struct {
	*e2e
	// system is "slurm" or "sge".
	system string
	// sched is the scheduler's environment (testutil.Slurm/GridEngine).
	sched []string
	// jobs are the ids of every job the test submitted, for the cleanup.
	jobs []string
}

// submittedRe finds the job ids in the launcher's "submitted batch job"
// log lines, which start prints also when it fails later.
var submittedRe = regexp.MustCompile(`msg="submitted batch job" .*?job=(\S+)`)

func newBatchE2E(t *testing.T, system string) *batchE2E {
	t.Helper()
	var sched []string
	switch system {
	case "slurm":
		sched = testutil.Slurm(t)
	case "sge":
		sched = testutil.GridEngine(t)
	default:
		t.Fatalf("unknown system %q", system)
	}
	tag := testutil.MPITag()
	if tag == "" {
		testutil.Missing(t, "no MPI installed (pkg-config ompi or mpich): the engines could not be MPI ranks")
	}
	b := &batchE2E{e2e: newE2E(t), system: system, sched: sched}
	b.bin = testutil.IPCluster(t, tag)
	b.env = append(b.env, sched...)
	// Registered after newE2E's, so it runs first: stop what is ours
	// while the pids newE2E kills are still recorded.
	t.Cleanup(b.cleanup)
	return b
}

// clusterID is unique among the agents sharing the queue.
func (b *batchE2E) clusterID(name string) string {
	return fmt.Sprintf("e2e-%s-%d", name, os.Getpid())
}

// runBatch runs ipcluster and remembers the jobs it submitted.
func (b *batchE2E) runBatch(args ...string) (stdout, stderr string, code int) {
	b.t.Helper()
	stdout, stderr, code = b.run(args...)
	for _, m := range submittedRe.FindAllStringSubmatch(stderr, -1) {
		b.jobs = append(b.jobs, strings.Trim(m[1], `"`))
	}
	return stdout, stderr, code
}

// mustBatch is must for commands that submit jobs.
func (b *batchE2E) mustBatch(want int, args ...string) (string, string) {
	b.t.Helper()
	out, errOut, code := b.runBatch(args...)
	if code != want {
		b.dumpLogs()
		b.t.Fatalf("ipcluster %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, errOut)
	}
	return out, errOut
}

// schedCmd runs a scheduler command and returns its combined output.
func (b *batchE2E) schedCmd(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := testutil.Command(ctx, b.sched, name, args...).CombinedOutput()
	return string(out), err
}

// queued is what the queue shows of job id in its default listing (Slurm:
// pending, running, completing; Grid Engine: everything it still has),
// "" once the job has left it.
func (b *batchE2E) queued(id string) string {
	b.t.Helper()
	if b.system == "sge" {
		out, err := b.schedCmd("qstat")
		if err != nil {
			b.t.Fatalf("qstat: %v\n%s", err, out)
		}
		var lines []string
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == id {
				lines = append(lines, l)
			}
		}
		return strings.Join(lines, "\n")
	}
	out, err := b.schedCmd("squeue", "-h", "-j", id)
	if err != nil {
		// A job Slurm has already forgotten (MinJobAge) is not queued.
		if strings.Contains(out, "Invalid job id") {
			return ""
		}
		b.t.Fatalf("squeue -h -j %s: %v\n%s", id, err, out)
	}
	return strings.TrimSpace(out)
}

// queuedByName lists the jobs named name, whatever their ids: how a
// test checks that nothing was submitted.
func (b *batchE2E) queuedByName(name string) string {
	b.t.Helper()
	if b.system == "sge" {
		out, err := b.schedCmd("qstat", "-j", name)
		if err != nil {
			return "" // "Following jobs do not exist"
		}
		return out
	}
	out, err := b.schedCmd("squeue", "-h", "--states=all", "--name="+name)
	if err != nil {
		b.t.Fatalf("squeue --name=%s: %v\n%s", name, err, out)
	}
	return strings.TrimSpace(out)
}

// cleanup stops what the test left and, as a last resort, cancels its
// own jobs still in the queue.
func (b *batchE2E) cleanup() {
	if files, _ := filepath.Glob(filepath.Join(b.profile, "security", "cluster-*.json")); len(files) > 0 {
		for _, f := range files {
			b.run("stop", "--cluster-id", launchers.ClusterIDFromFile(f), "--stop-grace", "1")
		}
	}
	cancel := "scancel"
	if b.system == "sge" {
		cancel = "qdel"
	}
	for _, id := range b.jobs {
		if q := b.queued(id); q != "" {
			b.t.Logf("cleanup: job %s still queued, cancelling it: %s", id, q)
			if out, err := b.schedCmd(cancel, id); err != nil {
				b.t.Logf("%s %s: %v\n%s", cancel, id, err, out)
			}
		}
	}
}

// recordedJob is a batch job as the cluster file records it.
type recordedJob struct {
	ID     string `json:"id"`
	N      int    `json:"n"`
	Script string `json:"script"`
}

// recordedJobs are the batch jobs of every engine set of a cluster file,
// in the order the sets were started.
func recordedJobs(t *testing.T, path string) []recordedJob {
	t.Helper()
	f, err := launchers.ReadClusterFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var jobs []recordedJob
	for _, id := range f.SetIDs() {
		var set struct{ Jobs []recordedJob }
		if err := json.Unmarshal(f.Engines.Sets[id], &set); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, set.Jobs...)
	}
	return jobs
}

// ownProcesses lists the live processes whose environment has this
// test's IPYTHONDIR: the controller, the job scripts, srun/slurmstepd's
// children and the engines all inherit it, and no one else has it.
func (b *batchE2E) ownProcesses() []string {
	want := []byte("IPYTHONDIR=" + filepath.Dir(b.profile))
	entries, _ := os.ReadDir("/proc")
	var found []string
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "environ"))
		if err != nil || !slices.ContainsFunc(bytes.Split(env, []byte{0}), func(kv []byte) bool { return bytes.Equal(kv, want) }) {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		found = append(found, fmt.Sprintf("%d %s", pid, bytes.ReplaceAll(bytes.TrimRight(cmd, "\x00"), []byte{0}, []byte{' '})))
	}
	return found
}

// checkStopped checks what `stop` must leave: none of the jobs in the
// queue, no process of the cluster, no cluster file.
func (b *batchE2E) checkStopped(cid string, jobs []recordedJob) {
	b.t.Helper()
	for _, j := range jobs {
		if q := b.queued(j.ID); q != "" {
			b.t.Errorf("job %s still queued after stop: %s", j.ID, q)
		}
	}
	if procs := b.ownProcesses(); len(procs) > 0 {
		b.t.Errorf("processes of the cluster left after stop:\n%s", strings.Join(procs, "\n"))
	}
	if _, err := os.Stat(wire.ClusterFile(b.profile, cid)); !os.IsNotExist(err) {
		b.t.Errorf("cluster file left after stop: %v", err)
	}
}

// TestBatchE2ESlurm: `start --launcher slurm -n 4 --daemonize` returns
// with 4 engines that are the 4 MPI ranks of one job step, run an
// allreduce and load-balanced tasks; list shows the job running; stop
// takes it out of the queue and leaves no process behind.
func TestBatchE2ESlurm(t *testing.T) {
	b := newBatchE2E(t, "slurm")
	cid := b.clusterID("slurm")
	began := time.Now()
	b.mustBatch(0, "start", "--launcher", "slurm", "-n", "4", "--daemonize", "--cluster-id", cid, "--wait-timeout", "90")
	t.Logf("start --launcher slurm -n 4 --daemonize: %v", time.Since(began).Round(time.Millisecond))
	clusterFile := wire.ClusterFile(b.profile, cid)
	jobs := recordedJobs(t, clusterFile)
	if len(jobs) != 1 || jobs[0].N != 4 {
		t.Fatalf("recorded jobs %+v, want one job of 4 engines", jobs)
	}
	job := jobs[0].ID

	out, _ := b.must(0, "exec", "--cluster-id", cid, `fmt.Println("R", mpi.Rank(), mpi.Size())`)
	if want := "[stdout:0] R 0 4\n[stdout:1] R 1 4\n[stdout:2] R 2 4\n[stdout:3] R 3 4\n"; byEngine(out) != want {
		t.Errorf("exec of the ranks:\n%s\nwant:\n%s", out, want)
	}
	out, _ = b.must(0, "exec", "--cluster-id", cid, `v, err := mpi.AllreduceInt64(int64(mpi.Rank()+1), mpi.Sum); fmt.Println("S", v, err, os.Getenv("SLURM_JOB_ID"))`)
	if got := strings.Count(out, fmt.Sprintf("S 10 <nil> %s\n", job)); got != 4 {
		t.Errorf("allreduce of rank+1 over 4 ranks of job %s: %d engines saw 10\n%s", job, got, out)
	}

	// Load-balanced tasks through the Go client, calling a function the
	// engines' namespaces define.
	b.must(0, "exec", "--cluster-id", cid, `func where(x int) int { return 100*x + mpi.Rank() }`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := ipp.ConnectProfile(ctx, b.profile, cid)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ids := c.IDs(); !slices.Equal(ids, []int{0, 1, 2, 3}) {
		t.Errorf("engine ids %v, want 0..3", ids)
	}
	items := make([]int, 16)
	for i := range items {
		items[i] = i
	}
	ar, err := c.LoadBalanced().Map(ctx, "where", items)
	if err != nil {
		t.Fatal(err)
	}
	res, err := ipp.GetAll[int](ctx, ar)
	if err != nil {
		t.Fatalf("load-balanced map: %v", err)
	}
	ranks := map[int]int{}
	for i, r := range res {
		if r/100 != i || r%100 > 3 {
			t.Errorf("task %d returned %d, want %d + a rank", i, r, 100*i)
		}
		ranks[r%100]++
	}
	t.Logf("load-balanced tasks per rank: %v", ranks)
	if len(res) != len(items) || len(ranks) < 2 {
		t.Errorf("%d results from ranks %v: want %d spread over several engines", len(res), ranks, len(items))
	}
	c.Close()

	if rows := b.listRows(); !slices.Equal(rows, []string{fmt.Sprintf("default %s True 4/4 Slurm %s:RUNNING", cid, job)}) {
		t.Errorf("list: %q", rows)
	}
	if q := b.queued(job); !strings.Contains(q, " R ") {
		t.Errorf("squeue of running job %s: %q", job, q)
	}

	began = time.Now()
	_, errOut := b.must(0, "stop", "--cluster-id", cid)
	t.Logf("stop: %v", time.Since(began).Round(time.Millisecond))
	if !strings.Contains(errOut, "batch jobs "+job+", gone from the queue") {
		t.Errorf("stop does not name the job:\n%s", errOut)
	}
	b.checkStopped(cid, jobs)
}

// TestBatchE2EGridEngine: the same through a Grid Engine array job: 3
// engines, one per array task, engine i in task i+1.
func TestBatchE2EGridEngine(t *testing.T) {
	b := newBatchE2E(t, "sge")
	cid := b.clusterID("sge")
	began := time.Now()
	b.mustBatch(0, "start", "--launcher", "sge", "-n", "3", "--daemonize", "--cluster-id", cid, "--wait-timeout", "90")
	t.Logf("start --launcher sge -n 3 --daemonize: %v", time.Since(began).Round(time.Millisecond))
	jobs := recordedJobs(t, wire.ClusterFile(b.profile, cid))
	if len(jobs) != 1 || jobs[0].N != 3 {
		t.Fatalf("recorded jobs %+v, want one array job of 3 tasks", jobs)
	}
	job := jobs[0].ID

	out, _ := b.must(0, "exec", "--cluster-id", cid, `fmt.Println("T", os.Getenv("SGE_TASK_ID"), os.Getenv("JOB_ID"))`)
	want := fmt.Sprintf("[stdout:0] T 1 %[1]s\n[stdout:1] T 2 %[1]s\n[stdout:2] T 3 %[1]s\n", job)
	if byEngine(out) != want {
		t.Errorf("exec of the array tasks:\n%s\nwant:\n%s", out, want)
	}
	if rows := b.listRows(); !slices.Equal(rows, []string{fmt.Sprintf("default %s True 3/3 Grid Engine %s:RUNNING", cid, job)}) {
		t.Errorf("list: %q", rows)
	}
	if q := b.queued(job); strings.Count(q, "\n")+1 != 3 {
		t.Errorf("qstat shows %q, want the 3 tasks of job %s", q, job)
	}

	_, errOut := b.must(0, "stop", "--cluster-id", cid)
	if !strings.Contains(errOut, "batch jobs "+job+", gone from the queue") {
		t.Errorf("stop does not name the job:\n%s", errOut)
	}
	b.checkStopped(cid, jobs)
}

// TestBatchE2EGridEngineMPI: with --mpi, an array system runs the engines
// as one MPI job (mpiexec -n 2 in one job of 2 slots of the smp parallel
// environment): one job, no array tasks, a world of 2 ranks.
func TestBatchE2EGridEngineMPI(t *testing.T) {
	b := newBatchE2E(t, "sge")
	cid := b.clusterID("sgempi")
	b.mustBatch(0, "start", "--launcher", "sge", "-n", "2", "--mpi", "--daemonize", "--cluster-id", cid, "--wait-timeout", "90")
	jobs := recordedJobs(t, wire.ClusterFile(b.profile, cid))
	if len(jobs) != 1 || jobs[0].N != 2 {
		t.Fatalf("recorded jobs %+v, want one MPI job of 2 engines", jobs)
	}
	job := jobs[0].ID
	out, _ := b.must(0, "exec", "--cluster-id", cid, `fmt.Println("R", mpi.Rank(), mpi.Size(), os.Getenv("JOB_ID"), os.Getenv("SGE_TASK_ID"))`)
	want := fmt.Sprintf("[stdout:0] R 0 2 %[1]s undefined\n[stdout:1] R 1 2 %[1]s undefined\n", job)
	if byEngine(out) != want {
		t.Errorf("exec on the MPI job's ranks:\n%s\nwant:\n%s", out, want)
	}
	b.must(0, "stop", "--cluster-id", cid)
	b.checkStopped(cid, jobs)
}

// TestBatchE2ESlurmPending: a job that can never start (more CPUs per
// task than the node has) makes start fail at its --wait-timeout with the
// scheduler's reason, and start cancels it.
func TestBatchE2ESlurmPending(t *testing.T) {
	b := newBatchE2E(t, "slurm")
	cid := b.clusterID("pending")
	_, errOut := b.mustBatch(1, "start", "--launcher", "slurm", "-n", "1", "--cores-per-engine", "100", "--wait-timeout", "5", "--daemonize", "--cluster-id", cid)
	if len(b.jobs) != 1 {
		t.Fatalf("submitted jobs %v, want 1\n%s", b.jobs, errOut)
	}
	job := b.jobs[0]
	last := lastLine(errOut)
	if !strings.Contains(last, "did not register within 5s") || !strings.Contains(last, "job "+job+" PENDING (PartitionConfig)") {
		t.Errorf("start's error does not show the pending job and its reason: %q\n%s", last, errOut)
	}
	b.checkStopped(cid, []recordedJob{{ID: job}})
}

// TestBatchE2ESlurmFailedJob: a job that fails before its engines start
// ends start at once with the job's state and its output.
func TestBatchE2ESlurmFailedJob(t *testing.T) {
	b := newBatchE2E(t, "slurm")
	cid := b.clusterID("failed")
	began := time.Now()
	_, errOut := b.mustBatch(1, "start", "--launcher", "slurm", "-n", "2", "--prologue", "echo boom >&2; exit 3", "--wait-timeout", "120", "--daemonize", "--cluster-id", cid)
	took := time.Since(began)
	t.Logf("start with a failing job ended after %v", took.Round(time.Millisecond))
	if took > 60*time.Second {
		t.Errorf("start took %v to notice the failed job (wait timeout 120 s)", took)
	}
	if len(b.jobs) != 1 {
		t.Fatalf("submitted jobs %v, want 1\n%s", b.jobs, errOut)
	}
	msg := errOut[strings.LastIndex(errOut, "ipcluster: "):]
	if !strings.Contains(msg, "job "+b.jobs[0]+" FAILED") || !strings.Contains(msg, "\nboom") {
		t.Errorf("start's error lacks the FAILED state or the job's output:\n%s", msg)
	}
	b.checkStopped(cid, []recordedJob{{ID: b.jobs[0]}})
}

// TestBatchE2ESlurmBadInput: a rejected submission shows sbatch's own
// message, a missing sbatch is named, a directive of another system is
// refused before submitting; nothing is queued by any of them.
func TestBatchE2ESlurmBadInput(t *testing.T) {
	b := newBatchE2E(t, "slurm")
	cid := b.clusterID("bad")
	check := func(what string, wantMsg []string, env []string, args ...string) {
		t.Helper()
		saved := b.env
		b.env = append(slices.Clone(b.env), env...)
		defer func() { b.env = saved }()
		args = append([]string{"start", "--launcher", "slurm", "-n", "1", "--daemonize", "--wait-timeout", "30", "--cluster-id", cid}, args...)
		_, errOut := b.mustBatch(1, args...)
		msg := errOut[strings.LastIndex(errOut, "ipcluster: "):]
		for _, w := range wantMsg {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: error lacks %q:\n%s", what, w, msg)
			}
		}
		if strings.Contains(errOut, "submitted batch job") {
			t.Errorf("%s: a job was submitted:\n%s", what, errOut)
		}
		if q := b.queuedByName("ipengine-" + cid); q != "" {
			t.Errorf("%s: jobs queued: %s", what, q)
		}
		b.checkStopped(cid, nil)
	}
	check("--partition nosuch", []string{"sbatch: error: invalid partition specified: nosuch", "Invalid partition name specified"}, nil,
		"--partition", "nosuch")
	check("no sbatch on PATH", []string{"sbatch", "not on PATH"}, []string{"PATH=" + t.TempDir()})
	check("PBS directive", []string{`--directive "#PBS -l x": Slurm directives start with #SBATCH`}, nil,
		"--directive", "#PBS -l x")
}

// TestBatchE2ESlurmConnectionInfo: engines find the controller through
// IPP_CONNECTION_INFO in the job's environment (default) and through the
// profile's connection file (--no-connection-env).
func TestBatchE2ESlurmConnectionInfo(t *testing.T) {
	b := newBatchE2E(t, "slurm")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"env", nil, "true"},
		{"file", []string{"--no-connection-env"}, "false"},
	} {
		cid := b.clusterID("conn-" + c.name)
		b.mustBatch(0, append([]string{"start", "--launcher", "slurm", "-n", "2", "--daemonize", "--wait-timeout", "90", "--cluster-id", cid}, c.args...)...)
		jobs := recordedJobs(t, wire.ClusterFile(b.profile, cid))
		out, _ := b.must(0, "exec", "--cluster-id", cid, `fmt.Println("env", os.Getenv("IPP_CONNECTION_INFO") != "")`)
		if want := fmt.Sprintf("[stdout:0] env %[1]s\n[stdout:1] env %[1]s\n", c.want); byEngine(out) != want {
			t.Errorf("%s: engines' IPP_CONNECTION_INFO set:\n%s\nwant:\n%s", c.name, out, want)
		}
		b.must(0, "stop", "--cluster-id", cid)
		b.checkStopped(cid, jobs)
	}
}

// TestBatchE2ESlurmEngineSets: a controller alone, then a Slurm engine
// set, then one more that reuses the launcher and its walltime; stop
// removes both jobs.
func TestBatchE2ESlurmEngineSets(t *testing.T) {
	b := newBatchE2E(t, "slurm")
	cid := b.clusterID("sets")
	clusterFile := wire.ClusterFile(b.profile, cid)
	b.must(0, "start", "-n", "0", "--daemonize", "--cluster-id", cid)
	b.mustBatch(0, "engines", "--cluster-id", cid, "--launcher", "slurm", "-n", "2", "--walltime", "10", "--wait-timeout", "90")
	_, errOut := b.mustBatch(0, "engines", "--cluster-id", cid, "-n", "1", "--wait-timeout", "90")
	if !strings.Contains(errOut, "3 engines registered") {
		t.Errorf("second engines:\n%s", errOut)
	}
	jobs := recordedJobs(t, clusterFile)
	if len(jobs) != 2 || jobs[0].N != 2 || jobs[1].N != 1 {
		t.Fatalf("recorded jobs %+v, want a job of 2 engines and one of 1", jobs)
	}
	for _, j := range jobs {
		script, err := os.ReadFile(j.Script)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(script), "\n#SBATCH --time=10\n") {
			t.Errorf("job %s's script has no --time=10:\n%s", j.ID, script)
		}
		out, err := b.schedCmd("scontrol", "show", "job", j.ID)
		if err != nil || !strings.Contains(out, "TimeLimit=00:10:00") {
			t.Errorf("scontrol show job %s: %v, want TimeLimit=00:10:00\n%s", j.ID, err, out)
		}
	}
	want := fmt.Sprintf("default %s True 3/3 Slurm %s:RUNNING %s:RUNNING", cid, jobs[0].ID, jobs[1].ID)
	if rows := b.listRows(); !slices.Equal(rows, []string{want}) {
		t.Errorf("list: %q, want %q", rows, want)
	}
	if out, _ := b.must(0, "exec", "--cluster-id", cid, `fmt.Println(os.Getenv("SLURM_JOB_ID"))`); byEngine(out) != fmt.Sprintf("[stdout:0] %[1]s\n[stdout:1] %[1]s\n[stdout:2] %[2]s\n", jobs[0].ID, jobs[1].ID) {
		t.Errorf("engines' jobs:\n%s", out)
	}
	_, errOut = b.must(0, "stop", "--cluster-id", cid)
	if !strings.Contains(errOut, fmt.Sprintf("batch jobs %s %s, gone from the queue", jobs[0].ID, jobs[1].ID)) {
		t.Errorf("stop:\n%s", errOut)
	}
	b.checkStopped(cid, jobs)
}

// TestBatchE2ESlurmKilledController: after a SIGKILL of the controller,
// the job's engines give up after their controller timeout and the job
// leaves the queue without any stop.
func TestBatchE2ESlurmKilledController(t *testing.T) {
	b := newBatchE2E(t, "slurm")
	cid := b.clusterID("killed")
	clusterFile := wire.ClusterFile(b.profile, cid)
	b.mustBatch(0, "start", "--launcher", "slurm", "-n", "2", "--env", protocol.EnvControllerTimeout+"=3", "--daemonize", "--wait-timeout", "90", "--cluster-id", cid)
	jobs := recordedJobs(t, clusterFile)
	if len(jobs) != 1 {
		t.Fatalf("recorded jobs %+v", jobs)
	}
	ctl := recordedPIDs(t, clusterFile)[0]
	b.pids = append(b.pids, ctl)
	syscall.Kill(ctl, syscall.SIGKILL)
	killed := time.Now()
	testutil.Eventually(t, 60*time.Second, func() bool { return b.queued(jobs[0].ID) == "" },
		"job %s still queued a minute after its controller was killed (engines' controller timeout 3 s)", jobs[0].ID)
	t.Logf("job %s left the queue %v after the controller's SIGKILL", jobs[0].ID, time.Since(killed).Round(time.Millisecond))
	if out, _ := b.schedCmd("squeue", "-h", "--states=all", "-o", "%t %r", "-j", jobs[0].ID); out != "" {
		t.Logf("the job ended as: %s", strings.TrimSpace(out))
	}
	if procs := b.ownProcesses(); len(procs) > 0 {
		t.Errorf("processes left after the job ended:\n%s", strings.Join(procs, "\n"))
	}
	out := readFile(t, filepath.Join(filepath.Dir(jobs[0].Script), strings.TrimSuffix(filepath.Base(jobs[0].Script), ".slurm")+".out"))
	if strings.Count(out, "lost contact with the controller") != 2 {
		t.Errorf("the job's output does not show both engines giving up:\n%s", out)
	}
	_, errOut := b.must(0, "stop", "--cluster-id", cid)
	if !strings.Contains(errOut, "was not running") {
		t.Errorf("stop after the job ended:\n%s", errOut)
	}
	b.checkStopped(cid, jobs)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
