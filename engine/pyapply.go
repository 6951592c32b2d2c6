package engine

import (
	"context"
	"errors"
	"fmt"

	conv "github.com/ipp-hpc/ipp/internal/convert"
	"github.com/ipp-hpc/ipp/internal/pickle"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// Array is how a numpy array that is neither one-dimensional nor a 2-D
// float64 matrix (*mat.Dense) pushed by the Python client appears on a Go
// engine: its shape and its elements in C order (a []float64, []int32,
// ...). Registered functions can take it as a parameter; Go values of this
// type go back to Python as numpy arrays.
type Array = pickle.Array

// Tuple is a Python tuple pushed by the Python client: a []any that goes
// back to Python as a tuple. It converts to any slice parameter.
type Tuple = pickle.Tuple

// The Python client's push and pull are applies of these helpers of
// ipyparallel.util, sent as CannedFunction with CPython bytecode. A Go
// engine recognises them by module and name and runs its own push and
// pull; the bytecode is never looked at.
const (
	pyUtilModule = "ipyparallel.util"
	pyPush       = "_push"
	pyPull       = "_pull"
	// View.map sends ipyparallel.client.remotefunction._map, a lambda
	// (f, *sequences), with f first among the arguments.
	pyMapModule = "ipyparallel.client.remotefunction"
	pyMap       = "<lambda>"
)

// pythonApply serves an apply_request from the Python client (spec §5.2):
// push and pull of plain values and numpy arrays, and a call of a function
// named with ipyparallel.Reference (registered, built-in or interpreted).
// Other Python functions cannot run here and get NotImplementedError.
func (e *engine) pythonApply(ctx context.Context, m *wire.Message) outcome {
	a, err := pickle.DecodeApply(m.Buffers)
	isMap := a != nil && a.Func.Kind == pickle.FuncCanned && a.Func.Module == pyMapModule && a.Func.Name == pyMap
	if err != nil {
		if isMap {
			// Most likely the mapped function itself: Python code.
			return outcome{err: &remoteError{name: "NotImplementedError", msg: fmt.Sprintf("this is a Go engine (ipp-hpc): map needs a Go function named with ipyparallel.Reference(name) and plain values (%v)", err)}}
		}
		return outcome{err: pickleError("cannot use the arguments", err)}
	}
	var result any
	var mapFunc pickle.Reference
	if isMap && len(a.Args) > 0 {
		// The function to map is a Reference, not a value to resolve.
		ref, ok := a.Args[0].(pickle.Reference)
		if !ok {
			return outcome{err: &remoteError{name: "NotImplementedError", msg: fmt.Sprintf("this is a Go engine (ipp-hpc): it cannot map a Python %T; map a Go function with ipyparallel.Reference(name)", a.Args[0])}}
		}
		mapFunc, a.Args = ref, a.Args[1:]
	}
	// Other References stand for the engine's variables, as on Python
	// engines (ipyparallel uncans them by name).
	if err := e.resolveReferences(a.Args); err != nil {
		return outcome{err: err}
	}
	for k, v := range a.Kwargs {
		if ref, ok := v.(pickle.Reference); ok {
			val, err := e.pull([]string{ref.Name})
			if err != nil {
				return outcome{err: err}
			}
			a.Kwargs[k] = val[0]
		}
	}
	switch {
	case isMap:
		if len(a.Args) == 0 {
			return outcome{err: &remoteError{name: "TypeError", msg: "map needs a function and at least one sequence"}}
		}
		result, err = e.mapCall(ctx, append([]any{mapFunc.Name}, a.Args...))
	case a.Func.Kind == pickle.FuncCanned && a.Func.Module == pyUtilModule && a.Func.Name == pyPush:
		if len(a.Args) != 0 {
			return outcome{err: &remoteError{name: "TypeError", msg: "push takes keyword arguments only"}}
		}
		for _, name := range a.KwKeys {
			if err := e.ns.Set(name, a.Kwargs[name]); err != nil {
				return outcome{err: &remoteError{name: "ValueError", msg: fmt.Sprintf("push %s: %v", name, err)}}
			}
		}
	case a.Func.Kind == pickle.FuncCanned && a.Func.Module == pyUtilModule && a.Func.Name == pyPull:
		result, err = e.pythonPull(a.Args)
	case a.Func.Kind == pickle.FuncReference:
		if len(a.Kwargs) > 0 {
			return outcome{err: &remoteError{name: "TypeError", msg: fmt.Sprintf("%s: Go functions take no keyword arguments (got %v)", a.Func.Name, a.KwKeys)}}
		}
		result, err = e.call(ctx, a.Func.Name, a.Args)
	default:
		return outcome{err: &remoteError{
			name: "NotImplementedError",
			msg: fmt.Sprintf("this is a Go engine (ipp-hpc): it cannot run the Python function %s; "+
				"push/pull plain values, call a registered Go function with ipyparallel.Reference(name), or execute Go source", a.Func),
		}}
	}
	if err != nil {
		return outcome{err: err}
	}
	frames, err := pickle.EncodeObject(result)
	if err != nil {
		return outcome{err: pickleError("cannot send the result", err)}
	}
	return outcome{content: map[string]string{"status": "ok"}, buffers: frames}
}

// resolveReferences replaces Reference arguments by the values of the
// variables they name.
func (e *engine) resolveReferences(args []any) error {
	for i, v := range args {
		if ref, ok := v.(pickle.Reference); ok {
			val, err := e.pull([]string{ref.Name})
			if err != nil {
				return err
			}
			args[i] = val[0]
		}
	}
	return nil
}

// pythonPull is ipyparallel.util._pull: a name gives its value, a list
// or tuple of names a list of values.
func (e *engine) pythonPull(args []any) (any, error) {
	if len(args) != 1 {
		return nil, &remoteError{name: "TypeError", msg: fmt.Sprintf("pull takes 1 argument, got %d", len(args))}
	}
	if name, ok := args[0].(string); ok {
		vals, err := e.pull([]string{name})
		if err != nil {
			return nil, err
		}
		return vals[0], nil
	}
	// A list or tuple of names, by the shared conversion rules.
	names, err := conv.Into[[]string](args[0])
	if err != nil {
		return nil, &remoteError{name: "TypeError", msg: fmt.Sprintf("pull: names must be a str or a list of str: %v", err)}
	}
	vals, err := e.pull(names)
	if err != nil {
		return nil, err
	}
	return vals, nil
}

// pickleError names what the pickle subset could not carry as a
// TypeError (the type) or ValueError (malformed data).
func pickleError(what string, err error) error {
	var ue *pickle.UnsupportedError
	if errors.As(err, &ue) {
		return &remoteError{name: "TypeError", msg: fmt.Sprintf("%s: %v", what, err)}
	}
	return &remoteError{name: "ValueError", msg: fmt.Sprintf("%s: %v", what, err)}
}
