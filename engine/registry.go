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

	conv "github.com/ipp-hpc/ipp/internal/convert"
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
// converted to the parameter's type by the rules of internal/convert
// (exact numbers only, element by element for slices and maps, nil only
// for nillable types). A panic in the function is returned as an error
// carrying the stack.
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

// convert turns a decoded value into a value of type t by the rules of
// internal/convert, shared with the codec and the pickle path.
func convert(v any, t reflect.Type) (reflect.Value, error) {
	return conv.To(v, t)
}
