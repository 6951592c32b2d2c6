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
func (r *TaskRecord) Doc() map[string]any {
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
	return map[string]any{
		"msg_id":          r.MsgID,
		"header":          plainJSON(r.Header),
		"metadata":        plainJSON(r.Metadata),
		"content":         plainJSON(r.Content),
		"buffers":         r.Buffers,
		"submitted":       date(r.Submitted),
		"client_uuid":     str(r.ClientUUID),
		"engine_uuid":     str(r.EngineUUID),
		"started":         date(r.Started),
		"completed":       date(r.Completed),
		"resubmitted":     str(r.Resubmitted),
		"received":        date(r.Received),
		"result_header":   plainJSON(r.ResultHeader),
		"result_metadata": plainJSON(r.ResultMetadata),
		"result_content":  plainJSON(r.ResultContent),
		"result_buffers":  r.ResultBuffers,
		"queue":           str(r.Queue),
		"execute_input":   str(r.ExecuteInput),
		"execute_result":  plainJSON(r.ExecuteResult),
		"error":           plainJSON(r.Error),
		"stdout":          r.Stdout,
		"stderr":          r.Stderr,
	}
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
