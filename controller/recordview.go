package controller

import (
	"slices"
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/ipp-hpc/ipp/internal/wire"
)

// What db_request and resubmit_request need from the records store, over
// the in-memory records: copies as TaskRecords, taken under the lock and
// examined outside it, so a slow query does not stall the relays that
// book every request and reply.

// taskRecord copies r as a TaskRecord; rs.mu held. Slices are shared:
// the store replaces them, never writes into them.
func (r *record) taskRecord() *TaskRecord {
	t := &TaskRecord{
		MsgID:          r.msgID,
		Header:         r.header,
		Metadata:       r.metadata,
		Content:        r.content,
		Buffers:        r.buffers,
		Submitted:      r.submitted,
		ClientUUID:     r.clientUUID,
		EngineUUID:     r.engineUUID,
		Queue:          r.queue,
		Received:       r.received,
		Resubmitted:    r.resubmitted,
		ResultHeader:   r.resultHeader,
		ResultMetadata: r.resultMetadata,
		ResultContent:  r.resultContent,
		ResultBuffers:  r.resultBuffers,
		ExecuteInput:   r.execInput,
		ExecuteResult:  r.execResult,
		Error:          r.ioError,
		Stdout:         r.stdout,
		Stderr:         r.stderr,
	}
	if r.completed {
		var h struct {
			Date string `json:"date"`
		}
		if json.Unmarshal(r.resultHeader, &h) == nil {
			t.Completed, _ = wire.ParseDate(h.Date)
		}
		if t.Completed.IsZero() {
			// Failed by the controller (engine death): no reply header.
			t.Completed = r.received
		}
		var md struct {
			Started *string `json:"started"`
		}
		if json.Unmarshal(r.resultMetadata, &md) == nil && md.Started != nil {
			t.Started, _ = wire.ParseDate(*md.Started)
		}
	}
	return t
}

// find returns the records (requests, not bare output) for which match
// is true, in submission order. match gets the record, not its Doc, so
// that a query builds only the part of the document it looks at.
func (rs *records) find(match func(r *TaskRecord) bool) []*TaskRecord {
	rs.mu.Lock()
	all := make([]*TaskRecord, 0, len(rs.order))
	for _, id := range rs.order {
		if r, ok := rs.byID[id]; ok && r.header != nil {
			all = append(all, r.taskRecord())
		}
	}
	rs.mu.Unlock()
	return slices.DeleteFunc(all, func(t *TaskRecord) bool { return !match(t) })
}

// lookup returns the records of ids that exist, the ids that do not, and
// those whose buffers were dropped to respect the result cache.
func (rs *records) lookup(ids []string) (found []*TaskRecord, missing, evicted []string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, id := range ids {
		r, ok := rs.byID[id]
		switch {
		case !ok || r.header == nil:
			missing = append(missing, id)
		case r.evicted:
			evicted = append(evicted, id)
		default:
			found = append(found, r.taskRecord())
		}
	}
	return found, missing, evicted
}

// setResubmitted notes on the record of msgID the id it was resubmitted as.
func (rs *records) setResubmitted(msgID, newID string) {
	rs.mu.Lock()
	if r, ok := rs.byID[msgID]; ok {
		r.resubmitted = newID
	}
	rs.mu.Unlock()
}

// noteIO keeps what a request's IOPub execute_input, execute_result or
// error said, for result_request's io and db_request. Like output, an
// oversized one is not kept.
func (rs *records) noteIO(msgID, msgType string, content []byte) {
	if msgID == "" || len(content) > rs.outputCap() || !json.Valid(content) {
		return
	}
	var code string
	if msgType == "execute_input" {
		var c struct {
			Code string `json:"code"`
		}
		if json.Unmarshal(content, &c) != nil {
			return
		}
		code = c.Code
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r, ok := rs.byID[msgID]
	if !ok {
		r = &record{msgID: msgID}
		rs.byID[msgID] = r
		rs.order = append(rs.order, msgID)
	}
	if r.evicted {
		return
	}
	switch msgType {
	case "execute_input":
		r.execInput = code
	case "execute_result":
		r.execResult = clone(content)
	case "error":
		r.ioError = clone(content)
	}
}

// io is result_reply's io for r; rs.mu held.
func (r *record) io() map[string]any {
	raw := func(b json.RawMessage) any {
		if len(b) == 0 {
			return nil
		}
		return b
	}
	var input any
	if r.execInput != "" {
		input = r.execInput
	}
	return map[string]any{"stdout": r.stdout, "stderr": r.stderr, "execute_input": input,
		"execute_result": raw(r.execResult), "error": raw(r.ioError)}
}

// has tells whether a request with msgID is recorded.
func (rs *records) has(msgID string) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r, ok := rs.byID[msgID]
	return ok && r.header != nil
}

// failedReplyHeader is the header of a reply the controller makes up for
// request (a raw header) when it fails the request itself.
func failedReplyHeader(request json.RawMessage, at time.Time) json.RawMessage {
	var h struct {
		MsgType string `json:"msg_type"`
	}
	json.Unmarshal(request, &h)
	replyType := "apply_reply"
	if strings.HasSuffix(h.MsgType, "_request") {
		replyType = strings.TrimSuffix(h.MsgType, "_request") + "_reply"
	}
	out, _ := json.Marshal(wire.Header{MsgID: wire.NewID(), MsgType: replyType, Username: "controller",
		Date: wire.FormatDate(at), Version: wire.ProtocolVersion})
	return out
}
