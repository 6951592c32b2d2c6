package protocol

import "encoding/json"

// ErrorContent is ipyparallel's error dict (spec §7.1): the content of an
// error reply, of an IOPub error (without Status and ExecutionCount), and
// of the hub's error answers. Python clients turn it into RemoteError and
// index ename, evalue and traceback, so all three are always sent. The
// controller, the engines and the Go client all read and write this one
// type; build it with NewError or NewEngineError.
type ErrorContent struct {
	// Status is "error" in replies; empty (left out) on IOPub.
	Status string `json:"status,omitempty"`
	// EName is the exception's name, which Python clients key on.
	EName string `json:"ename"`
	// EValue is the exception's message.
	EValue string `json:"evalue"`
	// Traceback holds the lines the client joins with "\n"; never empty
	// when built by a constructor.
	Traceback []string `json:"traceback"`
	// EngineInfo says which engine raised the error; its zero value (a
	// failure no engine raised) is sent as {}.
	EngineInfo ErrorEngineInfo `json:"engine_info"`
	// ExecutionCount is set on execute_reply errors only, as ipykernel
	// does.
	ExecutionCount *int `json:"execution_count,omitempty"`
}

// ErrorEngineInfo is the engine_info object of an error dict. The 7.1
// Python client looks engine_uuid up among its engines and prints
// engine_id and method, so a non-empty engine_info lacking any of the
// three keys breaks it: this type sends all three or none (spec §7.1).
// An ErrorEngineInfo without EngineUUID is none: every engine has a uuid,
// and the client cannot use an engine_info without one.
type ErrorEngineInfo struct {
	// EngineUUID is the engine's uuid (its identity and session).
	EngineUUID string `json:"engine_uuid"`
	// EngineID is the engine's id; -1 when the sender did not know it
	// (7.1 Python engines send -1 in error content) or left it out.
	EngineID int `json:"engine_id"`
	// Method is the request kind: "execute", "apply", or a control
	// request's name without "_request".
	Method string `json:"method"`
}

// IsZero reports whether no engine raised the error: the error came from a
// scheduler, the hub, the controller, or a client's own synthesis. Such
// errors are never followed by IOPub output from an engine.
func (ei ErrorEngineInfo) IsZero() bool { return ei.EngineUUID == "" }

// MarshalJSON writes all three keys, or {} when IsZero.
func (ei ErrorEngineInfo) MarshalJSON() ([]byte, error) {
	if ei.IsZero() {
		return []byte("{}"), nil
	}
	type plain ErrorEngineInfo
	return json.Marshal(plain(ei))
}

// UnmarshalJSON reads an engine_info object; an absent or null engine_id
// reads as -1 so that it is never taken for engine 0.
func (ei *ErrorEngineInfo) UnmarshalJSON(data []byte) error {
	var raw struct {
		EngineUUID string `json:"engine_uuid"`
		EngineID   *int   `json:"engine_id"`
		Method     string `json:"method"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	*ei = ErrorEngineInfo{EngineUUID: raw.EngineUUID, EngineID: -1, Method: raw.Method}
	if raw.EngineID != nil {
		ei.EngineID = *raw.EngineID
	}
	return nil
}

// NewError is the error dict of a failure no engine raised (a scheduler,
// the hub or the controller answering in an engine's stead): engine_info
// {} as ipyparallel's schedulers send it, and a one-line traceback
// "ename: evalue" so the client has something to print.
func NewError(ename, evalue string) ErrorContent {
	return ErrorContent{
		Status:    "error",
		EName:     ename,
		EValue:    evalue,
		Traceback: []string{ename + ": " + evalue},
	}
}

// NewEngineError is the error dict of a failure raised on an engine while
// serving a request of type requestType. An empty ename becomes "Error"
// (clients key on the name, and Python's RemoteError needs one) and an
// empty traceback becomes the one line "ename: evalue".
func NewEngineError(ename, evalue string, traceback []string, engineUUID string, engineID int, requestType string) ErrorContent {
	if ename == "" {
		ename = "Error"
	}
	if len(traceback) == 0 {
		traceback = []string{ename + ": " + evalue}
	}
	return ErrorContent{
		Status:     "error",
		EName:      ename,
		EValue:     evalue,
		Traceback:  traceback,
		EngineInfo: ErrorEngineInfo{EngineUUID: engineUUID, EngineID: engineID, Method: Method(requestType)},
	}
}
