package engine

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/ipp-hpc/ipp/internal/codec"
	"github.com/ipp-hpc/ipp/internal/pickle"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/mpi"
)

// receiveShell moves shell requests from the socket into the queue, so
// that abort_request can reach requests that are waiting, and so that the
// socket keeps draining while a request runs.
func (e *engine) receiveShell() {
	for frames := range e.shell.Messages() {
		m, err := e.parse(frames)
		if m == nil {
			e.log.Warn("dropping invalid shell message", "err", err)
			continue
		}
		if err != nil {
			e.log.Warn("shell request cannot be decoded; answering with an error", "type", m.Header.MsgType, "err", err)
		}
		if e.probe == probeGuessing {
			// Only a controller that has us registered routes requests
			// to us, and one that never sent registration_complete
			// is a Python controller that counts each probe as a
			// finished task: stop now rather than at the next probe
			// round, which may come after a quick client is done.
			e.markComplete("a request arrived before registration_complete; assuming a controller without ready probes")
		}
		e.queue.push(&request{msg: m, parseErr: err})
		e.log.Debug("request queued", "type", m.Header.MsgType, "msg_id", m.Header.MsgID)
	}
}

// executor serves queued shell requests one at a time, in arrival order,
// as an IPython kernel does.
func (e *engine) executor(ctx context.Context) {
	for {
		r, ok := e.queue.pop()
		if !ok {
			return
		}
		id := r.msg.Header.MsgID
		e.serving.Store(&id)
		e.serve(ctx, r)
		e.serving.Store(nil)
	}
}

// outcome is what a shell handler produced: reply content and buffers, or
// an error to send as an error dict.
type outcome struct {
	content   any
	buffers   [][]byte
	err       error
	execCount *int // execute errors carry the execution count too
}

// serve answers one shell request with the message order ipykernel uses:
// IOPub busy, outputs, shell reply, IOPub idle (spec §5.1). Python clients
// wait for idle before they consider outputs complete, so it is always
// sent, whatever happened.
func (e *engine) serve(ctx context.Context, r *request) {
	m := r.msg
	if r.parseErr == nil && isGoApply(m) {
		e.serveQuiet(ctx, r)
		return
	}
	started := time.Now()
	rtype := protocol.ReplyType(m.Header.MsgType)
	e.setStreamParent(m.RawHeader)
	// Registered as running before status busy goes out: a client that
	// sees busy and sends SIGINT must find this request to interrupt.
	rctx, run := e.begin(ctx, m.Header.MsgID)
	e.publishStatus(m.RawHeader, "busy")
	defer e.publishStatus(m.RawHeader, "idle")

	if e.queue.takeAborted(m.Header.MsgID) {
		e.end(run)
		e.log.Debug("request aborted", "msg_id", m.Header.MsgID)
		e.reply(e.shell, m, rtype, e.replyMetadata(m, started, "aborted"), map[string]string{"status": "aborted"}, nil)
		return
	}

	out := e.handle(rctx, r)
	e.end(run)
	e.flushStreams(true)

	if out.err != nil && e.stopping(ctx, run) {
		e.log.Info("engine stopping: request left unanswered (the controller reports it failed)", "msg_id", m.Header.MsgID)
		return
	}
	if out.err != nil {
		ec := e.errorFor(m, out.err, run.interrupted.Load())
		ec.ExecutionCount = out.execCount
		pub := ec
		pub.Status, pub.ExecutionCount = "", nil
		e.publish("error", "error", m.RawHeader, pub)
		e.reply(e.shell, m, rtype, e.replyMetadata(m, started, "error"), ec, nil)
		return
	}
	e.reply(e.shell, m, rtype, e.replyMetadata(m, started, "ok"), out.content, out.buffers)
}

// isGoApply reports whether m is a Go apply_request whose client asked for
// quiet IOPub (protocol.Call.Quiet).
func isGoApply(m *wire.Message) bool {
	if m.Header.MsgType != "apply_request" || !bytes.Contains(m.Content, []byte(`"quiet"`)) {
		return false
	}
	var c protocol.ApplyContent
	return m.DecodeContent(&c) == nil && c.Go != nil && c.Go.Quiet
}

// serveQuiet answers a quiet Go apply (protocol.Call.Quiet) without IOPub
// traffic unless the function printed something; the client reads reply
// metadata iopub_idle instead of waiting for status idle. For a no-op task
// this halves the messages every process handles.
func (e *engine) serveQuiet(ctx context.Context, r *request) {
	m := r.msg
	started := time.Now()
	if e.queue.takeAborted(m.Header.MsgID) {
		e.reply(e.shell, m, "apply_reply", e.replyMetadata(m, started, "aborted"), map[string]string{"status": "aborted"}, nil)
		return
	}
	e.setStreamParent(m.RawHeader)
	before := e.streams.Load()
	rctx, run := e.begin(ctx, m.Header.MsgID)
	out := e.handle(rctx, r)
	e.end(run)
	e.flushStreams(true)
	printed := e.streams.Load() != before
	if out.err != nil && e.stopping(ctx, run) {
		e.log.Info("engine stopping: request left unanswered (the controller reports it failed)", "msg_id", m.Header.MsgID)
		return
	}
	status, content := "ok", out.content
	if out.err != nil {
		ec := e.errorFor(m, out.err, run.interrupted.Load())
		status, content, out.buffers = "error", ec, nil
	}
	md := e.replyMetadata(m, started, status)
	md.IOPubIdle = &printed
	e.reply(e.shell, m, "apply_reply", md, content, out.buffers)
	if printed {
		e.publishStatus(m.RawHeader, "idle")
	}
}

// begin makes the request's context and publishes it as the running
// request, so that signal_request can interrupt it.
func (e *engine) begin(ctx context.Context, msgID string) (context.Context, *running) {
	if e.cfg.MPI && e.mpiInterrupted.Load() {
		// An interrupt ends the request it was sent for, not this one;
		// but the interrupted snippet may still be on its way out and
		// call MPI once more, and that call must not block (it would take
		// the place of this request's call in the ranks' sequence). So MPI
		// waits block again only once that run has ended: Capture waits
		// for it as Exec would.
		if e.ns.Capture(ctx, func() error { return nil }) == nil {
			e.mpiInterrupted.Store(false)
			mpi.ResetInterrupt()
		}
	}
	rctx, cancel := context.WithCancel(ctx)
	run := &running{msgID: msgID, cancel: cancel}
	e.runMu.Lock()
	e.running = run
	e.runMu.Unlock()
	return rctx, run
}

func (e *engine) end(run *running) {
	e.runMu.Lock()
	if e.running == run {
		e.running = nil
	}
	e.runMu.Unlock()
	run.cancel()
}

// interrupt cancels the running request, if any, and reports its msg_id.
func (e *engine) interrupt() string {
	e.runMu.Lock()
	defer e.runMu.Unlock()
	if e.running == nil {
		return ""
	}
	e.running.interrupted.Store(true)
	e.running.cancel()
	return e.running.msgID
}

// handle dispatches on msg_type. A panic anywhere in a handler becomes an
// error reply: one bad request must not take the engine down.
func (e *engine) handle(ctx context.Context, r *request) (out outcome) {
	defer func() {
		if p := recover(); p != nil {
			e.log.Error("panic while serving a request", "type", r.msg.Header.MsgType, "panic", p)
			out = outcome{err: panicError(p, debug.Stack())}
		}
	}()
	m := r.msg
	if r.parseErr != nil {
		return outcome{err: &remoteError{name: "ValueError", msg: "cannot decode the request: " + r.parseErr.Error()}}
	}
	switch m.Header.MsgType {
	case "execute_request":
		return e.executeRequest(ctx, m)
	case "apply_request":
		return e.applyRequest(ctx, m)
	case "kernel_info_request":
		return outcome{content: kernelInfo()}
	}
	return outcome{err: &remoteError{
		name: "NotImplementedError",
		msg:  fmt.Sprintf("the Go engine does not handle %q on its shell channel", m.Header.MsgType),
	}}
}

type executeContent struct {
	Code   string `json:"code"`
	Silent bool   `json:"silent"`
}

type executeReply struct {
	Status          string         `json:"status"`
	ExecutionCount  int            `json:"execution_count"`
	UserExpressions map[string]any `json:"user_expressions"`
	Payload         []any          `json:"payload"`
}

type executeResult struct {
	Data           map[string]string `json:"data"`
	Metadata       map[string]any    `json:"metadata"`
	ExecutionCount int               `json:"execution_count"`
}

// executeRequest runs Go source in the namespace. The value of a trailing
// expression is published as execute_result even for silent requests: Go
// clients use it as the value of Execute, and Python clients merely record
// it.
func (e *engine) executeRequest(ctx context.Context, m *wire.Message) outcome {
	var c executeContent
	if err := m.DecodeContent(&c); err != nil {
		return outcome{err: &remoteError{name: "ValueError", msg: err.Error()}}
	}
	e.execCount++
	n := e.execCount
	if !c.Silent {
		e.publish("execute_input", "execute_input", m.RawHeader, map[string]any{"code": c.Code, "execution_count": n})
	}
	res, err := e.ns.Exec(ctx, c.Code)
	// Output must precede the result and the reply, as in ipykernel.
	e.flushStreams(true)
	if err != nil {
		return outcome{err: err, execCount: &n}
	}
	if res.HasValue {
		e.publish("execute_result", "execute_result", m.RawHeader, executeResult{
			Data:           map[string]string{"text/plain": res.Text},
			Metadata:       map[string]any{},
			ExecutionCount: n,
		})
	}
	return outcome{content: executeReply{Status: "ok", ExecutionCount: n, UserExpressions: map[string]any{}, Payload: []any{}}}
}

// notPython is the evalue of the reply to a Python (pickled) apply_request.
const notPython = "this is a Go engine (ipp-hpc): it cannot run Python functions sent with apply; " +
	"use execute with Go source, or call registered Go functions from the Go client"

// applyRequest calls a built-in or registered Go function. A request
// without the "go" object is Python's: pickled buffers (pythonApply serves
// push, pull and calls by name; other Python functions only a Python
// engine can run).
func (e *engine) applyRequest(ctx context.Context, m *wire.Message) outcome {
	var c protocol.ApplyContent
	err := m.DecodeContent(&c)
	if (err != nil || c.Go == nil) && pickle.IsPickled(m.Buffers) {
		return e.pythonApply(ctx, m)
	}
	if err != nil || c.Go == nil {
		return outcome{err: &remoteError{
			name: "NotImplementedError",
			msg:  notPython,
			traceback: []string{
				"Traceback (Go engine " + e.uuid + "):",
				"  apply_request with pickled Python arguments cannot be unpickled in Go",
				"NotImplementedError: " + notPython,
			},
		}}
	}
	args, err := decodeArgs(c.Go, m.Buffers)
	if err != nil {
		return outcome{err: err}
	}
	result, err := e.call(ctx, c.Go.Func, args)
	if err != nil {
		return outcome{err: err}
	}
	frames, err := codec.Encode(result)
	if err != nil {
		return outcome{err: &remoteError{name: "TypeError", msg: fmt.Sprintf("%s: cannot encode the result (%T): %v", c.Go.Func, result, err)}}
	}
	return outcome{
		content: map[string]any{"status": "ok", "go": map[string]int{"frames": len(frames)}},
		buffers: frames,
	}
}

// decodeArgs splits the buffers by Call.ArgFrames and decodes each
// argument.
func decodeArgs(call *protocol.Call, buffers [][]byte) ([]any, error) {
	total := 0
	for _, n := range call.ArgFrames {
		if n < 1 {
			return nil, &remoteError{name: "ValueError", msg: fmt.Sprintf("apply %s: arg_frames %v has a count below 1", call.Func, call.ArgFrames)}
		}
		total += n
	}
	if total != len(buffers) {
		return nil, &remoteError{name: "ValueError", msg: fmt.Sprintf("apply %s: arg_frames %v describe %d buffers, the request has %d", call.Func, call.ArgFrames, total, len(buffers))}
	}
	args := make([]any, 0, len(call.ArgFrames))
	at := 0
	for i, n := range call.ArgFrames {
		v, err := codec.Decode(buffers[at : at+n])
		if err != nil {
			return nil, &remoteError{name: "ValueError", msg: fmt.Sprintf("apply %s: argument %d: %v", call.Func, i, err)}
		}
		args = append(args, v)
		at += n
	}
	return args, nil
}

// kernelInfo is the kernel_info_reply content.
func kernelInfo() map[string]any {
	return map[string]any{
		"status":                 "ok",
		"protocol_version":       wire.ProtocolVersion,
		"implementation":         "ipp-go",
		"implementation_version": "0.1",
		"language_info": map[string]any{
			"name":               "go",
			"version":            runtime.Version(),
			"mimetype":           "text/x-go",
			"file_extension":     ".go",
			"pygments_lexer":     "go",
			"codemirror_mode":    "go",
			"nbconvert_exporter": "script",
		},
		"banner":     "ipp-hpc Go engine (yaegi interpreter, " + runtime.Version() + ")",
		"help_links": []any{},
	}
}

// stopping reports whether a request failed because the engine itself is
// stopping (its context ended), not because of the request or an
// interrupt. Such a request gets no reply: "context canceled" would read
// as the function's own error, while the controller tells the client the
// truth — the engine went away — once it unregisters.
func (e *engine) stopping(ctx context.Context, run *running) bool {
	return ctx.Err() != nil && !run.interrupted.Load()
}
