package ipp

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ipp-hpc/ipp/internal/protocol"
)

// Errors returned by the client itself (not raised on an engine).
var (
	// ErrClosed is returned by calls on a closed Client and by results that
	// were still outstanding when it closed.
	ErrClosed = errors.New("ipp: client closed")
	// ErrHubShutdown is returned for requests outstanding when the
	// controller announced its shutdown.
	ErrHubShutdown = errors.New("ipp: controller shut down")
	// ErrControllerLost is returned for requests outstanding when the
	// controller stopped answering without announcing a shutdown (killed,
	// host down, network cut): the client's keepalive probes went
	// unanswered and nothing else arrived either. The error returned wraps
	// it with the controller's address and how long it was silent; test
	// with errors.Is. The client is closed afterwards.
	ErrControllerLost = errors.New("ipp: controller lost")
	// ErrNoEngines is returned when a view has no engine to send to.
	ErrNoEngines = errors.New("ipp: no engines registered (use WaitForEngines)")
	// ErrNoTaskScheduler is returned by load-balanced calls when the
	// controller runs without a task scheduler (task_scheme "none").
	ErrNoTaskScheduler = errors.New("ipp: the controller has no task scheduler")
)

// RemoteError is an exception raised on an engine (or a failure reported by
// a scheduler or the client in its place, such as EngineError, TaskTimeout,
// ImpossibleDependency or TaskAborted). It carries ipyparallel's error dict
// (ename, evalue, traceback, engine_info).
type RemoteError struct {
	// Engine is the engine id, or -1 when the error did not come from an
	// engine (scheduler and hub failures, engine death).
	Engine int
	// EngineUUID is the engine's uuid when known.
	EngineUUID string
	// Method is "execute" or "apply" when the engine said so.
	Method string
	// EName is the exception class name, e.g. "ZeroDivisionError".
	EName string
	// EValue is the exception message.
	EValue string
	// Traceback holds the engine's traceback lines (may contain ANSI colour).
	Traceback []string
	// MsgID is the request the error answers.
	MsgID string
}

// Error renders the error like ipyparallel 8: "[0:apply] NameError: x".
func (e *RemoteError) Error() string {
	var b strings.Builder
	if e.Engine >= 0 {
		method := e.Method
		if method == "" {
			method = "?"
		}
		fmt.Fprintf(&b, "[%d:%s] ", e.Engine, method)
	}
	b.WriteString(e.EName)
	if e.EValue != "" {
		b.WriteString(": ")
		b.WriteString(e.EValue)
	}
	return b.String()
}

// TracebackText joins the traceback the way the Python client prints it.
func (e *RemoteError) TracebackText() string { return strings.Join(e.Traceback, "\n") }

// IsEngineError reports whether err is, or contains (for example inside a
// CompositeError), a RemoteError whose engine died while running the
// request.
func IsEngineError(err error) bool { return hasRemote(err, "EngineError") }

// hasRemote walks err's whole tree; errors.As would stop at the first
// RemoteError, which may be another failure of the same CompositeError.
func hasRemote(err error, ename string) bool {
	if err == nil {
		return false
	}
	if re, ok := err.(*RemoteError); ok && re.EName == ename {
		return true
	}
	switch x := err.(type) {
	case interface{ Unwrap() error }:
		return hasRemote(x.Unwrap(), ename)
	case interface{ Unwrap() []error }:
		for _, e := range x.Unwrap() {
			if hasRemote(e, ename) {
				return true
			}
		}
	}
	return false
}

// CompositeError collects the failures of a multi-request result (several
// engines, or several map chunks). Results keeps every successful value at
// its position, with nil where a request failed, so partial results are not
// lost.
type CompositeError struct {
	// Method is the call that failed ("execute", "apply", or a function name).
	Method string
	// Errors holds one RemoteError per failed request, in request order.
	Errors []*RemoteError
	// Results holds the values of every request in order; failed ones are nil.
	Results []any
}

// Error lists each engine's failure.
func (e *CompositeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "one or more exceptions raised in: %s", e.Method)
	for _, re := range e.Errors {
		b.WriteString("\n")
		b.WriteString(re.Error())
	}
	return b.String()
}

// Unwrap exposes the individual RemoteErrors to errors.Is and errors.As.
func (e *CompositeError) Unwrap() []error {
	out := make([]error, len(e.Errors))
	for i, re := range e.Errors {
		out[i] = re
	}
	return out
}

// remoteError builds a RemoteError, fixing the engine id from the uuid
// because 7.1 Python engines report -1 in engine_info.engine_id.
func (c *Client) remoteError(ec *protocol.ErrorContent, msgID string) *RemoteError {
	re := &RemoteError{
		Engine:     -1,
		EngineUUID: ec.EngineInfo.EngineUUID,
		Method:     ec.EngineInfo.Method,
		EName:      ec.EName,
		EValue:     ec.EValue,
		Traceback:  ec.Traceback,
		MsgID:      msgID,
	}
	if !ec.EngineInfo.IsZero() {
		re.Engine = ec.EngineInfo.EngineID
	}
	if re.EngineUUID != "" {
		if id, ok := c.engineID(re.EngineUUID); ok {
			re.Engine = id
		}
	}
	return re
}

// HubError is an error answer (hub_error or an error status) to a query
// sent to the controller's hub.
type HubError struct {
	// Request is the query's msg_type.
	Request string
	// EName and EValue describe the failure as the hub reported it.
	EName, EValue string
	// Traceback holds the hub's traceback lines, if any.
	Traceback []string
}

// Error returns "hub <request>: EName: EValue".
func (e *HubError) Error() string {
	return fmt.Sprintf("ipp: hub %s: %s: %s", e.Request, e.EName, e.EValue)
}
