package interp

import (
	"errors"
	"fmt"
	"go/scanner"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	yaegi "github.com/traefik/yaegi/interp"
)

// Error names used in Error.Name. The engine copies them into the ename of
// an error reply, so they are part of the protocol seen by clients.
const (
	// NameCompile marks syntax, type and import errors: nothing of the
	// failing snippet part ran.
	NameCompile = "CompileError"
	// NamePanic marks a panic raised while the snippet ran.
	NamePanic = "Panic"
	// NameInterrupted marks a run stopped because its context ended.
	NameInterrupted = "Interrupted"
	// NameBusy marks an Exec refused because an interrupted run is still
	// blocked inside compiled code and has not let go of the namespace.
	NameBusy = "Busy"
)

// ErrBusy is returned (wrapped) while an interrupted snippet is still blocked
// in a compiled function, such as a long time.Sleep or an MPI call. The
// interpreter cannot preempt compiled code; once the call returns, the
// snippet stops at its next interpreted step and the namespace is usable
// again. Reset does not wait and is always possible.
var ErrBusy = errors.New("interp: an interrupted snippet is still running compiled code")

// ErrUndefined is returned (wrapped) by Get for a name the namespace does not
// define.
var ErrUndefined = errors.New("undefined")

// ErrClosed is returned by every method after Close.
var ErrClosed = errors.New("interp: namespace is closed")

// Error is the failure of a snippet: it does not crash the engine and is
// reported to the client like an IPython exception.
type Error struct {
	// Name classifies the failure: NameCompile, NamePanic, NameInterrupted
	// or NameBusy.
	Name string
	// Message is the one-line description (the panic value, or the compiler
	// message with its cellN:line:col position).
	Message string
	// Traceback holds display lines: the message, then the source line and a
	// caret for compile errors, or the interpreted call stack (innermost
	// first, as Go prints it) for panics.
	Traceback []string
	// Value is the value passed to panic, for NamePanic.
	Value any

	cause error
}

// Error implements error.
func (e *Error) Error() string { return e.Name + ": " + e.Message }

// Unwrap exposes the cause: context.Canceled or DeadlineExceeded for
// NameInterrupted, ErrBusy for NameBusy, the panic value when it is an error.
func (e *Error) Unwrap() error { return e.cause }

// cellName is the position name of the snippet run by the n-th Exec. yaegi
// keys imports by the base name of the file they appear in, so every snippet
// must share one base name ("snippet.go") and only the directory differs;
// displayName turns the resulting "cell3/snippet.go" back into "cell3".
func cellName(n int) string { return "cell" + strconv.Itoa(n) + "/" + snippetBase }

// snippetBase is the file base name every compiled chunk is parsed under.
const snippetBase = "snippet.go"

var cellPath = regexp.MustCompile(`cell(\d+)/snippet\.go`)

// displayName shortens positions in messages: "cell3/snippet.go:2:5" reads
// "cell3:2:5".
func displayName(s string) string { return cellPath.ReplaceAllString(s, "cell$1") }

// positioned matches a message that starts with a file:line:col position.
var positioned = regexp.MustCompile(`^(cell\d+)/snippet\.go:(\d+):(\d+): `)

// compileError wraps a parser or yaegi compile error, adding the offending
// source line and a caret when the position falls in a known snippet.
func (n *Namespace) compileError(err error) *Error {
	var list scanner.ErrorList
	if errors.As(err, &list) && len(list) > 0 {
		// The parser reports every error; the first one is the one to fix.
		err = list[0]
	}
	raw := err.Error()
	msg := displayName(raw)
	if strings.HasSuffix(msg, "constant definition loop") {
		msg += " (yaegi's report of an undefined name on the right of := or in a var initializer)"
	}
	e := &Error{Name: NameCompile, Message: msg, Traceback: []string{NameCompile + ": " + msg}, cause: err}
	if m := positioned.FindStringSubmatch(raw); m != nil {
		line, _ := strconv.Atoi(m[2])
		col, _ := strconv.Atoi(m[3])
		if src, ok := n.sourceLine(m[1], line); ok {
			e.Traceback = append(e.Traceback, "    "+src, "    "+caret(src, col))
		}
	}
	return e
}

// caret returns a line that puts ^ under column col (1-based, in bytes) of
// src, copying tabs so that it lines up however wide tabs are displayed.
func caret(src string, col int) string {
	var b strings.Builder
	for i := 0; i < col-1 && i < len(src); i++ {
		if src[i] == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
	}
	b.WriteByte('^')
	return b.String()
}

// tracePattern matches the line yaegi writes to its stderr for each frame a
// panic unwinds through: "cell3/snippet.go:2:5: panic: main.h(...)".
var tracePattern = regexp.MustCompile(`^((cell\d+)/snippet\.go:(\d+):(\d+)|\S+): panic: (.*)\(\.\.\.\)\n?$`)

// panicError builds the error of a run that panicked, from yaegi's Panic and
// the frame lines captured from its stderr.
func (n *Namespace) panicError(p yaegi.Panic, frames []string) *Error {
	val := p.Value
	if rv, ok := val.(reflect.Value); ok {
		// panic called by interpreted code hands over a reflect.Value.
		val = exportValue(rv)
	}
	msg := fmt.Sprint(val)
	e := &Error{Name: NamePanic, Message: msg, Value: val, Traceback: []string{"panic: " + msg}}
	if err, ok := val.(error); ok {
		e.cause = err
	}
	for _, f := range frames {
		m := tracePattern.FindStringSubmatch(f)
		if m == nil {
			continue
		}
		fn := m[5]
		if fn == "main" {
			// The top-level statements of a snippet run as yaegi's main.
			fn = "<snippet>"
		}
		e.Traceback = append(e.Traceback, "  "+displayName(m[1])+" in "+fn)
		if m[2] != "" {
			line, _ := strconv.Atoi(m[3])
			if src, ok := n.sourceLine(m[2], line); ok {
				e.Traceback = append(e.Traceback, "      "+strings.TrimSpace(src))
			}
		}
	}
	return e
}

// sourceLine returns line (1-based) of the snippet shown as cell.
func (n *Namespace) sourceLine(cell string, line int) (string, bool) {
	lines, ok := n.sources[cell]
	if !ok || line < 1 || line > len(lines) {
		return "", false
	}
	return lines[line-1], true
}
