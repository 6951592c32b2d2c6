package launchers

import (
	"context"
	"syscall"
)

// JobState is a batch job's state, in Slurm's words whatever the system.
type JobState string

// The job states every dialect maps its own codes to.
const (
	// JobSubmitted: accepted by the scheduler but not seen in its queue
	// yet (LSF and HTCondor answer "not found" for a moment).
	JobSubmitted JobState = "SUBMITTED"
	JobPending   JobState = "PENDING"
	JobRunning   JobState = "RUNNING"
	JobCompleted JobState = "COMPLETED"
	JobFailed    JobState = "FAILED"
	JobCancelled JobState = "CANCELLED"
	JobTimeout   JobState = "TIMEOUT"
	// JobGone: no longer in the queue, so finished, outcome unknown
	// (Slurm without slurmdbd, SGE, LSF after aging out).
	JobGone JobState = "GONE"
)

// Finished reports whether a job in state s will run no more.
func (s JobState) Finished() bool {
	switch s {
	case JobCompleted, JobFailed, JobCancelled, JobTimeout, JobGone:
		return true
	}
	return false
}

// JobStatus is one job (or array task) as its scheduler reports it.
type JobStatus struct {
	// ID is the job id as the submit command printed it (Slurm "12",
	// PBS "1234.server", HTCondor "118907"); array tasks report the
	// job's id with their task in Task.
	ID string `json:"id"`
	// Task is the array task index ("" for a whole job).
	Task string `json:"task,omitempty"`
	// State is the mapped state.
	State JobState `json:"state"`
	// Raw is the scheduler's own state word (PD, qw, Q, PEND, 1...).
	Raw string `json:"raw,omitempty"`
	// Reason is why a job pends or ended, when the scheduler says
	// (Slurm "Resources", "PartitionConfig"; SGE "hold").
	Reason string `json:"reason,omitempty"`
}

// Dialect is everything that differs between batch systems: the commands
// that submit, query, cancel and signal jobs, how to read their answers,
// and the script templates. A dialect is data plus small pure functions;
// the batch launcher (batch.go) does the rest, the same for every system.
// Each dialect lives in its own file (dialect_<name>.go) with its templates
// in package templates and one line in catalog.go.
type Dialect struct {
	// Name is the catalog name ("slurm"); Title the name for people
	// ("Slurm").
	Name, Title string
	// Directive is the prefix of the script's scheduler lines ("#SBATCH",
	// "#$", "#PBS", "#BSUB"; "#CONDOR" for the submit-description lines
	// HTCondor's script carries, see dialect_htcondor.go).
	Directive string
	// EngineTemplate and ControllerTemplate name the templates in package
	// templates ("slurm-engines.sh.tmpl").
	EngineTemplate, ControllerTemplate string
	// Array is true when a job runs its engines as array tasks, one
	// engine per task (SGE, PBS, LSF, HTCondor); false when one job runs
	// them as the tasks of one step (Slurm's srun).
	Array bool
	// Submit is the command that submits the script at path, whose text
	// is script (LSF's bsub reads it on stdin).
	Submit func(path, script string) Command
	// ParseSubmit finds the job id in the submit command's stdout, with a
	// regexp anchored on the system's own message; an error quotes the
	// output when there is none.
	ParseSubmit func(stdout string) (string, error)
	// Query is the command that reports the state of jobs ids.
	Query func(ids []string) Command
	// ParseQuery reads Query's result (err is Run's error: a non-zero
	// exit may still carry an answer, as Slurm's "Invalid job id").
	// Jobs absent from the map are not in the queue. Array tasks of one
	// job are folded into one JobStatus per job id, keeping the least
	// advanced state (PENDING before RUNNING before finished).
	ParseQuery func(res Result, err error, ids []string) (map[string]JobStatus, error)
	// Cancel is the command that removes jobs ids from the queue.
	Cancel func(ids []string) Command
	// Signal is the command that delivers sig to the running jobs ids;
	// nil when the system cannot signal jobs.
	Signal func(ids []string, sig syscall.Signal) Command
	// ComputeHosts lists the hosts jobs submitted to queue may run on
	// (queue "" = the default); nil or an error means unknown, and the
	// hosts are then assumed to be other machines.
	ComputeHosts func(ctx context.Context, r Runner, queue string) ([]string, error)
	// SubmitEnv are variables the submit command needs in its own
	// environment (LSF's LSB_STDOUT_DIRECT, which a script cannot set).
	SubmitEnv map[string]string
	// Flavor, when not nil, asks which variant of the system runs here
	// (PBS: "pbspro" or "torque"); the launcher puts the answer in
	// templates.Job.Flavor before rendering, because the variants' script
	// syntax differs. An error leaves Flavor "" (the templates' default).
	Flavor func(ctx context.Context, r Runner) (string, error)
}
