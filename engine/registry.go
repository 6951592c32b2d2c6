package engine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"sort"
	"strings"
	"sync"

	"github.com/ipp-hpc/ipp/internal/protocol"
)

// Registry maps names to native Go functions that Go apply_requests can
// call. Arguments arrive decoded by internal/codec and are converted to the
// function's parameter types (see Registry.Call). A Registry is safe for
// concurrent use.
type Registry struct {
	mu    sync.RWMutex
	funcs map[string]*function
}

// function is a registered function with its signature analysed once, at
// registration, so that calls only convert arguments.
type function struct {
	name    string
	fn      reflect.Value
	typ     reflect.Type
	withCtx bool // first parameter is a context.Context
	results resultShape
}

type resultShape int

const (
	resultNone     resultShape = iota // func(...)
	resultValue                       // func(...) T
	resultError                       // func(...) error
	resultValueErr                    // func(...) (T, error)
)

var (
	ctxType   = reflect.TypeOf((*context.Context)(nil)).Elem()
	errorType = reflect.TypeOf((*error)(nil)).Elem()
)

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{funcs: map[string]*function{}}
}

var defaultRegistry = NewRegistry()

// DefaultRegistry is the registry Register adds to and Run uses when
// Config.Functions is nil.
func DefaultRegistry() *Registry { return defaultRegistry }

// Register adds fn to the default registry under name. It panics if fn is
// not a function with a supported signature, if name is empty or reserved
// for a built-in ("ipp." prefix), or if name is already taken: these are
// programming errors in the user's engine binary, found at start-up.
func Register(name string, fn any) {
	if err := defaultRegistry.Register(name, fn); err != nil {
		panic(err)
	}
}

// Register adds fn under name. fn may take a context.Context as its first
// parameter (it is cancelled when the request is interrupted or the engine
// stops) and must return nothing, (T), (error) or (T, error).
func (r *Registry) Register(name string, fn any) error {
	if name == "" {
		return errors.New("engine: Register: empty function name")
	}
	if protocol.IsBuiltin(name) {
		return fmt.Errorf("engine: Register: name %q is reserved for built-ins", name)
	}
	f, err := inspect(name, fn)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.funcs[name]; dup {
		return fmt.Errorf("engine: Register: %q is already registered", name)
	}
	r.funcs[name] = f
	return nil
}

// Names lists the registered names in sorted order.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.funcs))
	for n := range r.funcs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (r *Registry) lookup(name string) *function {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.funcs[name]
}

func inspect(name string, fn any) (*function, error) {
	v := reflect.ValueOf(fn)
	if v.Kind() != reflect.Func || v.IsNil() {
		return nil, fmt.Errorf("engine: Register(%q): %T is not a function", name, fn)
	}
	t := v.Type()
	f := &function{name: name, fn: v, typ: t}
	f.withCtx = t.NumIn() > 0 && t.In(0) == ctxType
	switch {
	case t.NumOut() == 0:
		f.results = resultNone
	case t.NumOut() == 1 && t.Out(0) == errorType:
		f.results = resultError
	case t.NumOut() == 1:
		f.results = resultValue
	case t.NumOut() == 2 && t.Out(1) == errorType:
		f.results = resultValueErr
	default:
		return nil, fmt.Errorf("engine: Register(%q): %s must return nothing, (T), (error) or (T, error)", name, t)
	}
	return f, nil
}

// Call runs the function registered under name with args. Each argument is
// converted to the parameter's type: values that are assignable pass as
// they are; numbers convert between integer and floating-point kinds when
// the value is exactly representable (the codec decodes integers as int64,
// so a func(n int) works); slices, arrays and maps convert element by
// element; nil becomes the zero value of pointer, slice, map, interface,
// func and channel parameters. A panic in the function is returned as an
// error carrying the stack.
func (r *Registry) Call(ctx context.Context, name string, args []any) (any, error) {
	f := r.lookup(name)
	if f == nil {
		return nil, &remoteError{
			name: "NameError",
			msg:  fmt.Sprintf("no function %q is registered on this engine (registered: %s)", name, strings.Join(r.Names(), ", ")),
		}
	}
	return f.call(ctx, args)
}

func (f *function) call(ctx context.Context, args []any) (result any, err error) {
	in, err := f.arguments(ctx, args)
	if err != nil {
		return nil, err
	}
	defer func() {
		if p := recover(); p != nil {
			result, err = nil, panicError(p, debug.Stack())
		}
	}()
	out := f.fn.Call(in)
	switch f.results {
	case resultValue:
		return valueOf(out[0]), nil
	case resultError:
		return nil, errorOf(out[0])
	case resultValueErr:
		if err := errorOf(out[1]); err != nil {
			return nil, err
		}
		return valueOf(out[0]), nil
	}
	return nil, nil
}

func (f *function) arguments(ctx context.Context, args []any) ([]reflect.Value, error) {
	t := f.typ
	var in []reflect.Value
	first := 0
	if f.withCtx {
		in = append(in, reflect.ValueOf(ctx))
		first = 1
	}
	fixed := t.NumIn() - first
	if t.IsVariadic() {
		fixed--
		if len(args) < fixed {
			return nil, f.countError(len(args), fmt.Sprintf("at least %d", fixed))
		}
	} else if len(args) != fixed {
		return nil, f.countError(len(args), fmt.Sprint(fixed))
	}
	for i, a := range args {
		var pt reflect.Type
		if i < fixed {
			pt = t.In(first + i)
		} else {
			pt = t.In(t.NumIn() - 1).Elem()
		}
		v, err := convert(a, pt)
		if err != nil {
			return nil, &remoteError{name: "TypeError", msg: fmt.Sprintf("%s: argument %d: %v", f.name, i, err)}
		}
		in = append(in, v)
	}
	return in, nil
}

func (f *function) countError(got int, want string) error {
	return &remoteError{name: "TypeError", msg: fmt.Sprintf("%s%s takes %s arguments, got %d", f.name, strings.TrimPrefix(f.typ.String(), "func"), want, got)}
}

// valueOf unwraps a result; a nil interface or pointer result stays a typed
// value except for interfaces, which the codec could not describe.
func valueOf(v reflect.Value) any {
	if v.Kind() == reflect.Interface && v.IsNil() {
		return nil
	}
	return v.Interface()
}

func errorOf(v reflect.Value) error {
	if v.IsNil() {
		return nil
	}
	return v.Interface().(error)
}

// convert turns a decoded value into a value of type t, or explains why it
// cannot.
func convert(v any, t reflect.Type) (reflect.Value, error) {
	if v == nil {
		return zeroFor(t)
	}
	return convertValue(reflect.ValueOf(v), t)
}

func zeroFor(t reflect.Type) (reflect.Value, error) {
	switch t.Kind() {
	case reflect.Interface, reflect.Pointer, reflect.Slice, reflect.Map, reflect.Func, reflect.Chan:
		return reflect.Zero(t), nil
	}
	return reflect.Value{}, fmt.Errorf("cannot use nil as %s", t)
}

func convertValue(rv reflect.Value, t reflect.Type) (reflect.Value, error) {
	for rv.Kind() == reflect.Interface {
		if rv.IsNil() {
			return zeroFor(t)
		}
		rv = rv.Elem()
	}
	if !rv.IsValid() {
		return zeroFor(t)
	}
	if rv.Type().AssignableTo(t) {
		if t.Kind() == reflect.Interface {
			// Call needs a value of the parameter's own type when the
			// argument will be stored in containers of that type.
			out := reflect.New(t).Elem()
			out.Set(rv)
			return out, nil
		}
		return rv, nil
	}
	from, to := rv.Kind(), t.Kind()
	switch {
	case isNumber(from) && isNumber(to):
		return convertNumber(rv, t)
	case from == to && from != reflect.Slice && from != reflect.Map && from != reflect.Array && from != reflect.Pointer && rv.Type().ConvertibleTo(t):
		// Named types over the same underlying type (type Celsius float64).
		return rv.Convert(t), nil
	case from == reflect.String && to == reflect.Slice && t.Elem().Kind() == reflect.Uint8,
		from == reflect.Slice && rv.Type().Elem().Kind() == reflect.Uint8 && to == reflect.String:
		return rv.Convert(t), nil
	case (from == reflect.Slice || from == reflect.Array) && to == reflect.Slice:
		out := reflect.MakeSlice(t, rv.Len(), rv.Len())
		for i := 0; i < rv.Len(); i++ {
			ev, err := convertValue(rv.Index(i), t.Elem())
			if err != nil {
				return reflect.Value{}, fmt.Errorf("element %d: %w", i, err)
			}
			out.Index(i).Set(ev)
		}
		return out, nil
	case (from == reflect.Slice || from == reflect.Array) && to == reflect.Array:
		if rv.Len() != t.Len() {
			return reflect.Value{}, fmt.Errorf("cannot use %d elements as %s", rv.Len(), t)
		}
		out := reflect.New(t).Elem()
		for i := 0; i < rv.Len(); i++ {
			ev, err := convertValue(rv.Index(i), t.Elem())
			if err != nil {
				return reflect.Value{}, fmt.Errorf("element %d: %w", i, err)
			}
			out.Index(i).Set(ev)
		}
		return out, nil
	case from == reflect.Map && to == reflect.Map:
		out := reflect.MakeMapWithSize(t, rv.Len())
		iter := rv.MapRange()
		for iter.Next() {
			k, err := convertValue(iter.Key(), t.Key())
			if err != nil {
				return reflect.Value{}, fmt.Errorf("key %v: %w", iter.Key(), err)
			}
			ev, err := convertValue(iter.Value(), t.Elem())
			if err != nil {
				return reflect.Value{}, fmt.Errorf("value for %v: %w", iter.Key(), err)
			}
			out.SetMapIndex(k, ev)
		}
		return out, nil
	case to == reflect.Pointer && from != reflect.Pointer:
		ev, err := convertValue(rv, t.Elem())
		if err != nil {
			return reflect.Value{}, err
		}
		p := reflect.New(t.Elem())
		p.Elem().Set(ev)
		return p, nil
	case from == reflect.Pointer && to != reflect.Pointer:
		if rv.IsNil() {
			return zeroFor(t)
		}
		return convertValue(rv.Elem(), t)
	}
	return reflect.Value{}, fmt.Errorf("cannot use %s as %s", rv.Type(), t)
}

func isNumber(k reflect.Kind) bool {
	return isInt(k) || isUint(k) || k == reflect.Float32 || k == reflect.Float64
}

func isInt(k reflect.Kind) bool {
	return k >= reflect.Int && k <= reflect.Int64
}

func isUint(k reflect.Kind) bool {
	return k >= reflect.Uint && k <= reflect.Uintptr
}

// convertNumber converts only when the value survives: an int64 of 300
// must not silently become an int8 of 44, nor 2.5 an int.
func convertNumber(rv reflect.Value, t reflect.Type) (reflect.Value, error) {
	out := reflect.New(t).Elem()
	bad := func() (reflect.Value, error) {
		return reflect.Value{}, fmt.Errorf("%v (%s) does not fit in %s", rv.Interface(), rv.Type(), t)
	}
	to := t.Kind()
	switch from := rv.Kind(); {
	case isInt(from):
		x := rv.Int()
		switch {
		case isInt(to):
			if out.OverflowInt(x) {
				return bad()
			}
			out.SetInt(x)
		case isUint(to):
			if x < 0 || out.OverflowUint(uint64(x)) {
				return bad()
			}
			out.SetUint(uint64(x))
		default:
			out.SetFloat(float64(x))
		}
	case isUint(from):
		x := rv.Uint()
		switch {
		case isInt(to):
			if x > 1<<63-1 || out.OverflowInt(int64(x)) {
				return bad()
			}
			out.SetInt(int64(x))
		case isUint(to):
			if out.OverflowUint(x) {
				return bad()
			}
			out.SetUint(x)
		default:
			out.SetFloat(float64(x))
		}
	default:
		x := rv.Float()
		switch {
		case isInt(to):
			if x != float64(int64(x)) || out.OverflowInt(int64(x)) {
				return bad()
			}
			out.SetInt(int64(x))
		case isUint(to):
			if x < 0 || x != float64(uint64(x)) || out.OverflowUint(uint64(x)) {
				return bad()
			}
			out.SetUint(uint64(x))
		default:
			if out.OverflowFloat(x) {
				return bad()
			}
			out.SetFloat(x)
		}
	}
	return out, nil
}
