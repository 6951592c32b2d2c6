package protocol

// A coalescing broadcast (ipyparallel's rc.broadcast_view(is_coalescing=True))
// is answered by one combined apply_reply for all its targets. ipyparallel's
// broadcast scheduler builds it from the last reply received, so every
// other engine's error is lost. Ours keeps the shape a Python client reads
// (metadata broadcast_targets, the buffers of the successful targets
// concatenated in target order, content status ok or one engine's own error
// dict) and adds, under MetaCoalesced, what each target answered, which our
// client uses to give every engine its own result or error.

// MetaCoalesced is the reply-metadata key of the combined reply holding one
// CoalescedPart per target, in broadcast_targets order. Python clients
// ignore it.
const MetaCoalesced = "coalesced"

// MetaCoalesceAfterDeath is a request-metadata key our client sets on a
// coalescing broadcast: it fails the dead engine's part itself and wants
// the combined reply even when a target dies before answering. A Python
// client fails the whole request on the unregistration notification, so
// without this key the controller sends no combined reply once a target
// has died (a reply after the notification would be a stale result).
const MetaCoalesceAfterDeath = "coalesce_after_engine_death"

// CoalescedPart is one target's answer inside a combined reply.
type CoalescedPart struct {
	// EngineUUID and EngineID name the target.
	EngineUUID string `json:"engine_uuid"`
	EngineID   int    `json:"engine_id"`
	// Status is the target's reply content status ("ok", "error",
	// "aborted"), or "error" for a target that died before answering.
	Status string `json:"status"`
	// Buffers is how many of the combined reply's buffers are this
	// target's, in target order; 0 unless Status is "ok".
	Buffers int `json:"buffers"`
	// Content is the target's reply content for a status other than "ok"
	// (the error dict: ename, evalue, traceback, engine_info). A Go
	// engine's ok content ({"status": "ok", "go": {...}}) is kept too, so
	// its result frames can be decoded.
	Content map[string]any `json:"content,omitempty"`
	// Metadata is the target's own reply metadata (started, engine,
	// iopub_idle...), nil for a target that died.
	Metadata map[string]any `json:"metadata,omitempty"`
	// Died is set when the target died (or was not registered) before
	// answering; Content then holds an EngineError.
	Died bool `json:"died,omitempty"`
}
