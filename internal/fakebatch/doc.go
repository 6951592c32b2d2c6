// Package fakebatch fakes PBS Pro, Torque, LSF and HTCondor well enough to
// test the batch launchers end to end on a machine that has none of them:
// small replacements for qsub/qstat/qdel/qsig, bsub/bjobs/bkill and
// condor_submit/condor_q/condor_rm that print what the real commands print
// (their output formats as documented by each system) and really run the
// jobs, locally.
//
// # Flow
//
// A test calls Install(t, "pbspro"), puts the returned directory first on
// PATH and runs the launcher. Install builds cmd/fakebatch once per test
// process and writes one shell wrapper per command name; each wrapper
// execs the program with the command's name, the job state directory
// (FAKEBATCH_STATE) and the system (FAKEBATCH_SYSTEM: pbspro, torque,
// lsf, htcondor).
//
// Submitting reads the script's directives (#PBS or #BSUB lines at
// column 0 before the first command; HTCondor's submit description),
// records the job as JSON under the state directory, prints the system's
// answer and starts one supervisor process per array task in its own
// session. The supervisor starts the task (the spooled script, or
// HTCondor's executable with its arguments) in its own process group,
// with the system's job environment and its output files, waits for it,
// and records how it ended. Queries read that state: a task is queued
// until its supervisor starts it, running while it lives, then done. A
// cancel marks the tasks cancelled and sends SIGTERM to their
// supervisors, which pass TERM to the task's process group and KILL after
// a grace period. When a test ends, Install's cleanup kills whatever is
// still running; Jobs and Active let the test look at the state first.
//
// # Faithful details worth knowing
//
//   - PBS: ids 1234.server, arrays 1234[].server with sub-jobs
//     1234[3].server; arrays by -J on PBS Pro and -t on Torque (the other
//     flag is an invalid option). Jobs start in $HOME. Without -V a job
//     sees only HOME, USER, LOGNAME, SHELL, a default PATH and the PBS_*
//     variables (PBS_JOBID, PBS_JOBNAME, PBS_O_WORKDIR, PBS_ARRAY_INDEX on
//     Pro / PBS_ARRAYID on Torque, ...). Output is written directly (no
//     staging at the end as a real MOM does); array tasks append to one -o.
//     qstat hides finished jobs on PBS Pro unless -x (state F, sub-jobs X);
//     Torque shows them as C for FAKEBATCH_KEEP, then forgets them.
//   - LSF: bsub reads #BSUB lines only from a script on stdin (bsub <
//     script); operands are a command, run without reading directives.
//     The submitter's environment propagates by default, as LSF's -env
//     default is "all"; "-env none" gives the minimal environment. Jobs
//     start in the submission directory. Finished jobs show DONE or EXIT
//     for FAKEBATCH_KEEP.
//   - HTCondor: jobs get only `environment` plus a minimal environment
//     unless `getenv = True`; $(Cluster) and $(Process) are expanded. A
//     completed or removed proc leaves the queue at once. An executable
//     that cannot be started puts the proc on hold (JobStatus 5) with a
//     HoldReason, as HTCondor does. `log = file` gets the user log's
//     submitted (000), executing (001), held (012), terminated (005) and
//     aborted (009) events.
//
// # Fault injection
//
// Read from the submitting command's environment and fixed at submission:
//
//   - FAKEBATCH_REJECT=1: reject the submission with the system's text
//     (PBS Pro "qsub: Unknown queue", Torque "qsub: submit error (Unknown
//     queue MSG=requested queue not found)", LSF "Request aborted by esub.
//     Job not submitted.", HTCondor "ERROR: Can't find address of local
//     schedd"); any other value is printed instead. Exit status 1 (LSF 255).
//   - FAKEBATCH_QUEUES=a,b: the queues that exist; naming another is
//     rejected (PBS as above, LSF "<q>: No such queue. Job not submitted.").
//   - FAKEBATCH_HOLD=1: jobs stay pending forever (PBS Q with comment "Not
//     Running: Insufficient amount of resource: ncpus ...", LSF PEND with
//     pend_reason "Not enough job slot(s)", HTCondor JobStatus 1).
//   - FAKEBATCH_FAIL=1: every task ends at once with status 1 without
//     running the script, writing "fakebatch: job failed at once
//     (FAKEBATCH_FAIL)" to its error output.
//   - FAKEBATCH_START_DELAY=500ms: how long tasks stay queued first.
//   - FAKEBATCH_GRACE=2s: TERM-to-KILL grace on cancel.
//   - FAKEBATCH_KEEP=10m: how long Torque and LSF keep showing finished jobs.
//   - FAKEBATCH_SERVER=pbsserver: the PBS server name in job ids.
package fakebatch
