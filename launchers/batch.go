package launchers

import (
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/templates"
)

// BatchOptions are the settings of every batch-system launcher. Their
// json names are their flag names (see Options).
type BatchOptions struct {
	// Queue is the queue (Slurm: partition) jobs are submitted to.
	Queue string `json:"queue,omitempty"`
	// Account is charged for the jobs.
	Account string `json:"account,omitempty"`
	// QoS is the quality of service (Slurm, LSF's -sla is not this).
	QoS string `json:"qos,omitempty"`
	// Walltime limits each job, in the scheduler's own format
	// ("01:00:00", "90" minutes for Slurm).
	Walltime string `json:"walltime,omitempty"`
	// Memory per job (or per node), in the scheduler's format ("4G").
	Memory string `json:"memory,omitempty"`
	// Nodes and TasksPerNode shape each job (0: the scheduler decides).
	Nodes        int `json:"nodes,omitempty"`
	TasksPerNode int `json:"tasks-per-node,omitempty"`
	// CoresPerEngine is the cores reserved for each engine.
	CoresPerEngine int `json:"cores-per-engine,omitempty"`
	// JobName replaces the default ipengine-<cluster id>.
	JobName string `json:"job-name,omitempty"`
	// Directives are extra scheduler lines, verbatim ("#SBATCH
	// --constraint=haswell").
	Directives []string `json:"directive,omitempty"`
	// Prologue is shell run before the engines (module load ...).
	Prologue string `json:"prologue,omitempty"`
	// EnginesPerJob splits an engine set into jobs of at most this many
	// engines (0: one job for the whole set).
	EnginesPerJob int `json:"engines-per-job,omitempty"`
	// SrunArgs are srun's arguments in Slurm engine jobs; empty picks
	// the MPI plugin the engine binary was built for (--mpi=pmix for
	// Open MPI, --mpi=pmi2 for MPICH).
	SrunArgs []string `json:"srun-args,omitempty"`
	// MPI makes an array system (SGE, PBS, LSF) run each job's engines as
	// one MPI job, `mpiexec -n N` inside one job of N slots, instead of N
	// array tasks. Slurm's engines are always one srun step.
	MPI bool `json:"mpi,omitempty"`
	// Template is a template file used instead of the default (and of
	// the profile's templates/ copy).
	Template string `json:"template,omitempty"`
	// PollSeconds is how often the queue is asked for the jobs' states
	// (default 1 s; squeue answers in milliseconds).
	PollSeconds float64 `json:"poll-seconds,omitempty"`
}

// BindFlags implements Options.
func (o *BatchOptions) BindFlags(fs *pflag.FlagSet) {
	const b = "batch launchers: "
	fs.StringVar(&o.Queue, "queue", "", b+"queue to submit to (Slurm partition)")
	fs.StringVar(&o.Queue, "partition", "", b+"alias of --queue")
	_ = fs.SetAnnotation("partition", optionKeyAnnotation, []string{"queue"})
	fs.StringVar(&o.Account, "account", "", b+"account charged for the jobs")
	fs.StringVar(&o.QoS, "qos", "", b+"quality of service")
	fs.StringVar(&o.Walltime, "walltime", "", b+"time limit of each job, in the scheduler's format (e.g. 01:00:00)")
	fs.StringVar(&o.Memory, "memory", "", b+"memory of each job, in the scheduler's format (e.g. 4G)")
	fs.IntVar(&o.Nodes, "nodes", 0, b+"nodes per job (0: the scheduler decides)")
	fs.IntVar(&o.TasksPerNode, "tasks-per-node", 0, b+"engines per node (0: the scheduler decides)")
	fs.IntVar(&o.CoresPerEngine, "cores-per-engine", 0, b+"cores reserved for each engine")
	fs.StringVar(&o.JobName, "job-name", "", b+"job name (default ipengine-<cluster id>)")
	fs.StringArrayVar(&o.Directives, "directive", nil, b+"extra scheduler line, verbatim (repeatable), e.g. '#SBATCH --constraint=haswell'")
	fs.StringVar(&o.Prologue, "prologue", "", b+"shell commands run in the job before the engines (module load, environment set-up)")
	fs.IntVar(&o.EnginesPerJob, "engines-per-job", 0, b+"split the engines into jobs of at most this many (0: one job)")
	fs.BoolVar(&o.MPI, "mpi", false, b+"SGE, PBS, LSF: run a job's engines as one MPI job (mpiexec -n N in one job of N slots) instead of an array")
	WordsVar(fs, &o.SrunArgs, "srun-args", b+"srun arguments in Slurm jobs (default: the MPI plugin the engine binary needs)")
	fs.StringVar(&o.Template, "template", "", b+"job script template file (see 'ipcluster templates show')")
	fs.Float64Var(&o.PollSeconds, "poll-seconds", 0, b+"how often to ask the scheduler for the jobs' states (default 1)")
}

func (o *BatchOptions) poll() time.Duration {
	if o.PollSeconds <= 0 {
		return time.Second
	}
	return time.Duration(o.PollSeconds * float64(time.Second))
}

// batchJob is one submitted job, as saved in the cluster file.
type batchJob struct {
	ID        string    `json:"id"`
	N         int       `json:"n"`
	IDBase    int       `json:"engine_id_base"`
	Script    string    `json:"script"`
	Output    string    `json:"output_file"`
	Submitted time.Time `json:"submitted"`
	Status    JobStatus `json:"status"`
	// seen is set once the queue has listed the job: from then on,
	// missing from the queue means finished.
	Seen bool `json:"seen,omitempty"`
}

// BatchLauncher runs a controller or an engine set as batch jobs of the
// system its Dialect describes. It renders the dialect's template into a
// script, submits it, and follows the jobs' states by asking the queue,
// at most every PollSeconds, whenever someone asks for its Status. Stop
// cancels the jobs and waits until the queue shows them finished: the
// exit status of scancel & co. says nothing (scancel exits 0 for
// unknown ids), only the queue does.
type BatchLauncher struct {
	d    *Dialect
	kind Kind
	cfg  Config
	opts BatchOptions
	argv []string

	mu        sync.Mutex
	jobs      []*batchJob
	requested int
	lastPoll  time.Time
	polling   bool
	pollErr   error
	stopping  bool
	flavor    string
	// now is the clock (tests replace it).
	now func() time.Time
}

// submitGrace is how long a job may be missing from the queue right
// after its submission before it counts as finished: LSF answers "not
// found" for a moment. Dialects whose submit command is synchronous
// (PBS, HTCondor) report a missing job as JobGone themselves instead.
const submitGrace = 15 * time.Second

// NewBatchLauncher returns a launcher of kind for the system d.
func NewBatchLauncher(d *Dialect, kind Kind, cfg Config) (*BatchLauncher, error) {
	if cfg.ProfileDir == "" {
		return nil, errors.New("launchers: no profile directory")
	}
	role := EngineRole
	if kind == KindController {
		role = ControllerRole
	}
	argv := slices.Clone(cfg.Command)
	if len(argv) == 0 {
		var err error
		if argv, err = DefaultCommand(role); err != nil {
			return nil, err
		}
	}
	argv = append(argv, cfg.Args...)
	if kind == KindEngines {
		argv = withClusterArgs(argv, cfg.ProfileDir, cfg.ClusterID)
	}
	b := &BatchLauncher{d: d, kind: kind, cfg: cfg, argv: argv, now: time.Now}
	if o, ok := cfg.Options.(*BatchOptions); ok && o != nil {
		b.opts = *o
	}
	return b, nil
}

// Dialect is the batch system this launcher drives.
func (b *BatchLauncher) Dialect() *Dialect { return b.d }

// Start implements Launcher: it submits the jobs for n engines (one
// controller for a controller launcher), split by EnginesPerJob. If a
// submission fails, the jobs already submitted are cancelled, and the
// error carries the scheduler's own message.
func (b *BatchLauncher) Start(ctx context.Context, n int) error {
	if b.kind == KindController {
		if n > 1 {
			return fmt.Errorf("a controller launcher starts one controller, not %d", n)
		}
		n = 1
	}
	if n < 1 {
		return fmt.Errorf("cannot start %d engines", n)
	}
	b.mu.Lock()
	started := len(b.jobs) > 0
	b.mu.Unlock()
	if started {
		return errors.New("batch launcher already started")
	}
	if err := b.checkOptions(); err != nil {
		return err
	}
	if err := b.checkReachable(ctx); err != nil {
		return err
	}
	if b.d.Flavor != nil {
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		b.flavor, _ = b.d.Flavor(fctx, b.cfg.runner())
		cancel()
	}
	b.requested = n
	per := n
	if b.kind == KindEngines && b.opts.EnginesPerJob > 0 {
		per = b.opts.EnginesPerJob
	}
	for i, base := 0, 0; base < n; i, base = i+1, base+per {
		k := min(per, n-base)
		job, err := b.submit(ctx, i, k, base)
		if err != nil {
			if stopErr := b.Stop(context.WithoutCancel(ctx)); stopErr != nil {
				err = errors.Join(err, fmt.Errorf("cancelling the jobs already submitted: %w", stopErr))
			}
			return err
		}
		b.mu.Lock()
		b.jobs = append(b.jobs, job)
		b.mu.Unlock()
		b.cfg.logger().Info("submitted batch job", "system", b.d.Title, "job", job.ID, "engines", k, "script", job.Script)
	}
	return nil
}

// checkOptions refuses settings that would break the script: a
// directive of another system (an HTCondor line without #CONDOR would run
// as a shell command), and paths with blanks, which directives cannot
// quote.
func (b *BatchLauncher) checkOptions() error {
	o := b.opts
	if o.MPI && b.kind == KindEngines && (!b.d.Array || b.d.Name == "htcondor") {
		return fmt.Errorf("--mpi is for array systems (SGE, PBS, LSF); %s engines %s", b.d.Title, map[bool]string{true: "cannot be one MPI job here", false: "are always one srun step, MPI-aware already"}[b.d.Array])
	}
	for name, v := range map[string]string{"queue": o.Queue, "account": o.Account, "qos": o.QoS, "walltime": o.Walltime,
		"memory": o.Memory, "job-name": o.JobName, "srun-args": strings.Join(o.SrunArgs, " ")} {
		// One value, one directive line: a newline would start a line of
		// shell in the script.
		if strings.ContainsAny(v, "\n\r") {
			return fmt.Errorf("--%s %q: a newline would end the directive and start a shell command", name, v)
		}
	}
	for _, d := range b.opts.Directives {
		if strings.ContainsAny(d, "\n\r") {
			return fmt.Errorf("--directive %q: one directive per flag, without newlines", d)
		}
		if b.d.Directive != "" && !strings.HasPrefix(strings.TrimSpace(d), b.d.Directive) {
			return fmt.Errorf("--directive %q: %s directives start with %s", d, b.d.Title, b.d.Directive)
		}
	}
	for what, p := range map[string]string{"profile directory": b.cfg.ProfileDir, "working directory": b.workDir()} {
		if strings.ContainsAny(p, " \t\n") {
			return fmt.Errorf("the %s %q contains blanks, which %s directives cannot quote", what, p, b.d.Title)
		}
	}
	return nil
}

// name is the base of the job's files and default job name.
func (b *BatchLauncher) name() string {
	if b.kind == KindController {
		return joinNonEmpty("-", "ipcontroller", b.cfg.ClusterID)
	}
	return joinNonEmpty("-", "ipengine", b.cfg.ClusterID)
}

// submit renders and submits job i of k engines whose first engine is
// engine base of the set.
func (b *BatchLauncher) submit(ctx context.Context, i, k, base int) (*batchJob, error) {
	logDir := wire.LogDir(b.cfg.ProfileDir)
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return nil, err
	}
	stem := filepath.Join(logDir, joinNonEmpty("-", b.name(), b.cfg.EngineSetID, strconv.Itoa(i)))
	job := &batchJob{N: k, IDBase: b.cfg.EngineIDBase + base, Script: stem + "." + b.d.Name, Output: stem + ".out"}
	data := templates.Job{
		Name:           b.opts.JobName,
		N:              k,
		Queue:          b.opts.Queue,
		Account:        b.opts.Account,
		QoS:            b.opts.QoS,
		Walltime:       b.opts.Walltime,
		Memory:         b.opts.Memory,
		Nodes:          b.opts.Nodes,
		TasksPerNode:   b.opts.TasksPerNode,
		CoresPerEngine: b.opts.CoresPerEngine,
		Output:         job.Output,
		WorkDir:        b.workDir(),
		Directives:     b.opts.Directives,
		Prologue:       b.opts.Prologue,
		Command:        ShellQuote(b.argv...),
		IDBase:         job.IDBase,
		Flavor:         b.flavor,
		Env: map[string]string{
			protocol.EnvProfileDir: ShellQuote(b.cfg.ProfileDir),
			protocol.EnvClusterID:  ShellQuote(b.cfg.ClusterID),
		},
	}
	if data.Name == "" {
		data.Name = b.name()
	}
	switch {
	case b.kind == KindEngines && !b.d.Array:
		data.Launch = ShellQuote(b.srunArgs()...)
	case b.kind == KindEngines && b.opts.MPI:
		// The templates read a Launch as "one job of N slots".
		data.Launch = ShellQuote("mpiexec", "-n", strconv.Itoa(k))
	}
	tmpl := b.d.EngineTemplate
	if b.kind == KindController {
		tmpl = b.d.ControllerTemplate
		data.Launch = ""
	}
	var script string
	var err error
	if b.opts.Template != "" {
		script, err = templates.RenderFile(b.opts.Template, data)
	} else {
		script, err = templates.Render(b.cfg.ProfileDir, tmpl, data)
	}
	if err != nil {
		return nil, fmt.Errorf("%s job script: %w", b.d.Title, err)
	}
	if err := os.WriteFile(job.Script, []byte(script), 0o700); err != nil {
		return nil, err
	}
	cmd := b.d.Submit(job.Script, script)
	cmd.Env = b.cfg.Environ(b.submitEnv())
	cmd.Dir = b.workDir()
	res, err := b.cfg.runner().Run(ctx, cmd)
	if err != nil {
		return nil, fmt.Errorf("submitting the %s job (%s): %w", b.d.Title, cmd, err)
	}
	if job.ID, err = b.d.ParseSubmit(string(res.Stdout)); err != nil {
		return nil, fmt.Errorf("submitting the %s job (%s): %w", b.d.Title, cmd, err)
	}
	job.Submitted = b.now()
	job.Status = JobStatus{ID: job.ID, State: JobSubmitted}
	return job, nil
}

// submitEnv is what the submit command adds to our environment: the job
// inherits it (every template propagates the environment).
func (b *BatchLauncher) submitEnv() map[string]string {
	extra := map[string]string{}
	if b.kind == KindEngines {
		extra = b.cfg.engineEnv()
	}
	maps.Copy(extra, b.d.SubmitEnv)
	if b.kind == KindEngines && b.opts.MPI {
		// What the mpiexec launcher sets for Open MPI as root (the job
		// inherits the submitter's environment); other MPIs ignore it.
		extra[protocol.EnvMPISize] = "" // per job: mpiexec's own count is the size
		if os.Geteuid() == 0 {
			for _, k := range []string{"OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"} {
				if _, ok := os.LookupEnv(k); !ok {
					extra[k] = "1"
				}
			}
		}
	}
	return extra
}

func (b *BatchLauncher) workDir() string {
	if b.cfg.WorkDir != "" {
		return b.cfg.WorkDir
	}
	if wd, err := os.Getwd(); err == nil {
		return wd
	}
	return b.cfg.ProfileDir
}

// srunArgs is the command that starts a Slurm job's engines.
func (b *BatchLauncher) srunArgs() []string {
	args := []string{"srun"}
	if len(b.opts.SrunArgs) > 0 {
		return append(args, b.opts.SrunArgs...)
	}
	switch mpiFlavorOf(b.argv[0]) {
	case "ompi":
		args = append(args, "--mpi=pmix")
	case "mpich":
		args = append(args, "--mpi=pmi2")
	}
	return args
}

// mpiFlavorOf reads which MPI a Go program was built with from its build
// tags ("ompi", "mpich", or "" for none or not a Go program).
func mpiFlavorOf(path string) string {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, s := range bi.Settings {
		if s.Key != "-tags" {
			continue
		}
		for tag := range strings.SplitSeq(s.Value, ",") {
			if tag == "ompi" || tag == "mpich" {
				return tag
			}
		}
	}
	return ""
}

// checkReachable refuses to start engines (or a controller) on other
// hosts when the controller listens on loopback only: they would never
// register, and the job would hold nodes until a timeout.
func (b *BatchLauncher) checkReachable(ctx context.Context) error {
	var host string
	if b.kind == KindEngines {
		raw := b.cfg.ConnectionInfo
		if len(raw) == 0 {
			var err error
			if raw, err = os.ReadFile(wire.EngineFile(b.cfg.ProfileDir, b.cfg.ClusterID)); err != nil {
				return fmt.Errorf("reading the controller's connection file: %w", err)
			}
		}
		var info struct {
			Interface string `json:"interface"`
		}
		if err := json.Unmarshal(raw, &info); err != nil {
			return fmt.Errorf("reading the controller's connection info: %w", err)
		}
		host = strings.TrimPrefix(info.Interface, "tcp://")
	} else {
		host = argValue(b.argv, "--ip")
		if host == "" {
			host = "127.0.0.1"
		}
	}
	if !isLoopback(host) {
		return nil
	}
	local, hosts, err := b.computeHostsLocal(ctx)
	if err != nil {
		return err
	}
	if local {
		return nil
	}
	where := "other hosts"
	if len(hosts) > 0 {
		where = "hosts " + strings.Join(hosts, ", ")
	}
	if b.kind == KindController {
		return fmt.Errorf("a controller in a %s job runs on %s, and would listen on %s only, where this host cannot reach it: add --ip='*' (or --ip=<the node's address>) to ipcluster start", b.d.Title, where, host)
	}
	return fmt.Errorf("the controller listens on %s only, which %s engines on %s cannot reach: restart it with --ip='*' (or --ip=<this host's address on the cluster network>) and, if compute nodes must use another name for this host, --location=<that name>", host, b.d.Title, where)
}

// computeHostsLocal reports whether every host jobs may run on is this
// one, with the hosts found. A queue whose hosts cannot be listed (a
// misspelt partition) is judged by all the system's hosts, so that the
// submission goes ahead and the scheduler's own message about the queue
// is what the user sees. The scheduler's commands missing from PATH is an
// error naming the submit command: nothing could be submitted anyway.
func (b *BatchLauncher) computeHostsLocal(ctx context.Context) (bool, []string, error) {
	if b.d.ComputeHosts == nil {
		return false, nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	hosts, err := b.d.ComputeHosts(ctx, b.cfg.runner(), b.opts.Queue)
	if err != nil && b.opts.Queue != "" && !errors.Is(err, exec.ErrNotFound) {
		b.cfg.logger().Debug("could not list the queue's hosts; trying all hosts", "system", b.d.Title, "queue", b.opts.Queue, "err", err)
		hosts, err = b.d.ComputeHosts(ctx, b.cfg.runner(), "")
	}
	if errors.Is(err, exec.ErrNotFound) {
		submit := b.d.Submit("", "").Path
		return false, nil, fmt.Errorf("%s commands are not on PATH (%v): %s is needed to submit the jobs; is %s installed on this host, with its bin directory on PATH?", b.d.Title, err, submit, b.d.Title)
	}
	if err != nil || len(hosts) == 0 {
		b.cfg.logger().Debug("could not list the compute hosts", "system", b.d.Title, "err", err)
		return false, hosts, nil
	}
	for _, h := range hosts {
		if !isThisHost(h) {
			return false, hosts, nil
		}
	}
	return true, hosts, nil
}

// isThisHost reports whether name is this machine: its host name (short
// or full), or a name that resolves to loopback addresses only.
func isThisHost(name string) bool {
	self, _ := os.Hostname()
	short, _, _ := strings.Cut(self, ".")
	n, _, _ := strings.Cut(name, ".")
	if name == self || n == short || name == "localhost" {
		return true
	}
	addrs, err := net.LookupHost(name)
	if err != nil || len(addrs) == 0 {
		return false
	}
	for _, a := range addrs {
		if !isLoopback(a) {
			return false
		}
	}
	return true
}

// isLoopback reports whether a bind or connect address is loopback only.
func isLoopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// argValue finds --name=value or --name value in argv.
func argValue(argv []string, name string) string {
	for i, a := range argv {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
		if a == name && i+1 < len(argv) {
			return argv[i+1]
		}
	}
	return ""
}

// refresh asks the queue for the jobs' states when the last answer is
// older than the poll interval (or force). One query runs at a time;
// callers meanwhile see the previous answer.
func (b *BatchLauncher) refresh(ctx context.Context, force bool) {
	b.mu.Lock()
	if b.polling || (!force && b.now().Sub(b.lastPoll) < b.opts.poll()) {
		b.mu.Unlock()
		return
	}
	var ids []string
	for _, j := range b.jobs {
		if !j.Status.State.Finished() {
			ids = append(ids, j.ID)
		}
	}
	if len(ids) == 0 {
		b.mu.Unlock()
		return
	}
	b.polling = true
	b.mu.Unlock()

	qctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	cmd := b.d.Query(ids)
	cmd.Env = b.cfg.Environ(nil)
	res, runErr := b.cfg.runner().Run(qctx, cmd)
	cancel()
	states, err := b.d.ParseQuery(res, runErr, ids)

	b.mu.Lock()
	defer b.mu.Unlock()
	b.polling = false
	b.lastPoll = b.now()
	if err != nil {
		// A queue that cannot be asked leaves the states as they were:
		// jobs are never declared finished on a failed query.
		if b.pollErr == nil || b.pollErr.Error() != err.Error() {
			b.cfg.logger().Warn("asking the queue for the jobs' states", "system", b.d.Title, "cmd", cmd.String(), "err", err)
		}
		b.pollErr = err
		return
	}
	b.pollErr = nil
	for _, j := range b.jobs {
		if j.Status.State.Finished() || !slices.Contains(ids, j.ID) {
			continue
		}
		st, ok := states[j.ID]
		switch {
		case ok:
			st.ID = j.ID
			j.Status, j.Seen = st, true
		case j.Seen || b.now().Sub(j.Submitted) > submitGrace:
			// Gone from the queue: finished, outcome unknown (Slurm
			// forgets jobs after MinJobAge, SGE at once).
			j.Status = JobStatus{ID: j.ID, State: JobGone, Raw: j.Status.Raw, Reason: "no longer in the queue"}
		}
	}
}

// Status implements Launcher. Engines count as running while their job
// runs and as exited once it has finished; an engine in a pending job is
// neither.
func (b *BatchLauncher) Status() Status {
	b.refresh(context.Background(), false)
	b.mu.Lock()
	defer b.mu.Unlock()
	st := Status{State: StateBefore, Total: b.requested, ExitCode: -1}
	if len(b.jobs) == 0 {
		return st
	}
	allDone, failed, unknown := true, false, false
	var details []string
	for _, j := range b.jobs {
		st.Jobs = append(st.Jobs, j.Status)
		s := j.Status
		switch {
		case s.State == JobRunning:
			st.Running += j.N
		case s.State.Finished():
			st.Exited += j.N
		}
		if !s.State.Finished() {
			allDone = false
		}
		switch s.State {
		case JobFailed, JobCancelled, JobTimeout:
			failed = true
		case JobGone:
			unknown = true
		}
		d := fmt.Sprintf("job %s %s", s.ID, s.State)
		if s.Reason != "" && s.State != JobRunning {
			d += " (" + s.Reason + ")"
		}
		details = append(details, d)
	}
	st.Detail = strings.Join(details, ", ")
	if b.pollErr != nil {
		st.Detail += "; queue not answering: " + b.pollErr.Error()
	}
	if allDone {
		st.State = StateAfter
		switch {
		case failed:
			st.ExitCode = 1
		case !unknown:
			st.ExitCode = 0
		}
	} else {
		st.State = StateRunning
	}
	return st
}

// Jobs returns the jobs' last known states, refreshing them first when
// they are older than the poll interval.
func (b *BatchLauncher) Jobs() []JobStatus { return b.Status().Jobs }

// Wait implements Launcher.
func (b *BatchLauncher) Wait(ctx context.Context) error {
	return pollUntil(ctx, func() bool { return b.Status().State == StateAfter })
}

// Signal implements Launcher.
func (b *BatchLauncher) Signal(sig syscall.Signal) error {
	if b.d.Signal == nil {
		return fmt.Errorf("%s cannot deliver signals to jobs", b.d.Title)
	}
	ids := b.liveIDs()
	if len(ids) == 0 {
		return nil
	}
	cmd := b.d.Signal(ids, sig)
	cmd.Env = b.cfg.Environ(nil)
	_, err := b.cfg.runner().Run(context.Background(), cmd)
	return err
}

func (b *BatchLauncher) liveIDs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ids []string
	for _, j := range b.jobs {
		if !j.Status.State.Finished() {
			ids = append(ids, j.ID)
		}
	}
	return ids
}

// Stop implements Launcher: cancel every job still queued or running,
// then ask the queue until none is left (ctx bounds the wait). A job
// the queue no longer lists is finished. Scripts and output files of
// jobs we stopped are removed; those of jobs that ended on their own
// stay for inspection.
func (b *BatchLauncher) Stop(ctx context.Context) error {
	b.mu.Lock()
	b.stopping = true
	b.mu.Unlock()
	b.refresh(ctx, true)
	ids := b.liveIDs()
	var errs []error
	if len(ids) > 0 {
		cmd := b.d.Cancel(ids)
		cmd.Env = b.cfg.Environ(nil)
		b.cfg.logger().Info("cancelling batch jobs", "system", b.d.Title, "jobs", ids)
		if _, err := b.cfg.runner().Run(ctx, cmd); err != nil {
			// Jobs that ended meanwhile make some systems fail the whole
			// command; the queue is the judge, asked below.
			b.cfg.logger().Debug("cancel command failed", "cmd", cmd.String(), "err", err)
		}
		err := pollUntil(ctx, func() bool {
			b.refresh(ctx, false)
			return len(b.liveIDs()) == 0
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s jobs %s still in the queue after cancelling them: %w", b.d.Title, strings.Join(b.liveIDs(), ","), err))
		}
	}
	b.mu.Lock()
	jobs := slices.Clone(b.jobs)
	b.mu.Unlock()
	if len(errs) == 0 {
		for _, j := range jobs {
			if slices.Contains(ids, j.ID) {
				b.removeFiles(j)
			}
		}
	}
	return errors.Join(errs...)
}

func (b *BatchLauncher) removeFiles(j *batchJob) {
	matches, _ := filepath.Glob(j.Output + "*")
	for _, f := range append(matches, j.Script) {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			b.cfg.logger().Debug("removing job file", "file", f, "err", err)
		}
	}
}

// Output implements OutputReader: the tail of each job's output files
// (array tasks may write one file each).
func (b *BatchLauncher) Output(maxLines int) map[string]string {
	b.mu.Lock()
	jobs := slices.Clone(b.jobs)
	b.mu.Unlock()
	out := map[string]string{}
	for _, j := range jobs {
		matches, _ := filepath.Glob(j.Output + "*")
		for _, f := range matches {
			if text, err := tailFile(f, maxLines); err == nil {
				out[f] = text
			}
		}
	}
	return out
}

// WaitConnection implements ConnectionWaiter for a controller job: it
// polls for the connection files the controller writes into the shared
// profile, and fails as soon as the job has finished.
func (b *BatchLauncher) WaitConnection(ctx context.Context) (*ConnectionInfo, error) {
	var info *ConnectionInfo
	var lastErr error
	err := pollUntil(ctx, func() bool {
		if st := b.Status(); st.State == StateAfter {
			lastErr = fmt.Errorf("the controller's %s job ended before writing its connection files: %s%s", b.d.Title, st.Detail, tailText(b))
			return true
		}
		info, lastErr = ReadConnection(b.cfg.ProfileDir, b.cfg.ClusterID)
		return lastErr == nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for the controller's connection files: %w (%s; last error: %v)", err, b.Status().Detail, lastErr)
	}
	return info, lastErr
}

// tailText is the end of a launcher's output files, for error messages.
func tailText(r OutputReader) string {
	out := r.Output(20)
	var sb strings.Builder
	for _, f := range slices.Sorted(maps.Keys(out)) {
		if strings.TrimSpace(out[f]) != "" {
			fmt.Fprintf(&sb, "\n--- %s ---\n%s", f, strings.TrimRight(out[f], "\n"))
		}
	}
	return sb.String()
}

// batchState is a BatchLauncher's handle in the cluster file.
type batchState struct {
	Version     int         `json:"version"`
	System      string      `json:"system"`
	N           int         `json:"n"`
	EngineSetID string      `json:"engine_set_id,omitempty"`
	State       State       `json:"state"`
	ProfileDir  string      `json:"profile_dir"`
	ClusterID   string      `json:"cluster_id"`
	Cmd         []string    `json:"cmd"`
	Jobs        []*batchJob `json:"jobs"`
}

// MarshalState implements Stateful.
func (b *BatchLauncher) MarshalState() (json.RawMessage, error) {
	st := b.Status()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.jobs) == 0 {
		return nil, errors.New("batch launcher not started")
	}
	return json.Marshal(batchState{
		Version:     StateVersion,
		System:      b.d.Name,
		N:           b.requested,
		EngineSetID: b.cfg.EngineSetID,
		State:       st.State,
		ProfileDir:  b.cfg.ProfileDir,
		ClusterID:   b.cfg.ClusterID,
		Cmd:         b.argv,
		Jobs:        b.jobs,
	})
}

// restoreBatch rebuilds a batch launcher from its handle and asks the
// queue where its jobs are; ErrNotRunning when none is left.
func restoreBatch(d *Dialect, kind Kind, cfg Config, state json.RawMessage) (Launcher, error) {
	var st batchState
	if err := decodeState(d.Title+" launcher", state, &st); err != nil {
		return nil, err
	}
	cfg.restored(st.ProfileDir, st.EngineSetID, st.Cmd)
	b, err := NewBatchLauncher(d, kind, cfg)
	if err != nil {
		return nil, err
	}
	b.requested = st.N
	b.jobs = st.Jobs
	if len(b.jobs) == 0 {
		return nil, fmt.Errorf("%s launcher with no jobs: %w", d.Title, ErrNotRunning)
	}
	b.refresh(context.Background(), true)
	if b.Status().State == StateAfter {
		return nil, fmt.Errorf("%s jobs %s: %w", d.Title, strings.Join(jobIDs(b.jobs), ","), ErrNotRunning)
	}
	return b, nil
}

func jobIDs(jobs []*batchJob) []string {
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	return ids
}

// batchEntry is the catalog entry of a batch system.
func batchEntry(d *Dialect, summary string, aliases ...string) Entry {
	return Entry{
		Name:    d.Name,
		Title:   d.Title,
		Aliases: aliases,
		Summary: summary,
		Options: func() Options { return &BatchOptions{} },
		NewController: func(cfg Config) (Launcher, error) {
			return NewBatchLauncher(d, KindController, cfg)
		},
		NewEngines: func(cfg Config) (Launcher, error) {
			return NewBatchLauncher(d, KindEngines, cfg)
		},
		RestoreController: func(cfg Config, st json.RawMessage) (Launcher, error) {
			return restoreBatch(d, KindController, cfg, st)
		},
		RestoreEngines: func(cfg Config, st json.RawMessage) (Launcher, error) {
			return restoreBatch(d, KindEngines, cfg, st)
		},
	}
}
