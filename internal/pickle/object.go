package pickle

import (
	"errors"
	"fmt"

	"github.com/nlpodyssey/gopickle/types"
)

// itemThreshold is ipyparallel's item_threshold (jupyter_client's
// MAX_ITEMS): top-level containers with fewer items are canned item by
// item, so their arrays may have frames of their own; bigger ones are
// pickled whole.
const itemThreshold = 64

// bufferThreshold is ipyparallel's buffer_threshold (MAX_BYTES): canned
// data larger than this travels in a frame of its own.
const bufferThreshold = 1024

// slots returns the values serialize_object canned: the items of a small
// top-level list or tuple, the values of a small top-level dict in sorted
// key order, or the value itself.
func slots(v any) []any {
	switch x := v.(type) {
	case *types.List:
		if len(*x) < itemThreshold {
			return *x
		}
	case *types.Tuple:
		if len(*x) < itemThreshold {
			return *x
		}
	case *types.Dict:
		if len(*x) < itemThreshold {
			var out []any
			for _, k := range sortedKeys(x) {
				val, _ := x.Get(k)
				out = append(out, val)
			}
			return out
		}
	}
	return []any{v}
}

// cannedBuffers returns the buffers list of a canned object (nil if v is
// not one), whose None entries stand for the frames that follow.
func cannedBuffers(v any) *types.List {
	o, ok := v.(*object)
	if !ok || o.reduced || o.class.module != canning {
		return nil
	}
	st, ok := o.state.(*types.Dict)
	if !ok {
		return nil
	}
	b, _ := dictGet(st, "buffers").(*types.List)
	return b
}

// loadObject undoes serialize_object: it unpickles frames[0] and puts the
// frames that follow into the canned objects' None placeholders, as
// deserialize_object does. It returns the raw tree and how many frames
// the object took.
func loadObject(frames [][]byte) (any, int, error) {
	if len(frames) == 0 {
		return nil, 0, errors.New("pickle: no frame for a serialized object")
	}
	raw, err := unpickle(frames[0])
	if err != nil {
		return nil, 0, err
	}
	used := 1
	for _, s := range slots(raw) {
		bufs := cannedBuffers(s)
		if bufs == nil {
			continue
		}
		for i, b := range *bufs {
			if b != nil {
				continue
			}
			if used >= len(frames) {
				return nil, 0, fmt.Errorf("pickle: serialized object needs more than the %d frames present", len(frames))
			}
			(*bufs)[i] = frames[used]
			used++
		}
	}
	return raw, used, nil
}

// DecodeObject decodes one object serialized by ipyparallel's
// serialize_object from the start of frames, and says how many frames it
// took.
func DecodeObject(frames [][]byte) (v any, used int, err error) {
	raw, used, err := loadObject(frames)
	if err != nil {
		return nil, 0, err
	}
	v, err = fromPython(raw, 0)
	if err != nil {
		return nil, 0, err
	}
	return v, used, nil
}

// FuncKind says what the function of an apply_request is.
type FuncKind int

// What a Python client can send as the function of an apply.
const (
	// FuncCanned is a Python function sent with its bytecode
	// (CannedFunction); Module and Name identify it, its code is never run.
	FuncCanned FuncKind = iota
	// FuncReference is ipyparallel.Reference(name): a name to look up on
	// the engine.
	FuncReference
	// FuncGlobal is a callable pickled by reference (a builtin, a class,
	// a module-level function of an installed module).
	FuncGlobal
)

// Func identifies the function of an apply_request without running it.
type Func struct {
	Kind   FuncKind
	Module string // FuncCanned, FuncGlobal
	Name   string // the function's name, or the Reference's name
}

func (f Func) String() string {
	switch f.Kind {
	case FuncReference:
		return "Reference(" + f.Name + ")"
	}
	return f.Module + "." + f.Name
}

// Apply is an apply_request's buffers, decoded.
type Apply struct {
	Func   Func
	Args   []any
	KwKeys []string       // sorted, as sent
	Kwargs map[string]any // by name
}

// IsPickled reports whether an apply_request's buffers look like Python's
// pack_apply_message: at least the function and the info frame, the first
// starting with the pickle PROTO opcode.
func IsPickled(buffers [][]byte) bool {
	return len(buffers) >= 2 && len(buffers[0]) > 1 && buffers[0][0] == 0x80
}

// DecodeApply undoes ipyparallel's pack_apply_message: the function (only
// identified), the info frame, then each positional and keyword argument
// as a serialized object. An argument of a type the subset does not carry
// is an *UnsupportedError naming its Python type; with an argument error
// the returned Apply still says which function was sent.
func DecodeApply(buffers [][]byte) (*Apply, error) {
	if !IsPickled(buffers) {
		return nil, errors.New("pickle: not a pickled apply_request")
	}
	raw, used, err := loadObject(buffers)
	if err != nil {
		return nil, fmt.Errorf("pickle: function: %w", err)
	}
	fn, err := funcOf(raw)
	if err != nil {
		return nil, err
	}
	rest := buffers[used:]
	if len(rest) == 0 {
		return nil, errors.New("pickle: apply_request without its info frame")
	}
	infoRaw, err := unpickle(rest[0])
	if err != nil {
		return nil, fmt.Errorf("pickle: info: %w", err)
	}
	nargs, nbufs, keys, err := infoOf(infoRaw)
	if err != nil {
		return nil, err
	}
	rest = rest[1:]
	if nbufs > len(rest) {
		return nil, fmt.Errorf("pickle: info says %d argument frames, %d present", nbufs, len(rest))
	}
	argFrames, kwFrames := rest[:nbufs], rest[nbufs:]
	a := &Apply{Func: fn, KwKeys: keys, Kwargs: make(map[string]any, len(keys))}
	for i := 0; i < nargs; i++ {
		v, n, err := DecodeObject(argFrames)
		if err != nil {
			return &Apply{Func: fn}, fmt.Errorf("argument %d: %w", i, err)
		}
		a.Args = append(a.Args, v)
		argFrames = argFrames[n:]
	}
	if len(argFrames) != 0 {
		return nil, fmt.Errorf("pickle: %d argument frames left over", len(argFrames))
	}
	for _, k := range keys {
		v, n, err := DecodeObject(kwFrames)
		if err != nil {
			return &Apply{Func: fn}, fmt.Errorf("argument %s: %w", k, err)
		}
		a.Kwargs[k] = v
		kwFrames = kwFrames[n:]
	}
	if len(kwFrames) != 0 {
		return nil, fmt.Errorf("pickle: %d keyword argument frames left over", len(kwFrames))
	}
	return a, nil
}

func funcOf(raw any) (Func, error) {
	switch x := raw.(type) {
	case *global:
		return Func{Kind: FuncGlobal, Module: x.module, Name: x.name}, nil
	case *object:
		st, _ := x.state.(*types.Dict)
		switch {
		case x.class.module == canning && x.class.name == "CannedFunction" && st != nil:
			mod, _ := dictGet(st, "module").(string)
			name, _ := dictGet(st, "__name__").(string)
			return Func{Kind: FuncCanned, Module: mod, Name: name}, nil
		case x.class.module == canning && x.class.name == "Reference" && st != nil:
			name, ok := dictGet(st, "name").(string)
			if !ok {
				return Func{}, errors.New("pickle: Reference without a name")
			}
			return Func{Kind: FuncReference, Name: name}, nil
		}
		return Func{}, &UnsupportedError{Type: x.class.String(), Detail: "as the function of an apply"}
	}
	return Func{}, &UnsupportedError{Type: pyTypeName(raw), Detail: "as the function of an apply"}
}

func infoOf(raw any) (nargs, nbufs int, keys []string, err error) {
	d, ok := raw.(*types.Dict)
	if !ok {
		return 0, 0, nil, errors.New("pickle: apply info is not a dict")
	}
	nargs, ok1 := dictGet(d, "nargs").(int)
	nbufs, ok2 := dictGet(d, "narg_bufs").(int)
	kl, ok3 := dictGet(d, "kw_keys").(*types.List)
	if !ok1 || !ok2 || !ok3 || nargs < 0 || nbufs < 0 || nargs > nbufs {
		return 0, 0, nil, errors.New("pickle: apply info lacks nargs, narg_bufs or kw_keys")
	}
	for _, k := range *kl {
		s, ok := k.(string)
		if !ok {
			return 0, 0, nil, errors.New("pickle: apply info has a keyword that is not a str")
		}
		keys = append(keys, s)
	}
	return nargs, nbufs, keys, nil
}
