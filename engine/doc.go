// Package engine is the runtime of a Go IPython Parallel engine: it
// registers with a controller (ours or ipyparallel's own), keeps the
// heartbeat, and serves shell and control requests, running Go source in
// a persistent interpreted namespace (internal/interp) and calling native
// Go functions registered by the program it is built into.
//
// # Flow of Run
//
//  1. Registration (spec §4.1). A DEALER whose identity is the engine's
//     uuid sends registration_request {"uuid", ["id"], "ready_probe": true,
//     "info": protocol.EngineInfo} and waits RegistrationTimeout for the
//     reply; a refusal or no answer ends Run with an error.
//  2. Channels (spec §4.2). One shell ROUTER connected to mux, task and
//     the broadcast leaf id % len(broadcast); a control ROUTER; an IOPub
//     PUB; the heart (SUB on hb_ping, DEALER on hb_pong). All carry the
//     uuid as identity, which is how the controller routes to the engine.
//  3. Ready probes (TEAM-NOTES). Our controller completes a registration as
//     soon as it has seen engine_ready through each of the four routes, and
//     says so with registration_complete; the probes repeat until then,
//     every 20 ms at first and backing off to 320 ms (a controller busy
//     with a thousand registrations is not flooded), because a ROUTER
//     drops messages to peers whose handshake is not done. ipyparallel's controller ignores them (logging an error
//     for each) and completes the registration at its next heartbeat
//     instead. Unless the reply acknowledges "ready_probe", the engine
//     therefore slows its probes down after 250 ms and stops them once two
//     pings have come without registration_complete, before the Python task
//     scheduler, which counts every message from a registered engine as a
//     finished task, knows the engine.
//  4. Serving, on the goroutines listed below, until one of the stops.
//     The first completed registration turns the garbage collector back on
//     where the engine role started with it off (internal/startgc), and
//     with Config.TrimMemory (ipcluster engine, Main) gives back start-up
//     memory (trim_linux.go), which is then the process's first collection.
//  5. Stopping: on ctx cancellation, shutdown_request or heartbeat loss the
//     running request is cancelled, remaining output flushed,
//     unregistration_request sent (clients learn at once instead of after
//     the controller's heartbeat timeout) and the sockets closed.
//
// # Goroutines
//
//   - heart echoes each ping at once; watchHeart ends Run with
//     ErrControllerLost when pings stop for HeartbeatTimeout. While pings
//     come it sleeps until the silence would matter, so an idle engine
//     wakes only for pings (issue 10: at most 10 wake-ups a second).
//   - receiveShell verifies shell requests and queues them in arrival order.
//   - executor serves the queue one request at a time, in ipykernel's
//     message order: IOPub status busy, execute_input, stream output,
//     execute_result or error, the shell reply, IOPub status idle (Python
//     clients treat idle as the end of a request's output).
//   - serveControl answers clear, abort, shutdown, signal and kernel_info
//     while a long request runs; a SIGINT signal_request interrupts it.
//   - flusher publishes captured stdout/stderr within StreamFlushInterval,
//     so long runs show progress.
//   - sendReadyProbes and listenRegistration finish the registration.
//
// # Requests
//
// execute_request runs its code in the namespace; the value of a trailing
// expression is published as execute_result with its text/plain form.
// apply_request with a "go" object (protocol.ApplyContent) calls a
// built-in (protocol.Push, Pull, PullOne, Shell, Noop, Eval, Info) or a
// function registered with Register, its arguments and result encoded with
// internal/codec. An apply_request without it comes from the Python client
// and carries pickles (internal/pickle, spec §5.2): push and pull
// (ipyparallel.util._push/_pull, recognised by module and name; their
// bytecode is never run) set and read namespace variables, and
// ipyparallel.Reference(name) calls what apply by name reaches, with
// arguments and result pickled; any other Python function is answered
// with a NotImplementedError error dict, and a value the pickle subset
// does not carry with a TypeError naming its type, which the Python
// client raises as RemoteError. Every failure — interpreter errors, function errors,
// panics, unknown message types, undecodable requests — becomes an error
// reply with ename, evalue, traceback and engine_info; nothing a client
// sends can crash the engine. Messages with bad signatures are logged and
// dropped.
//
// Reply metadata follows spec §5.1 (started, dependencies_met, engine,
// status, and is_broadcast/is_coalescing/original_msg_id copied from the
// request) because the Python schedulers drop replies without them, and
// replies carry the full routing prefix the request came with.
package engine
