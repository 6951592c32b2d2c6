// Package ipp is the Go client of IPython Parallel, mirroring
// `import ipyparallel as ipp`: a Client connected to a controller (ours or
// Python's ipcontroller), DirectView and LoadBalancedView to send work to
// engines, AsyncResult handles for the answers, and Cluster to start and
// stop a whole cluster through the launchers package.
//
//	c, err := ipp.ConnectProfile(ctx, "default", "")
//	err = c.WaitForEngines(ctx, 4)
//	ar, err := c.All().Execute(ctx, `fmt.Println("hello")`)
//	replies, err := ar.Get(ctx)          // []any of *ExecuteReply
//	sq, err := c.LoadBalanced().Map(ctx, "square", []int{1, 2, 3})
//	out, err := ipp.GetAll[int](ctx, sq) // [1 4 9]
//
// # Wire protocol
//
// The client speaks ipyparallel's protocol (Jupyter messaging 5.3 over
// ZeroMQ, HMAC-SHA256 signatures) exactly as the Python client does, so it
// works with a Python controller and Python engines for everything that
// does not move Go values (Execute of Python code, queue status, abort,
// clear, shutdown), and with Go engines for everything. Its DEALER sockets
// set no identity; direct (mux) and control requests are framed
// [engine uuid, DELIM, ...] so the relay routes them, task requests
// [DELIM, ...] so the scheduler picks an engine; a load-balanced view's
// flags (retries, after, follow, timeout, targets) travel as the request's
// metadata. Go function calls follow the convention of internal/protocol:
// an apply_request naming a registered function, arguments and result
// encoded with internal/codec in the buffers.
//
// # Flow inside a Client
//
// Connect opens one DEALER per channel (query, mux, task, control,
// broadcast) and one SUB each for notifications and IOPub, asks the hub for
// the registered engines (connection_request), and then starts one IO
// goroutine per socket. Each goroutine only ranges over its socket's
// Messages channel; sending happens on the caller's goroutine, which the
// transport package allows from any goroutine.
//
// Every request is recorded, before it is sent, in a table keyed by its
// msg_id and guarded by one mutex: a future for execute/apply requests, a
// waiter for hub queries and control requests. Replies are matched by
// parent_header.msg_id. IOPub messages are kept only when their
// parent_header.session is this client's session, and update the future's
// stdout, stderr, results and errors. A future is complete when its reply
// has arrived and, for replies an engine produced, when the engine's IOPub
// "status: idle" for it has arrived too, so the output is whole; errors
// made by a scheduler or the hub, and aborts, complete at once.
//
// Notifications keep the engine table current. When an engine
// unregisters, every direct or control request still routed to it
// completes with an EngineError RemoteError — the engine will never answer,
// and nothing should hang; load-balanced tasks are left to the scheduler,
// which retries or fails them itself. A controller shutdown closes the
// client. Every call that can block takes a context.Context.
//
// A controller that dies without a shutdown notification (SIGKILL, a lost
// host) is invisible to ZeroMQ, whose sockets just keep reconnecting. A
// keepalive goroutine therefore records when anything last arrived on any
// socket and, after an interval of silence, sends the hub a status-only
// result_request (cheap, and answered by Python's hub without logging an
// error). After a few probes with nothing at all received since, the client
// closes with an error wrapping ErrControllerLost, which fails every
// outstanding request (WithKeepalive).
//
// # Steering
//
// AsyncResult.Outputs streams a result's stdout and stderr as the engines
// publish them (replaying what already arrived). AsyncResult.Interrupt sends
// SIGINT to the engines still running its requests; Client.SendSignal and
// DirectView.Signal send any signal through the engines' signal_request
// and wait for every acknowledgement (a *SignalError names the engines that
// did not acknowledge). A Go engine interrupted by SIGINT stops the running
// snippet (interpreted code at its next step, package mpi calls at once)
// and answers the request with an Interrupted error.
//
// # Errors
//
// An exception on an engine becomes a *RemoteError (engine id, ename,
// evalue, traceback). A result spanning several requests reports failures
// as a *CompositeError holding each RemoteError and the successful results;
// errors.As reaches the individual RemoteErrors through it.
package ipp
