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
	if strings.HasSuffix(msg, definitionLoop) {
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
// the frame lines captured from its stderr. at is where the top-level
// statement that was running starts, if known (see posBox).
func (n *Namespace) panicError(p yaegi.Panic, frames []string, at position) *Error {
	val := p.Value
	if rv, ok := val.(reflect.Value); ok {
		// panic called by interpreted code hands over a reflect.Value.
		val = exportValue(rv)
	}
	val, exact := goPanicValue(val)
	msg := fmt.Sprint(val)
	e := &Error{Name: NamePanic, Message: msg, Value: val, Traceback: []string{"panic: " + msg}}
	if err, ok := val.(error); ok {
		e.cause = err
	}
	if exact.cell != "" {
		// yaegi named the very expression: show it first, as Go's
		// innermost frame.
		e.Traceback = append(e.Traceback, "  "+exact.String())
		if src, ok := n.sourceLine(exact.cell, exact.line); ok {
			e.Traceback = append(e.Traceback, "      "+strings.TrimSpace(src))
		}
	}
	for _, f := range frames {
		m := tracePattern.FindStringSubmatch(f)
		if m == nil {
			continue
		}
		if strings.HasPrefix(m[1], hostFile+":") {
			// A closure of the go statement rewrite, not the user's.
			continue
		}
		fn := m[5]
		where := displayName(m[1])
		cell, line := m[2], 0
		if m[2] != "" {
			line, _ = strconv.Atoi(m[3])
		}
		if fn == "main" {
			// The top-level statements of a snippet run as yaegi's main.
			// yaegi gives the position where a frame began; the statement
			// marker says which statement was running.
			fn = "<snippet>"
			if at.cell != "" {
				where, cell, line = at.String(), at.cell, at.line
			}
		}
		e.Traceback = append(e.Traceback, "  "+where+" in "+fn)
		if cell != "" {
			if src, ok := n.sourceLine(cell, line); ok {
				e.Traceback = append(e.Traceback, "      "+strings.TrimSpace(src))
			}
		}
	}
	return e
}

// position is a place in a snippet, as displayed: cellN:line:col.
type position struct {
	cell      string
	line, col int
}

func (p position) String() string {
	return p.cell + ":" + strconv.Itoa(p.line) + ":" + strconv.Itoa(p.col)
}

// runtimeError is a Go run-time panic that yaegi raised in its own terms
// (a reflect misuse, or its own message) and that compiled Go would have
// raised as a runtime.Error.
type runtimeError string

func (e runtimeError) Error() string { return string(e) }

// RuntimeError marks runtimeError as a runtime.Error, like the compiled
// original.
func (runtimeError) RuntimeError() {}

const nilDeref = runtimeError("runtime error: invalid memory address or nil pointer dereference")

// goPanicValue translates the value of a panic raised inside yaegi's
// machinery into what compiled Go would have panicked with, so that users
// read Go's messages and not the interpreter's internals. A message that
// yaegi prefixed with the position of the failing expression loses the
// prefix, which is returned instead.
func goPanicValue(val any) (any, position) {
	switch x := val.(type) {
	case *reflect.ValueError:
		// A zero reflect.Value is what yaegi gets from dereferencing a
		// nil pointer (Elem of nil), then uses.
		if x.Kind == reflect.Invalid {
			return nilDeref, position{}
		}
	case string:
		switch {
		case x == "reflect: slice index out of range" || x == "reflect: array index out of range" ||
			x == "reflect: string index out of range":
			return runtimeError("runtime error: index out of range"), position{}
		case strings.HasPrefix(x, "reflect.Value.Slice") && strings.HasSuffix(x, "out of bounds"):
			return runtimeError("runtime error: slice bounds out of range"), position{}
		case x == "reflect: Method on nil interface value" || x == "reflect.Value.Call: call of nil function":
			return nilDeref, position{}
		}
	case error:
		raw := x.Error()
		if m := positioned.FindStringSubmatch(raw); m != nil && reflect.TypeOf(x).String() == "*interp.cfgError" {
			line, _ := strconv.Atoi(m[2])
			col, _ := strconv.Atoi(m[3])
			text := raw[len(m[0]):]
			var v any = errors.New(text)
			if strings.HasPrefix(text, "interface conversion: ") {
				v = runtimeError(text)
			}
			return v, position{m[1], line, col}
		}
	}
	return val, position{}
}

// sourceLine returns line (1-based) of the snippet shown as cell.
func (n *Namespace) sourceLine(cell string, line int) (string, bool) {
	n.srcMu.Lock()
	lines, ok := n.sources[cell]
	n.srcMu.Unlock()
	if !ok || line < 1 || line > len(lines) {
		return "", false
	}
	return lines[line-1], true
}
