// Package cli is the ipcluster command line: the user commands start,
// stop, list, engines, clean and exec, and the roles controller and engine
// that launchers run (one binary plays every part).
//
// Each command is an options struct, a NewCmdX(f, runF) constructor that
// only binds flags and arguments to the struct, and an xRun(opts) function
// that does the work. Tests pass their own runF to check flag parsing, and
// call xRun with a Factory whose parts (output streams, the process
// runner, the client connection) they replace.
//
// Errors are turned into ipcluster's exit codes in one place, ExitCode:
// 10 when the cluster is already running (ALREADY_STARTED), 11 when
// stopping a cluster that has no cluster file (ALREADY_STOPPED), 12 when
// adding engines to, or executing on, a cluster whose controller does not
// run (NO_CLUSTER), 1 otherwise.
//
// "Running" means the controller's process is alive (pid and start time
// checked by the launchers), for every command alike: a controller killed
// with SIGKILL leaves its files and engines behind, and list, start, stop,
// clean and exec all treat that cluster as stopped, with leftovers to
// clean up.
package cli
