package protocol

import (
	"encoding/json"
	"strings"
)

// FailureReplyType is the msg_type of a failure a task scheduler makes up
// itself (TaskTimeout, ImpossibleDependency, a task stranded on a dead
// engine...): always apply_reply, even for an execute_request, as
// ipyparallel's scheduler sends it (spec §6.2) and as its client
// synthesizes replies for engines that died (spec §7.2). Clients match
// such a reply by its parent's msg_id, and every client handles
// apply_reply.
const FailureReplyType = "apply_reply"

// ReplyType is the msg_type that answers a request of type requestType,
// whoever answers it (an engine, or the controller in an engine's stead
// for a direct or broadcast request it cannot deliver): "<kind>_request"
// → "<kind>_reply", as every Jupyter kernel does (execute_request →
// execute_reply, apply_request → apply_reply, clear_request →
// clear_reply; spec §5.1, §5.3). Anything else, which no client sends as
// a request, gets FailureReplyType: the Python client raises on a shell
// reply type it has no handler for, and handles apply_reply everywhere.
func ReplyType(requestType string) string {
	if kind, ok := strings.CutSuffix(requestType, "_request"); ok && kind != "" {
		return kind + "_reply"
	}
	return FailureReplyType
}

// Method names a request kind as engine_info.method does: the msg_type
// without "_request" ("execute", "apply").
func Method(requestType string) string {
	return strings.TrimSuffix(requestType, "_request")
}

// ReplyMetadata is the metadata of an engine's reply (spec §5.1), as
// ipyparallel's engines send it: the Python task scheduler drops a reply
// without status, and the broadcast schedulers need is_broadcast,
// is_coalescing and original_msg_id, so an engine always sends those keys.
// Go engines write it; the Go client reads Started, Engine and IOPubIdle.
type ReplyMetadata struct {
	// Started is when the engine began handling the request
	// (wire.FormatDate); other engines and synthetic replies may send
	// null, read as "".
	Started string `json:"started"`
	// DependenciesMet is false only for an UnmetDependency error, which
	// makes the task scheduler try another engine.
	DependenciesMet bool `json:"dependencies_met"`
	// Engine is the replying engine's uuid.
	Engine string `json:"engine"`
	// IsBroadcast, IsCoalescing and OriginalMsgID are copied from the
	// request's metadata.
	IsBroadcast   bool   `json:"is_broadcast"`
	IsCoalescing  bool   `json:"is_coalescing"`
	OriginalMsgID string `json:"original_msg_id"`
	// Status is "ok", "error" or "aborted", as in the content.
	Status string `json:"status"`
	// EngineInfo is set on errors.
	EngineInfo *ErrorEngineInfo `json:"engine_info,omitempty"`
	// Label is copied from the request (ipyparallel 9.1).
	Label json.RawMessage `json:"label,omitempty"`
	// IOPubIdle is set on replies to quiet Go apply requests only
	// (Call.Quiet): false means the engine published nothing for the
	// request and no status idle follows, so the client need not wait for
	// one; true means output was published and a status idle follows.
	IOPubIdle *bool `json:"iopub_idle,omitempty"`
}

// ParseReplyMetadata reads reply metadata from any peer leniently: a key
// of the wrong type keeps its zero value instead of losing the others,
// because metadata only refines a reply that is delivered regardless.
// Callers on hot paths decode into ReplyMetadata with their own JSON
// library first and fall back to this when that fails.
func ParseReplyMetadata(raw []byte) ReplyMetadata {
	var md ReplyMetadata
	if json.Unmarshal(raw, &md) == nil {
		return md
	}
	md = ReplyMetadata{}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return md
	}
	_ = json.Unmarshal(m["started"], &md.Started)
	_ = json.Unmarshal(m["dependencies_met"], &md.DependenciesMet)
	_ = json.Unmarshal(m["engine"], &md.Engine)
	_ = json.Unmarshal(m["is_broadcast"], &md.IsBroadcast)
	_ = json.Unmarshal(m["is_coalescing"], &md.IsCoalescing)
	_ = json.Unmarshal(m["original_msg_id"], &md.OriginalMsgID)
	_ = json.Unmarshal(m["status"], &md.Status)
	if _, ok := m["engine_info"]; ok {
		var ei ErrorEngineInfo
		if json.Unmarshal(m["engine_info"], &ei) == nil {
			md.EngineInfo = &ei
		}
	}
	if l, ok := m["label"]; ok {
		md.Label = l
	}
	var idle *bool // null stays nil: absent
	if json.Unmarshal(m["iopub_idle"], &idle) == nil {
		md.IOPubIdle = idle
	}
	return md
}

// MetaRetryFailedEngines is a request-metadata key our client sets on a
// load-balanced task with retries: once every engine has failed the task,
// run the retry again where it failed instead of ending it as ipyparallel
// does (held until its timeout, then TaskTimeout). The Python client never
// sends it, and the Python controller ignores it.
const MetaRetryFailedEngines = "retry_failed_engines"
