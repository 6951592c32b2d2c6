// Package controller is the IPython Parallel controller: the hub (engine
// registration, heartbeats, notifications, queries, task records) and the
// schedulers (direct mux and control relays, the load-balancing task
// scheduler, the broadcast scheduler, the IOPub relay), in one process.
//
// ipyparallel runs these as eight processes that talk over ZeroMQ; here they
// are goroutines. Every socket is read by one goroutine:
//
//	registration ROUTER  -> hub.serveRegistration   (engines and client queries)
//	client query ROUTER  -> hub.serveRegistration   (client queries; only when split)
//	hb_pong ROUTER       -> hub.serveHeartbeat      (pongs; the beat timer lives there too)
//	mux / control        -> relay.run               (swap the two routing frames, forward)
//	task                 -> taskScheduler.run       (controller/sched decides placement)
//	broadcast            -> broadcaster.run         (one copy per target engine)
//	iopub SUB            -> hub.serveIOPub          (forward to clients, note outputs)
//
// db_requests are answered by one more goroutine (hub.serveDB), fed by the
// query handler through a bounded queue, so that a query over a large store
// does not hold up registrations and other queries. Its query language
// (dbquery.go) reads records only as TaskRecord documents (taskrecord.go).
// resubmit_request hands signed requests to the task scheduler under the
// routing identity resubmitIdent, whose replies no peer receives: clients
// poll result_request, as with ipyparallel's hub.
//
// The ports form two sides: the engine side (the engine connection file)
// binds Config.IP, the client side (the client connection file) binds
// Config.ClientIP, and CurveAuto decides CURVE per side by its address.
// When the addresses differ the sides are split and clients get their own
// query ROUTER, served by the same hub handler, which answers on the
// socket a request came in on; otherwise both files name one registration
// port, as in ipyparallel.
//
// Every message is verified (signature, replay guard; guard.go) before
// anything in it is parsed, counted or forwarded, and every reply is checked
// against the request it claims to answer: the mux relay through the task
// records, the control relay through its table of requests in flight, the
// task scheduler through controller/sched (a result counts only from the
// engine the task runs on), the broadcaster through its per-engine copies.
// What is refused goes to a rate-limited log. docs/security.md has the
// threat model.
//
// Components get what they use at construction (the records store, the
// hub's liveness lookup); none reaches another through the Controller.
// Engine arrival and departure are hub events: the task scheduler, the
// broadcaster and the control relay are engineListeners, told in order and
// never under the hub's locks. Deaths are seen by heartbeats and, much
// faster, by check rounds that the heartbeat port's closed connections
// start (liveness.go).
//
// The hub owns engine and task-record state behind hub.mu; relays and
// schedulers read the set of live engines through the hub's routes table and
// report bookkeeping by calling hub methods. Lock order: hub.mu before any
// scheduler lock; nothing holds hub.mu while sending on a socket that could
// block (transport sends never block).
//
// Registration completes explicitly: Go engines announce each of their
// routes with engine_ready probes and are live as soon as all four arrive;
// Python engines are pinged every 100 ms while they are pending and are live
// at their first pong. Neither waits for a heartbeat period.
package controller
