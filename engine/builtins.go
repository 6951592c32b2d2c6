package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"reflect"

	"github.com/ipp-hpc/ipp/internal/interp"
	"github.com/ipp-hpc/ipp/internal/protocol"
)

// builtin serves the functions every Go engine provides (the protocol
// package's constants).
func (e *engine) builtin(ctx context.Context, name string, args []any) (any, error) {
	switch name {
	case protocol.Push:
		return nil, e.push(args)
	case protocol.Pull:
		names, err := argAs[[]string](name, args, 0, 1)
		if err != nil {
			return nil, err
		}
		return e.pull(names)
	case protocol.PullOne:
		n, err := argAs[string](name, args, 0, 1)
		if err != nil {
			return nil, err
		}
		vals, err := e.pull([]string{n})
		if err != nil {
			return nil, err
		}
		return vals[0], nil
	case protocol.Shell:
		cmd, err := argAs[string](name, args, 0, 1)
		if err != nil {
			return nil, err
		}
		return runShell(ctx, cmd)
	case protocol.Noop:
		if len(args) == 0 {
			return nil, nil
		}
		return args[0], nil
	case protocol.Eval:
		expr, err := argAs[string](name, args, 0, 1)
		if err != nil {
			return nil, err
		}
		return e.eval(ctx, expr)
	case protocol.Info:
		return e.describeSelf(), nil
	case protocol.Map:
		return e.mapCall(ctx, args)
	case protocol.MPI:
		return e.mpiCollective(args)
	}
	return nil, &remoteError{name: "NameError", msg: fmt.Sprintf("no built-in function %q on this engine", name)}
}

// call runs a built-in, a registered native function or, failing those, a
// function defined in the interpreted namespace, so apply and map also
// reach code a user wrote interactively (func sample(...) {...}).
func (e *engine) call(ctx context.Context, name string, args []any) (any, error) {
	fn, interpreted, err := e.resolve(name)
	if err != nil {
		return nil, err
	}
	if !interpreted {
		return fn(ctx, args)
	}
	var result any
	err = e.ns.Capture(ctx, func() error {
		var err error
		result, err = fn(ctx, args)
		return err
	})
	return result, err
}

// resolve finds what name calls. Interpreted functions must run inside
// Namespace.Capture so what they print is published with the request.
func (e *engine) resolve(name string) (fn func(context.Context, []any) (any, error), interpreted bool, err error) {
	if protocol.IsBuiltin(name) {
		return func(ctx context.Context, args []any) (any, error) { return e.builtin(ctx, name, args) }, false, nil
	}
	if f := e.cfg.Functions.lookup(name); f != nil {
		return f.call, false, nil
	}
	v, err := e.ns.Get(name)
	if err != nil {
		return nil, false, &remoteError{name: "NameError", msg: fmt.Sprintf("no registered or interpreted function %q on this engine", name)}
	}
	f, err := inspect(name, v)
	if err != nil {
		return nil, false, &remoteError{name: "TypeError", msg: fmt.Sprintf("%q is a %T, not a function", name, v)}
	}
	return f.call, true, nil
}

// mapCall serves protocol.Map: element-wise calls over equal-length slices.
func (e *engine) mapCall(ctx context.Context, args []any) (any, error) {
	if len(args) < 2 {
		return nil, &remoteError{name: "TypeError", msg: protocol.Map + " takes a function name and at least one sequence"}
	}
	name, ok := args[0].(string)
	if !ok {
		return nil, &remoteError{name: "TypeError", msg: fmt.Sprintf("%s: the function name is a %T", protocol.Map, args[0])}
	}
	seqs := make([]reflect.Value, len(args)-1)
	n := -1
	for i, a := range args[1:] {
		v := reflect.ValueOf(a)
		if v.Kind() != reflect.Slice && v.Kind() != reflect.Array {
			return nil, &remoteError{name: "TypeError", msg: fmt.Sprintf("%s: sequence %d is a %T, not a slice", protocol.Map, i, a)}
		}
		if n >= 0 && v.Len() != n {
			return nil, &remoteError{name: "ValueError", msg: fmt.Sprintf("%s: sequences have different lengths (%d and %d)", protocol.Map, n, v.Len())}
		}
		n, seqs[i] = v.Len(), v
	}
	fn, interpreted, err := e.resolve(name)
	if err != nil {
		return nil, err
	}
	out := make([]any, n)
	loop := func() error {
		callArgs := make([]any, len(seqs))
		for i := range n {
			for j, s := range seqs {
				callArgs[j] = s.Index(i).Interface()
			}
			r, err := fn(ctx, callArgs)
			if err != nil {
				return err
			}
			out[i] = r
		}
		return nil
	}
	if interpreted {
		err = e.ns.Capture(ctx, loop)
	} else {
		err = loop()
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// argAs converts argument i of a call that takes want arguments.
func argAs[T any](fn string, args []any, i, want int) (T, error) {
	var zero T
	if len(args) != want {
		return zero, &remoteError{name: "TypeError", msg: fmt.Sprintf("%s takes %d argument(s), got %d", fn, want, len(args))}
	}
	v, err := convert(args[i], reflect.TypeOf(zero))
	if err != nil {
		return zero, &remoteError{name: "TypeError", msg: fmt.Sprintf("%s: argument %d: %v", fn, i, err)}
	}
	return v.Interface().(T), nil
}

// push sets names[i] = values[i] in the namespace.
func (e *engine) push(args []any) error {
	if len(args) == 0 {
		return &remoteError{name: "TypeError", msg: protocol.Push + " takes a list of names followed by one value per name"}
	}
	v, err := convert(args[0], reflect.TypeOf([]string(nil)))
	if err != nil {
		return &remoteError{name: "TypeError", msg: fmt.Sprintf("%s: names: %v", protocol.Push, err)}
	}
	names := v.Interface().([]string)
	if len(args) != 1+len(names) {
		return &remoteError{name: "TypeError", msg: fmt.Sprintf("%s: %d names but %d values", protocol.Push, len(names), len(args)-1)}
	}
	for i, n := range names {
		if err := e.ns.Set(n, args[1+i]); err != nil {
			return fmt.Errorf("%s %s: %w", protocol.Push, n, err)
		}
	}
	return nil
}

// pull returns the values of names, in order.
func (e *engine) pull(names []string) ([]any, error) {
	out := make([]any, len(names))
	for i, n := range names {
		v, err := e.ns.Get(n)
		if err != nil {
			if errors.Is(err, interp.ErrUndefined) {
				return nil, &remoteError{name: "NameError", msg: fmt.Sprintf("name %q is not defined on engine %d", n, e.id)}
			}
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// eval evaluates expr in the namespace; a statement with no value gives nil.
func (e *engine) eval(ctx context.Context, expr string) (any, error) {
	res, err := e.ns.Exec(ctx, expr)
	e.flushStreams(true)
	if err != nil || !res.HasValue {
		return nil, err
	}
	return res.Value, nil
}

// runShell runs cmd with /bin/sh -c. A non-zero exit status is a result,
// not an error: the caller decides what it means.
func runShell(ctx context.Context, cmd string) (protocol.ShellResult, error) {
	var stdout, stderr bytes.Buffer
	c := exec.CommandContext(ctx, "/bin/sh", "-c", cmd)
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	res := protocol.ShellResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return res, fmt.Errorf("%s: %w", protocol.Shell, ctx.Err())
	case errors.As(err, &exit):
		res.ExitCode = exit.ExitCode()
	default:
		return res, fmt.Errorf("%s: %w", protocol.Shell, err)
	}
	return res, nil
}
