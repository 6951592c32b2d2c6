package controller

import (
	"errors"
	"time"

	json "github.com/goccy/go-json"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// What resubmit_request and the IOPub relay need from the records store,
// beyond find and get (records.go).

// lookup returns the records of ids that exist (complete, buffers read
// back from disk if evicted there), the ids that do not, and those whose
// request can no longer be sent again (buffers not kept).
func (rs *records) lookup(ids []string) (found []*TaskRecord, missing, lost []string, err error) {
	for _, id := range ids {
		if !rs.has(id) {
			missing = append(missing, id)
			continue
		}
		r, gerr := rs.get(id)
		switch {
		case errors.Is(gerr, errNoDB):
			return nil, nil, nil, gerr
		case gerr != nil:
			lost = append(lost, id)
		default:
			found = append(found, &r)
		}
	}
	return found, missing, lost, nil
}

// has tells whether a request with msgID is recorded.
func (rs *records) has(msgID string) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r, ok := rs.byID[msgID]
	return ok && !r.bare
}

// noteIO keeps what a request's IOPub execute_input, execute_result or
// error said, for result_request's io and db_request. Like output, an
// oversized one is not kept.
func (rs *records) noteIO(msgID, msgType string, content []byte) {
	if msgID == "" || rs.mode == DBNone || len(content) > rs.outputCap() || !json.Valid(content) {
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
		rs.seq++
		r = &record{TaskRecord: TaskRecord{MsgID: msgID}, bare: true, seq: rs.seq}
		rs.byID[msgID] = r
		rs.order = append(rs.order, msgID)
	}
	if r.evicted {
		return
	}
	switch msgType {
	case "execute_input":
		r.ExecuteInput = code
	case "execute_result":
		r.ExecuteResult = clone(content)
	case "error":
		r.Error = clone(content)
	}
	if r.done {
		// Like output, IOPub often arrives after the reply.
		rs.persist(r, false, false)
	}
}

// failedReplyHeader is the header of a reply the controller makes up for
// request (a raw header) when it fails the request itself: a client
// asking for the result later reads its date, and fails on a null header.
func failedReplyHeader(request json.RawMessage, at time.Time) json.RawMessage {
	var h struct {
		MsgType string `json:"msg_type"`
	}
	json.Unmarshal(request, &h)
	out, _ := json.Marshal(wire.Header{MsgID: wire.NewID(), MsgType: protocol.ReplyType(h.MsgType), Username: "controller",
		Date: wire.FormatDate(at), Version: wire.ProtocolVersion})
	return out
}
