package controller

import (
	"time"

	json "github.com/goccy/go-json"
)

// TaskRecord is one request as the hub remembers it: ipyparallel's
// TaskRecord (hub.py init_record), with the same field names in its
// document form (Doc), because db_request queries and projects by those
// names and the Python client reads them back.
//
// It is the contract between the three parts of the task database: the
// in-memory index the hub updates as messages pass (records.go), the
// persistent backends (--db), and the query language of db_request
// (dbquery.go), which sees records only through Doc.
type TaskRecord struct {
	MsgID      string
	Header     json.RawMessage // request header
	Metadata   json.RawMessage // request metadata
	Content    json.RawMessage // request content
	Buffers    [][]byte        // request buffers (kept for resubmit_request)
	Submitted  time.Time       // request header.date
	ClientUUID string          // request header.session
	EngineUUID string          // where it ran ("" while unassigned)
	Queue      string          // "mux", "task" or "" (bare output record)
	// Started is the reply's metadata.started, Completed its header.date,
	// Received when the hub saw the reply; zero while pending.
	Started, Completed, Received time.Time
	// Resubmitted is the msg_id of this task's resubmission, if any.
	Resubmitted    string
	ResultHeader   json.RawMessage
	ResultMetadata json.RawMessage
	ResultContent  json.RawMessage
	ResultBuffers  [][]byte
	ExecuteInput   string          // IOPub execute_input code
	ExecuteResult  json.RawMessage // IOPub execute_result content
	Error          json.RawMessage // IOPub error content
	Stdout, Stderr string
}

// recordKeys are the document keys of a TaskRecord, ipyparallel's order;
// db_request's default projection is all of them.
var recordKeys = []string{
	"msg_id", "header", "metadata", "content", "buffers", "submitted",
	"client_uuid", "engine_uuid", "started", "completed", "resubmitted",
	"received", "result_header", "result_metadata", "result_content",
	"result_buffers", "queue", "execute_input", "execute_result", "error",
	"stdout", "stderr",
}

// Doc is the record as a document, keyed as ipyparallel keys it. Dates are
// time.Time (nil when unset), JSON fields are decoded into plain values
// (map[string]any, []any, string, float64, bool, nil) so that queries can
// reach into them ("header.msg_type"), and the two buffer lists are
// [][]byte. A stored JSON field that does not decode is nil.
func (r *TaskRecord) Doc() map[string]any { return r.DocOf(recordKeys) }

// DocOf is Doc restricted to keys: a query decodes only the JSON fields
// it looks at, which over a large store is most of its cost. Keys that
// are not record keys are left out.
func (r *TaskRecord) DocOf(keys []string) map[string]any {
	doc := make(map[string]any, len(keys))
	for _, k := range keys {
		if v, ok := r.docField(k); ok {
			doc[k] = v
		}
	}
	return doc
}

// docField is one field of Doc.
func (r *TaskRecord) docField(key string) (any, bool) {
	date := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return t
	}
	str := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	switch key {
	case "msg_id":
		return r.MsgID, true
	case "header":
		return plainJSON(r.Header), true
	case "metadata":
		return plainJSON(r.Metadata), true
	case "content":
		return plainJSON(r.Content), true
	case "buffers":
		return r.Buffers, true
	case "submitted":
		return date(r.Submitted), true
	case "client_uuid":
		return str(r.ClientUUID), true
	case "engine_uuid":
		return str(r.EngineUUID), true
	case "started":
		return date(r.Started), true
	case "completed":
		return date(r.Completed), true
	case "resubmitted":
		return str(r.Resubmitted), true
	case "received":
		return date(r.Received), true
	case "result_header":
		return plainJSON(r.ResultHeader), true
	case "result_metadata":
		return plainJSON(r.ResultMetadata), true
	case "result_content":
		return plainJSON(r.ResultContent), true
	case "result_buffers":
		return r.ResultBuffers, true
	case "queue":
		return str(r.Queue), true
	case "execute_input":
		return str(r.ExecuteInput), true
	case "execute_result":
		return plainJSON(r.ExecuteResult), true
	case "error":
		return plainJSON(r.Error), true
	case "stdout":
		return r.Stdout, true
	case "stderr":
		return r.Stderr, true
	}
	return nil, false
}

// plainJSON decodes raw into plain Go values; empty or invalid is nil.
func plainJSON(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	return v
}
