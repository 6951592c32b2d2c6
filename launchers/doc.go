// Package launchers starts, watches and stops the processes of a cluster:
// one controller and any number of engine sets.
//
// A Launcher manages one group of processes (the controller, or one engine
// set) through a small interface: Start, Stop, Signal, Status and Wait.
// Abilities only some launchers have are optional interfaces checked with a
// type assertion: Stateful (save a handle that another process can reattach
// to), ConnectionWaiter (a controller launcher that can hand over the
// connection files), ProcessLister (local pids, so a caller can verify that
// a stop left nothing behind) and OutputReader (the tail of the processes'
// logs).
//
// Every implementation is registered in one table, catalog.go, and chosen
// by name or alias, case-insensitively, as ipcluster's --controller and
// --launcher options do ("local", "MPI", "Slurm"). Launchers never call
// os/exec themselves: every external program goes through a Runner, so
// tests and dry runs can replace it.
//
// A launcher's own settings (the mpiexec program, a batch job's partition
// and walltime) are a struct of the type its catalog entry names
// (MPIExecOptions, BatchOptions), travelling in Config.Options. The struct
// declares its flags itself (Options.BindFlags) and its json names are its
// flag names, so the settings recorded with an engine set in the cluster
// file can be merged with the flags of a later `ipcluster engines`
// (MergeOptions): settings given win, the rest is what the newest set of
// the same launcher used. Every engine set records its launcher, so one
// cluster may mix local, mpiexec and batch engine sets.
//
// Batch systems are one launcher, BatchLauncher, parameterised by a
// Dialect (dialect_<system>.go): the submit, query, cancel and signal
// commands, regexps anchored on each system's own messages, a state table
// mapping its codes to JobState, and the names of its templates in
// package templates. The launcher renders the template into a script
// under <profile>/log, submits it with the IPP_* variables in the
// environment (every template propagates the environment), splits an
// engine set into several jobs with EnginesPerJob, and follows the jobs
// by asking the queue whenever Status is called and its last answer is
// older than the poll interval: no goroutine, so a launcher restored by
// `ipcluster list` costs one query. A job missing from the queue after it
// was seen (or 15 s after submission) is finished with an unknown outcome
// (JobGone): squeue forgets jobs, SGE at once. Stop cancels and then asks
// the queue until none of the jobs is left, because scancel's exit status
// says nothing. Before submitting, it refuses a controller that listens
// on loopback only unless every host the queue can run jobs on is this
// one (Dialect.ComputeHosts).
//
// The cluster file, security/cluster-<id>.json, uses ipyparallel's layout
// (see ClusterFile). Each launcher's handle is saved there under "state";
// every write is a read-modify-write under a file lock, so `ipcluster
// engines` in one process merges its engine set into the record that the
// process running `ipcluster start` keeps up to date, and `ipcluster stop`
// anywhere sees and stops everything. Cluster ties these together: start a
// controller, wait for its connection files, start engine sets, reattach
// from the file, stop all.
//
// Local processes lead a process group of their own (whose id is the pid):
// the controller in a new session, engines in the caller's session, so
// that where the kernel shares CPU time per session (autogroup) hundreds
// of starting engines do not starve the controller. They get stdin from
// /dev/null, and stdout and stderr appended to a log file under
// <profile>/log. Stopping sends SIGTERM to the group, waits for the leader to exit, sends SIGKILL after a grace
// period, and finally sweeps the group with SIGKILL so that nothing the
// process started outlives it. Reattaching by pid checks that the process
// is still the one that was started (its start time and command line), so
// a recycled pid is never signalled.
//
// The SSH launchers (ssh*.go) run processes on other hosts through the
// system ssh (package internal/sshx: the user's ssh_config, keys and
// agent; one multiplexed connection per host). They are the one exception
// to "everything through a Runner": sshx runs ssh itself. A start is two
// round trips per host: a preflight (login, `<remote ipcluster>
// --version` so that a missing or Python ipcluster fails first, with
// sshx's error naming host and command; the host's name for the loopback
// check), then a script on ssh's standard input (`sh -s`) that exports
// the variables (IPP_CONNECTION_INFO never appears on a command line) and
// starts each process in its own session (setsid where present) under
// nohup, output to a log in the remote profile; each process prints its
// own pid before it becomes the program, in a marker line read with an
// anchored regexp. Status polls lazily, like the batch launcher: one
// `sh -s` per host at most once a second when asked, counting a pid as
// alive only if kill -0 succeeds, it is not a zombie and its command line
// still names our program (a recycled pid is gone). A host that cannot be
// reached keeps its processes as running. Stop is one script per host
// that does TERM, waits out the grace period there, KILLs, sweeps the
// process groups, checks again and removes the logs of what it stopped:
// one round trip instead of one per poll. The handle in the cluster file
// holds host, pid, index and log path of each process, the remote profile
// directory, command and ssh arguments, so `ipcluster stop` anywhere
// stops them. SSHController fetches the two connection files from the
// remote profile into the local one (0600), polling in the same round
// trip that checks the controller is alive.
//
// The "mpiexec" engine launcher (MPIExecEngineSet) runs a whole engine set
// as one MPI job, `mpiexec [args] -n N <engine>`, handled like one local
// process; because MPI implementations put ranks in process groups of
// their own, its Stop also finds mpiexec's descendants through the
// Runner (TreeRunner) and kills any that outlive mpiexec.
package launchers
