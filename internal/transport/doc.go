// Package transport is the project's narrow view of ZeroMQ: ROUTER, DEALER,
// PUB and SUB sockets that bind, connect, carry multipart messages with
// routing identities, and close.
//
// Two backends implement it. "zmq" wraps libzmq through
// github.com/pebbe/zmq4 and needs cgo; it is the default because libzmq
// queues while a peer is away, never lets one stalled peer block the others
// and is the implementation the Python peers use. "gozmq" wraps the pure-Go
// github.com/go-zeromq/zmq4 so that a CGO_ENABLED=0 client still works; its
// known gaps are listed in docs/transport.md. Only libzmq speaks CURVE
// (Options.Curve); gozmq refuses it with ErrNoCurve (docs/curve.md).
//
// Flow: every socket is owned by one goroutine of its backend. Send appends
// to an in-memory queue and wakes that goroutine, which writes everything
// queued in one batch; received messages are handed out on the Messages
// channel. Callers therefore never share a libzmq socket between threads,
// and any number of goroutines may Send. The gozmq backend has a writer and
// a reader goroutine per socket instead (the library blocks in both
// directions), and a gozmq socket binds or connects exactly once.
//
// Memory: the libzmq backend moves whole multipart messages per cgo call
// with its own small binding (zmqmsg.go) instead of pebbe's per-frame
// calls. On sockets created with Options.InPlace (the controller's: it
// forwards what it received), frames of 64 KiB or more are sent in place:
// pinned, handed to libzmq, released by its free callback once written.
// Other sockets copy, so a caller may reuse its buffer once Send returns. Received small
// frames share one Go allocation per message; frames of 1 MiB or more get
// their own, advised for transparent huge pages before the copy, because
// first touches of fresh 4 KiB pages, not copies, dominate large
// transfers (docs/performance.md). Sockets created with
// Options.HoldBuffers (the controller's mux) leave large buffer frames in
// libzmq's memory instead, and forward them by reference: their consumer
// releases them explicitly (held.go). glibc, which libzmq's buffers come
// from, is set up before the program starts to keep freed message memory
// for the next large message instead of returning it to the kernel
// (KeepFreedEnv, keepmem.go; docs/large-data.md). pebbe still creates,
// configures and closes the sockets.
//
// Default picks "zmq" when it is compiled in (cgo and no "nolibzmq" build
// tag), else "gozmq"; conformance_test.go runs one suite against every
// compiled-in backend and lists each backend's known failures.
package transport
