package ipp

import (
	"fmt"
	"sync"
	"time"

	json "github.com/goccy/go-json"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// Metadata describes one request's execution, as ipyparallel's
// AsyncResult.metadata does.
type Metadata struct {
	// MsgID is the request's msg_id.
	MsgID string
	// EngineID is the engine that ran it, -1 while unknown (a load-balanced
	// task before its reply).
	EngineID int
	// EngineUUID is that engine's uuid.
	EngineUUID string
	// Submitted is the request's header date; Started the engine's
	// metadata.started; Completed the reply's header date; Received our
	// clock when the reply arrived. Zero when unknown.
	Submitted, Started, Completed, Received time.Time
	// Status is the reply status: "ok", "error" or "aborted"; "" while
	// pending.
	Status string
	// Stdout and Stderr accumulate the engine's output streams.
	Stdout, Stderr string
	// ExecuteInput is the code echoed by a non-silent execute.
	ExecuteInput string
	// ExecuteResult is the data bundle of an execute_result (e.g.
	// {"text/plain": "42"}), nil if there was none.
	ExecuteResult map[string]any
	// ExecutionCount is the engine's execution counter for execute requests.
	ExecutionCount int
	// Outputs holds display_data contents in arrival order.
	Outputs []map[string]any
	// Error is the error published on IOPub, if any.
	Error *RemoteError
	// OutputComplete reports that the engine's IOPub "idle" for this
	// request arrived (false if the client stopped waiting for it).
	OutputComplete bool
}

// future is one outstanding execute_request or apply_request. It is
// complete when its reply arrived and, for replies an engine produced, when
// the engine's IOPub "idle" for it arrived too, so that all of its output is
// in (IOPub and shell are separate sockets: the reply can overtake output).
type future struct {
	c        *Client
	msgID    string
	msgType  string
	method   string // "execute", "apply" or a function name, for errors
	engine   string // target uuid of direct requests; "" for tasks
	engineID int

	mu       sync.Mutex
	md       Metadata
	content  json.RawMessage
	buffers  [][]byte
	err      error
	replied  bool
	idle     bool
	noIdle   bool // no IOPub output will follow (synthetic or scheduler reply)
	finished bool
	timer    *time.Timer
	watchers []func()
	done     chan struct{}
	// chunks are the stream outputs in arrival order, each stamped with
	// the client-wide arrival sequence so that AsyncResult.Outputs can
	// merge several requests' streams in the order they arrived.
	chunks []outputChunk
}

// outputChunk is one stream message and its arrival sequence number.
type outputChunk struct {
	seq uint64
	Output
}

func (c *Client) newFuture(msgType, method, engine string, engineID int) *future {
	return &future{
		c: c, msgType: msgType, method: method, engine: engine, engineID: engineID,
		md:   Metadata{EngineID: engineID, EngineUUID: engine},
		done: make(chan struct{}),
	}
}

// finishLocked completes the future if its conditions hold; it returns the
// callbacks to run (outside the lock) and whether it finished now.
func (f *future) finishLocked() ([]func(), bool) {
	if f.finished || !f.replied || !(f.idle || f.noIdle) {
		return nil, false
	}
	f.finished = true
	if f.timer != nil {
		f.timer.Stop()
	}
	close(f.done)
	w := f.watchers
	f.watchers = nil
	return w, true
}

// after runs the callbacks of a completion and drops the future from the
// client's table (so late IOPub for it is ignored).
func (f *future) after(cbs []func(), finished bool) {
	if !finished {
		return
	}
	f.c.forget(f)
	f.c.outputChanged()
	for _, cb := range cbs {
		cb()
	}
}

func (c *Client) forget(f *future) {
	c.mu.Lock()
	if c.futures[f.msgID] == f {
		delete(c.futures, f.msgID)
	}
	c.mu.Unlock()
}

// watch calls fn once the future is complete (at once if it already is).
func (f *future) watch(fn func()) {
	f.mu.Lock()
	if f.finished {
		f.mu.Unlock()
		fn()
		return
	}
	f.watchers = append(f.watchers, fn)
	f.mu.Unlock()
}

// fail completes the future with a client-side error (close, shutdown).
func (f *future) fail(err error) {
	f.mu.Lock()
	if f.finished {
		f.mu.Unlock()
		return
	}
	f.err = err
	f.replied, f.noIdle = true, true
	cbs, fin := f.finishLocked()
	f.mu.Unlock()
	f.after(cbs, fin)
}

// engineDied completes the future with the EngineError the Python client
// synthesizes for a direct request whose engine unregistered.
func (f *future) engineDied(id int) {
	f.mu.Lock()
	if f.finished {
		f.mu.Unlock()
		return
	}
	f.err = &RemoteError{
		Engine: id, EngineUUID: f.engine, Method: protocol.Method(f.msgType),
		EName:  "EngineError",
		EValue: fmt.Sprintf("Engine %d died while running task '%s'", id, f.msgID),
		MsgID:  f.msgID,
	}
	f.md.Status = "error"
	f.md.Received = time.Now()
	f.replied, f.noIdle = true, true
	cbs, fin := f.finishLocked()
	f.mu.Unlock()
	f.after(cbs, fin)
}

// replyContent is the union of execute_reply and apply_reply contents.
type replyContent struct {
	protocol.ErrorContent
	ExecutionCount int `json:"execution_count"`
	// Go is set on replies of Go engines to a Go apply_request: the number
	// of buffer frames holding the encoded result.
	Go *struct {
		Frames int `json:"frames"`
	} `json:"go"`
}

// handleReply records a reply to a future.
func (c *Client) handleReply(f *future, msg *wire.Message) {
	var rc replyContent
	if err := json.Unmarshal(msg.Content, &rc); err != nil {
		c.log.Warn("bad reply content", "msg_type", msg.Header.MsgType, "err", err)
		return
	}
	// Metadata is optional for scheduler replies; a malformed one is read
	// key by key rather than losing the engine or iopub_idle.
	var rmd protocol.ReplyMetadata
	if len(msg.Metadata) > 0 && json.Unmarshal(msg.Metadata, &rmd) != nil {
		rmd = protocol.ParseReplyMetadata(msg.Metadata)
	}
	uuid := rmd.Engine
	if uuid == "" && len(msg.Idents) > 0 {
		// The mux and task relays put the engine's uuid in front.
		uuid = string(msg.Idents[0])
	}
	if uuid == "" {
		uuid = f.engine
	}
	id := -1
	if uuid != "" {
		if i, ok := c.engineID(uuid); ok {
			id = i
		}
	}
	var rerr error
	noIdle := false
	switch rc.Status {
	case "ok":
	case "error":
		re := c.remoteError(&rc.ErrorContent, f.msgID)
		if re.Method == "" && !rc.EngineInfo.IsZero() {
			re.Method = protocol.Method(f.msgType)
		}
		rerr = re
		// Errors made by a scheduler or the hub carry no engine_info and
		// are not followed by any IOPub traffic.
		noIdle = rc.EngineInfo.IsZero()
	case "aborted":
		rerr = &RemoteError{Engine: id, EngineUUID: uuid, Method: protocol.Method(f.msgType), EName: "TaskAborted", EValue: f.msgID, MsgID: f.msgID}
		noIdle = true
	default:
		// "resubmitted" and anything else: the Python client ignores these
		// and keeps waiting; so do we.
		c.log.Debug("ignoring reply status", "status", rc.Status, "msg_id", f.msgID)
		return
	}

	quiet := rmd.IOPubIdle != nil && !*rmd.IOPubIdle
	if quiet {
		noIdle = true
	}
	f.mu.Lock()
	if f.finished || f.replied {
		f.mu.Unlock()
		c.log.Debug("stale result", "msg_id", f.msgID)
		return
	}
	f.replied = true
	f.noIdle = noIdle
	if quiet {
		// The engine said it published nothing: output is complete.
		f.md.OutputComplete = true
	}
	f.err = rerr
	f.content = msg.Content
	f.buffers = msg.Buffers
	f.md.Status = rc.Status
	f.md.Received = time.Now()
	if t, err := wire.ParseDate(msg.Header.Date); err == nil {
		f.md.Completed = t
	}
	if rmd.Started != "" {
		if t, err := wire.ParseDate(rmd.Started); err == nil {
			f.md.Started = t
		}
	}
	if uuid != "" {
		f.md.EngineUUID = uuid
		f.md.EngineID = id
	}
	if f.msgType == "execute_request" && rc.Status == "ok" {
		f.md.ExecutionCount = rc.ExecutionCount
	}
	cbs, fin := f.finishLocked()
	if !fin && !f.idle && c.cfg.outputGrace > 0 {
		f.timer = time.AfterFunc(c.cfg.outputGrace, f.idleTimeout)
	}
	f.mu.Unlock()
	f.after(cbs, fin)
}

// outputGraceCap bounds the output grace's extensions: a request whose
// idle was lost completes at the latest this many graces after its reply,
// however much other output of ours keeps arriving.
const outputGraceCap = 12

// idleTimeout completes a replied future whose IOPub idle never came, once
// IOPub has been silent about our requests for the output grace while the
// controller was seen working: something from it (a keepalive answer, a
// reply, anyone's output) arrived a whole grace after our last output. A
// controller that stalls (1,000 engines on two cores starved it for 19 s)
// holds our idle in its backlog; that silence is not a loss, and counting
// it completed futures whose idle and even stdout came seconds later.
func (f *future) idleTimeout() {
	f.mu.Lock()
	if f.finished {
		f.mu.Unlock()
		return
	}
	grace := f.c.cfg.outputGrace
	own := time.Duration(f.c.ownOutput.Load())
	quiet := time.Since(f.c.born) - own
	alive := time.Duration(f.c.heard.Load()) - own
	if f.c.cfg.keepaliveInterval <= 0 || f.c.cfg.keepaliveMisses <= 0 {
		// Without keepalive probes an idle controller says nothing, so
		// its silence proves nothing either way: the grace alone counts.
		alive = quiet
	}
	if (quiet < grace || alive < grace) && time.Since(f.md.Received) < outputGraceCap*grace {
		// The keepalive's probes move heard on while the controller
		// answers, so a stalled one is looked at again every so often.
		f.timer = time.AfterFunc(max(grace-quiet, min(grace-alive, time.Second), 10*time.Millisecond), f.idleTimeout)
		f.mu.Unlock()
		return
	}
	f.c.log.Debug("no IOPub idle after reply; completing without it", "msg_id", f.msgID)
	f.idle = true // OutputComplete stays false: the output may be partial
	cbs, fin := f.finishLocked()
	f.mu.Unlock()
	f.after(cbs, fin)
}

// handleIOPub records an output message for this request.
func (f *future) handleIOPub(msg *wire.Message) {
	// A load-balanced task learns its engine from the first IOPub message
	// (the engine's uuid is in the metadata), so that it can be
	// interrupted and its output attributed before the reply arrives.
	var from struct {
		Engine string `json:"engine"`
	}
	fromID := -1
	if f.engine == "" && json.Unmarshal(msg.Metadata, &from) == nil && from.Engine != "" {
		if id, ok := f.c.engineID(from.Engine); ok {
			fromID = id
		}
	}
	streamed := false
	var re *RemoteError
	if msg.Header.MsgType == "error" {
		var ec protocol.ErrorContent
		if err := msg.DecodeContent(&ec); err == nil {
			re = f.c.remoteError(&ec, f.msgID)
		}
	}
	f.mu.Lock()
	if fromID >= 0 && f.md.EngineUUID == "" {
		f.md.EngineUUID, f.md.EngineID = from.Engine, fromID
	}
	switch msg.Header.MsgType {
	case "status":
		var s struct {
			State string `json:"execution_state"`
		}
		if msg.DecodeContent(&s) == nil && s.State == "idle" {
			f.idle = true
			f.md.OutputComplete = true
		}
	case "stream":
		var s struct {
			Name string `json:"name"`
			Text string `json:"text"`
		}
		if msg.DecodeContent(&s) == nil {
			if s.Name == "stderr" {
				f.md.Stderr += s.Text
			} else {
				s.Name = "stdout"
				f.md.Stdout += s.Text
			}
			f.chunks = append(f.chunks, outputChunk{
				seq:    f.c.outSeq.Add(1),
				Output: Output{Engine: f.md.EngineID, Stream: s.Name, Text: s.Text},
			})
			streamed = true
		}
	case "execute_input":
		var s struct {
			Code string `json:"code"`
		}
		if msg.DecodeContent(&s) == nil {
			f.md.ExecuteInput = s.Code
		}
	case "execute_result":
		var s struct {
			Data           map[string]any `json:"data"`
			ExecutionCount int            `json:"execution_count"`
		}
		if msg.DecodeContent(&s) == nil {
			f.md.ExecuteResult = s.Data
		}
	case "display_data":
		var s map[string]any
		if msg.DecodeContent(&s) == nil {
			f.md.Outputs = append(f.md.Outputs, s)
		}
	case "error":
		if re != nil {
			f.md.Error = re
		}
	}
	cbs, fin := f.finishLocked()
	f.mu.Unlock()
	if streamed && !fin {
		f.c.outputChanged()
	}
	f.after(cbs, fin)
}

// snapshot returns a copy of the metadata.
func (f *future) snapshot() Metadata {
	f.mu.Lock()
	defer f.mu.Unlock()
	md := f.md
	md.Outputs = append([]map[string]any(nil), f.md.Outputs...)
	return md
}

// isDone reports completion without blocking.
func (f *future) isDone() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}
