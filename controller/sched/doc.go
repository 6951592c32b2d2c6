// Package sched is the load-balanced task scheduler of the controller as
// pure logic: no sockets, no goroutines, no clock. It reproduces
// ipyparallel 7.1's TaskScheduler (dependencies, schemes) and fixes the places
// where that one hangs.
//
// # Flow
//
// The controller owns the sockets and calls the Scheduler from a single
// goroutine, passing the current time into every call:
//
//	registration / unregistration  -> AddEngine / RemoveEngine
//	request on the client task port -> Submit (or Reject if unparsable)
//	reply on the engine task port   -> Result
//	timer at NextDeadline           -> Tick
//
// Each call returns the Actions to carry out, in order: Dispatch (send the
// task's frames to an engine, publish tracktask), Relay (forward the reply
// to the client, publish outtask) and Fail (send the client a synthetic
// apply_reply error). Timeouts and engine-death grace periods are deadlines
// the controller arms with NextDeadline; every call first fires whatever is
// due at its now, so a late Tick never lets an expired task be dispatched.
// Tests drive time by hand.
//
// # Inside
//
// Engines are kept in least-recently-used order with their outstanding
// task counts; a dispatch moves the engine to the back. A submitted task is
// validated (InvalidDependency, ImpossibleDependency), indexed under the
// unfinished ids it depends on, and either placed at once or queued:
// "waiting" until its after dependency is met, then "ready". Ready tasks
// sit in submission order and are offered engines whenever something
// changes (capacity freed, engine added, a dependency finished); a task
// that cannot run is skipped, so it never blocks the ones behind it, and
// the scan stops as soon as no engine has room. A result therefore costs
// O(engines) plus the queued tasks that cannot use the freed engine and
// sit ahead of the first one that can (BenchmarkSubmitResult10k and
// ...BlockedHead measure both). Whether a task has become impossible
// is decided on the events that can cause it (a dependency finishing, an
// engine dying, an engine reporting unmet dependencies), never during
// placement.
//
// # Where this differs from Python 7.1
//
//   - Retries: as in Python, an engine a task failed on is blacklisted for
//     it and the retry waits for another engine; with a timeout the task
//     held that way ends in TaskTimeout, and with targets that all failed
//     in ImpossibleDependency, as in Python. Where Python waits forever (no
//     timeout, no targets, every live engine failed it) the last failure
//     itself is relayed, or ImpossibleDependency if the engine the task
//     waited for dies. Task.RetryFailedEngines (metadata
//     "retry_failed_engines": true) opts into running the retry again where
//     it failed once no other engine is left (each failure still costs a
//     retry, so it ends, and the last error reaches the client).
//   - Unmet dependencies (dependencies_met=false) ban that engine for the
//     task without costing a retry, as in Python; once every live engine is
//     banned the task fails with ImpossibleDependency instead of waiting for
//     an engine that may never register.
//   - A follow dependency whose tasks finished on an engine that has died,
//     or that the task's targets exclude, or (with failure=true) that the
//     scheduler failed without running anywhere, fails with
//     ImpossibleDependency; Python waits forever or raises KeyError.
//   - Queued tasks that could only run on an engine that dies fail when it
//     dies; Python notices only at the next placement attempt.
//   - A task coming back to the queue (retry, unmet dependency) keeps its
//     original place in submission order. Its timeout restarts, as in
//     Python.
//   - EngineError reads "Engine <uuid> died while running task '<msg_id>'";
//     Python prints the uuid as a bytes repr, b'<uuid>'.
//   - A re-dispatch to an engine that already received the task is marked
//     Action.Repeat: a Python engine rejects a signature it has seen (its replay guard),
//     so the controller must re-sign.
//   - A reused msg_id fails with TaskRejectError instead of silently
//     overwriting the first task's state.
//   - Pure is round-robin inside this scheduler rather than a libzmq queue,
//     so tasks on a dead engine still get EngineError.
//
// The sets of seen and finished msg_ids grow without bound, as in Python;
// bounding them is future work.
package sched
