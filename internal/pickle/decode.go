package pickle

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"sort"
	"strings"
	"unsafe"

	gopickle "github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
	"gonum.org/v1/gonum/mat"
)

// Tuple is a Python tuple: a []any that goes back to Python as a tuple,
// so that a tuple pushed and pulled stays a tuple.
type Tuple []any

// Array is a numpy array that is not one-dimensional (and not a 2-D
// float64 array, which is a *mat.Dense): its shape, and its elements in C
// (row-major) order as a slice of the element type ([]float64, []int32,
// ...). A one-dimensional []uint8 array is an Array too, so that it does
// not come back to Python as bytes.
type Array struct {
	Shape []int
	Data  any
}

// Reference is ipyparallel.Reference(name) sent as a value: on a Python
// engine it stands for the engine's own variable of that name. Decode
// leaves it for the engine to resolve; Encode refuses it.
type Reference struct {
	Name string
}

// UnsupportedError reports a value the pickle subset cannot carry: a
// Python type a Go engine cannot use, or a Go type Python cannot be sent.
type UnsupportedError struct {
	// Type is the Python type (module.name, or the builtin's name) or, with
	// Go set, the Go type.
	Type string
	// Go is true for a Go value that cannot be sent to Python.
	Go bool
	// Detail says more when the type alone does not explain it.
	Detail string
}

// supportedPython lists the Python types Decode accepts, for messages.
const supportedPython = "None, bool, int, float, complex, str, bytes, list, tuple, dict, numpy numeric arrays and scalars"

func (e *UnsupportedError) Error() string {
	var s string
	if e.Go {
		s = fmt.Sprintf("a Go value of type %s cannot be sent to Python (supported: nil, bool, numbers, string, []byte, slices, maps, numeric slices as numpy arrays, *mat.Dense)", e.Type)
	} else {
		s = fmt.Sprintf("Python type %s is not supported by Go engines (supported: %s)", e.Type, supportedPython)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// maxDepth bounds the nesting of decoded and encoded values.
const maxDepth = 100

// global is what every GLOBAL/STACK_GLOBAL resolves to: a name, never
// the Python object, so nothing is looked up or run.
type global struct{ module, name string }

// String names the global as Python users know it: builtins without
// their module (set, len), others as module.name.
func (g *global) String() string {
	if g.module == "builtins" {
		return g.name
	}
	return g.module + "." + g.name
}

// latin1 is _codecs.encode, by which protocol 2 pickles bytes
// (encode(str, 'latin1')): it is evaluated, since it only turns a str
// into bytes and every bytes value of a protocol 2 pickle needs it.
type latin1 struct{}

// emptyBytes is builtins.bytes, by which protocol 2 pickles b"" (bytes()).
type emptyBytes struct{}

// Call returns the empty bytes.
func (emptyBytes) Call(args ...any) (any, error) {
	if len(args) != 0 {
		return nil, &UnsupportedError{Type: "bytes", Detail: "bytes() called with arguments"}
	}
	return []byte{}, nil
}

// Call turns the latin-1 str back into its bytes.
func (latin1) Call(args ...any) (any, error) {
	if len(args) != 2 {
		return nil, errors.New("pickle: _codecs.encode with other than 2 arguments")
	}
	s, ok := args[0].(string)
	enc, _ := args[1].(string)
	if !ok || enc != "latin1" {
		return nil, fmt.Errorf("pickle: _codecs.encode(%T, %q) is not protocol 2 bytes", args[0], enc)
	}
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 255 {
			return nil, errors.New("pickle: latin1 bytes with a code point above 255")
		}
		b = append(b, byte(r))
	}
	return b, nil
}

// Call records a REDUCE (a call of the global with args).
func (g *global) Call(args ...any) (any, error) {
	return &object{class: g, args: args, reduced: true}, nil
}

// PyNew records a NEWOBJ (cls.__new__(cls, *args)).
func (g *global) PyNew(args ...any) (any, error) {
	return &object{class: g, args: args}, nil
}

// object is an instance a pickle built: which global made it, with what
// arguments, and the state BUILD gave it.
type object struct {
	class   *global
	args    []any
	reduced bool
	state   any
}

// PySetState records BUILD's state.
func (o *object) PySetState(state any) error {
	o.state = state
	return nil
}

// unpickle runs the pickle machine over data. Globals become *global and
// instances *object.
func unpickle(data []byte) (v any, err error) {
	defer func() {
		if p := recover(); p != nil {
			v, err = nil, fmt.Errorf("pickle: malformed data (%v)", p)
		}
	}()
	if len(data) == 0 {
		return nil, errors.New("pickle: empty frame")
	}
	if err := checkLengths(data); err != nil {
		return nil, err
	}
	u := gopickle.NewUnpickler(bytes.NewReader(data))
	u.FindClass = func(module, name string) (any, error) {
		if module == "__builtin__" {
			module = "builtins" // protocol 2 spells it the Python 2 way
		}
		if module == "_codecs" && name == "encode" {
			return latin1{}, nil
		}
		if module == "builtins" && name == "bytes" {
			return emptyBytes{}, nil
		}
		return &global{module: module, name: name}, nil
	}
	v, err = u.Load()
	if err != nil {
		return nil, fmt.Errorf("pickle: %w", err)
	}
	return v, nil
}

// Unpickle decodes one pickle into Go values (see the package doc).
func Unpickle(data []byte) (any, error) {
	raw, err := unpickle(data)
	if err != nil {
		return nil, err
	}
	return fromPython(raw, 0)
}

// fromPython turns the library's tree into the package's Go values.
func fromPython(v any, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("pickle: value nested too deep")
	}
	switch x := v.(type) {
	case nil, bool, string, float64:
		return x, nil
	case int:
		return x, nil
	case *big.Int:
		if x.IsInt64() && x.Int64() >= math.MinInt && x.Int64() <= math.MaxInt {
			return int(x.Int64()), nil
		}
		return x, nil
	case []byte:
		return x, nil
	case *types.ByteArray:
		return []byte(*x), nil
	case *types.List:
		return listOf(*x, depth)
	case *types.Tuple:
		l, err := listOf(*x, depth)
		if err != nil {
			return nil, err
		}
		return Tuple(l), nil
	case *types.Dict:
		return dictOf(x, depth)
	case *types.Set:
		return nil, &UnsupportedError{Type: "set"}
	case *types.FrozenSet:
		return nil, &UnsupportedError{Type: "frozenset"}
	case *types.OrderedDict:
		return nil, &UnsupportedError{Type: "collections.OrderedDict"}
	case *global:
		return nil, &UnsupportedError{Type: x.String(), Detail: "a class or function, not a value"}
	case *object:
		return objectOf(x, depth)
	}
	return nil, &UnsupportedError{Type: fmt.Sprintf("%T", v), Detail: "unexpected value from the unpickler"}
}

func listOf(items []any, depth int) ([]any, error) {
	out := make([]any, len(items))
	for i, it := range items {
		v, err := fromPython(it, depth+1)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func dictOf(d *types.Dict, depth int) (any, error) {
	allStr := true
	for _, e := range *d {
		if _, ok := e.Key.(string); !ok {
			allStr = false
			break
		}
	}
	if allStr {
		out := make(map[string]any, len(*d))
		for _, e := range *d {
			v, err := fromPython(e.Value, depth+1)
			if err != nil {
				return nil, err
			}
			out[e.Key.(string)] = v
		}
		return out, nil
	}
	out := make(map[any]any, len(*d))
	for _, e := range *d {
		k, err := fromPython(e.Key, depth+1)
		if err != nil {
			return nil, err
		}
		switch k.(type) {
		case nil, bool, int, float64, string, complex128:
		case *big.Int:
			return nil, &UnsupportedError{Type: "dict", Detail: "an int key beyond 64 bits"}
		default:
			return nil, &UnsupportedError{Type: "dict", Detail: fmt.Sprintf("a key of Python type %s", pyTypeName(e.Key))}
		}
		v, err := fromPython(e.Value, depth+1)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// pyTypeName names the Python type of a raw value, for messages.
func pyTypeName(v any) string {
	switch x := v.(type) {
	case *types.Tuple:
		return "tuple"
	case *types.List:
		return "list"
	case *types.Dict:
		return "dict"
	case []byte:
		return "bytes"
	case *object:
		return x.class.String()
	}
	return fmt.Sprintf("%T", v)
}

const canning = "ipyparallel.serialize.canning"

// objectOf handles the instances the subset knows: complex, bytearray,
// numpy arrays, dtypes and scalars, and ipyparallel's canned arrays and
// bytes.
func objectOf(o *object, depth int) (any, error) {
	name := o.class.String()
	switch {
	case o.reduced && name == "complex" && len(o.args) == 2:
		re, ok1 := toFloat(o.args[0])
		im, ok2 := toFloat(o.args[1])
		if ok1 && ok2 {
			return complex(re, im), nil
		}
	case o.reduced && (name == "range" || name == "xrange") && len(o.args) == 3: // xrange: protocol 2
		return rangeOf(o.args)
	case o.reduced && name == "bytearray" && len(o.args) <= 1:
		if len(o.args) == 0 {
			return []byte{}, nil
		}
		if b, ok := o.args[0].([]byte); ok {
			return b, nil
		}
	case o.reduced && isNumpy(o.class, "_reconstruct"):
		return reconstructArray(o)
	case o.reduced && isNumpy(o.class, "scalar"):
		return numpyScalar(o)
	case o.reduced && o.class.name == "_frombuffer" && (o.class.module == "numpy.core.numeric" || o.class.module == "numpy._core.numeric"):
		return fromBuffer(o)
	case !o.reduced && name == canning+".CannedArray":
		return cannedArray(o, depth)
	case !o.reduced && (name == canning+".CannedBytes" || name == canning+".CannedMemoryView"):
		st, _ := o.state.(*types.Dict)
		if st != nil {
			if bufs, ok := dictGet(st, "buffers").(*types.List); ok && len(*bufs) == 1 {
				if b, ok := (*bufs)[0].([]byte); ok {
					return b, nil
				}
				return nil, errors.New("pickle: canned bytes without their buffer")
			}
		}
	case name == "numpy.ndarray" && o.reduced:
		// Our own inline form: numpy.ndarray(shape, dtype, buffer).
		if len(o.args) == 3 {
			shape, err := shapeOf(o.args[0])
			if err != nil {
				return nil, err
			}
			dt, _ := o.args[1].(string)
			data, ok := o.args[2].([]byte)
			if !ok {
				return nil, errors.New("pickle: numpy.ndarray buffer is not bytes")
			}
			return makeArray(dt, shape, data, false)
		}
	case !o.reduced && o.class.module == canning:
		// Canned Python objects other than arrays and bytes: name what the
		// user sent, not ipyparallel's wrapper.
		switch o.class.name {
		case "CannedFunction":
			fn := "function"
			if st, ok := o.state.(*types.Dict); ok {
				m, _ := dictGet(st, "module").(string)
				n, _ := dictGet(st, "__name__").(string)
				fn = "function " + m + "." + n
			}
			return nil, &UnsupportedError{Type: fn}
		case "CannedClass":
			return nil, &UnsupportedError{Type: "class"}
		case "CannedPartial":
			return nil, &UnsupportedError{Type: "functools.partial"}
		case "Reference":
			if st, ok := o.state.(*types.Dict); ok {
				if n, ok := dictGet(st, "name").(string); ok {
					return Reference{Name: n}, nil
				}
			}
		}
	}
	return nil, &UnsupportedError{Type: name}
}

// maxRange bounds the ranges Decode expands: a range is a few bytes of
// pickle but becomes a list in Go.
const maxRange = 1 << 24

// rangeOf expands range(start, stop, step) into a list of ints, which is
// how map partitions of a range reach an engine.
func rangeOf(args []any) (any, error) {
	var b [3]int
	for i, a := range args {
		n, ok := a.(int)
		if !ok {
			return nil, &UnsupportedError{Type: "range", Detail: "bounds beyond 64 bits"}
		}
		b[i] = n
	}
	start, stop, step := b[0], b[1], b[2]
	if step == 0 {
		return nil, errors.New("pickle: range with step 0")
	}
	n := 0
	if step > 0 && stop > start {
		n = int((uint64(stop-start) + uint64(step) - 1) / uint64(step))
	} else if step < 0 && start > stop {
		n = int((uint64(start-stop) + uint64(-step) - 1) / uint64(-step))
	}
	if n > maxRange {
		return nil, &UnsupportedError{Type: "range", Detail: fmt.Sprintf("%d items is more than the %d a Go engine expands", n, maxRange)}
	}
	out := make([]any, n)
	for i := range out {
		out[i] = start + i*step
	}
	return out, nil
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	}
	return 0, false
}

// isNumpy matches numpy.core.multiarray.<name> and its numpy 2 spelling
// numpy._core.multiarray.<name>.
func isNumpy(g *global, name string) bool {
	return g.name == name && (g.module == "numpy.core.multiarray" || g.module == "numpy._core.multiarray")
}

func dictGet(d *types.Dict, key string) any {
	v, _ := d.Get(key)
	return v
}

func shapeOf(v any) ([]int, error) {
	t, ok := v.(*types.Tuple)
	if !ok {
		if n, ok := v.(int); ok {
			t = &types.Tuple{n}
		} else {
			return nil, fmt.Errorf("pickle: array shape is a %s, not a tuple", pyTypeName(v))
		}
	}
	shape := make([]int, len(*t))
	for i, d := range *t {
		n, ok := d.(int)
		if !ok || n < 0 {
			return nil, fmt.Errorf("pickle: bad array dimension %v", d)
		}
		shape[i] = n
	}
	return shape, nil
}

// dtypeOf reads a pickled numpy.dtype: REDUCE dtype(name, False, True)
// then BUILD (3, byteorder, subarray, names, fields, ...).
func dtypeOf(v any) (string, error) {
	o, ok := v.(*object)
	if !ok || o.class.module != "numpy" || o.class.name != "dtype" || len(o.args) < 1 {
		return "", fmt.Errorf("pickle: array dtype is a %s, not a numpy dtype", pyTypeName(v))
	}
	name, _ := o.args[0].(string)
	order := "|"
	if st, ok := o.state.(*types.Tuple); ok && len(*st) >= 5 {
		if s, ok := (*st)[1].(string); ok {
			order = s
		}
		if (*st)[3] != nil || (*st)[4] != nil {
			return "", &UnsupportedError{Type: "numpy.ndarray", Detail: "structured dtypes are not supported"}
		}
	}
	return order + name, nil
}

// reconstructArray reads numpy's own ndarray pickle:
// _reconstruct(ndarray, (0,), b'b') then BUILD (version, shape, dtype,
// is_fortran, data).
func reconstructArray(o *object) (any, error) {
	st, ok := o.state.(*types.Tuple)
	if !ok || len(*st) != 5 {
		return nil, &UnsupportedError{Type: "numpy.ndarray", Detail: "unknown pickle layout"}
	}
	shape, err := shapeOf((*st)[1])
	if err != nil {
		return nil, err
	}
	dt, err := dtypeOf((*st)[2])
	if err != nil {
		return nil, err
	}
	fortran, _ := (*st)[3].(bool)
	data, ok := (*st)[4].([]byte)
	if !ok {
		// Object arrays pickle their elements as a list.
		return nil, &UnsupportedError{Type: "numpy.ndarray", Detail: "dtype " + dt + " (only numeric dtypes are)"}
	}
	return makeArray(dt, shape, data, fortran)
}

// fromBuffer reads numpy's protocol 5 ndarray pickle:
// _frombuffer(buffer, dtype, shape, order).
func fromBuffer(o *object) (any, error) {
	if len(o.args) != 4 {
		return nil, &UnsupportedError{Type: "numpy.ndarray", Detail: "unknown pickle layout"}
	}
	var data []byte
	switch b := o.args[0].(type) {
	case []byte:
		data = b
	case *types.ByteArray:
		data = []byte(*b)
	default:
		return nil, &UnsupportedError{Type: "numpy.ndarray", Detail: "out-of-band buffers are not supported"}
	}
	dt, err := dtypeOf(o.args[1])
	if err != nil {
		return nil, err
	}
	shape, err := shapeOf(o.args[2])
	if err != nil {
		return nil, err
	}
	order, _ := o.args[3].(string)
	return makeArray(dt, shape, data, order == "F")
}

// numpyScalar reads scalar(dtype, raw bytes): np.float64(2.5) and friends.
func numpyScalar(o *object) (any, error) {
	if len(o.args) != 2 {
		return nil, &UnsupportedError{Type: "numpy scalar", Detail: "unknown pickle layout"}
	}
	dt, err := dtypeOf(o.args[0])
	if err != nil {
		return nil, err
	}
	data, ok := o.args[1].([]byte)
	if !ok {
		return nil, &UnsupportedError{Type: "numpy scalar", Detail: "dtype " + dt}
	}
	return makeArray(dt, nil, data, false)
}

// cannedArray reads ipyparallel's CannedArray once its placeholders have
// been filled with their frames.
func cannedArray(o *object, depth int) (any, error) {
	st, ok := o.state.(*types.Dict)
	if !ok {
		return nil, errors.New("pickle: CannedArray without state")
	}
	bufs, ok := dictGet(st, "buffers").(*types.List)
	if !ok || len(*bufs) != 1 {
		return nil, errors.New("pickle: CannedArray without exactly one buffer")
	}
	data, ok := (*bufs)[0].([]byte)
	if !ok {
		return nil, errors.New("pickle: CannedArray buffer missing (a frame placeholder was not filled)")
	}
	if pickled, _ := dictGet(st, "pickled").(bool); pickled {
		if depth > maxDepth/2 {
			return nil, errors.New("pickle: pickled arrays nested too deep")
		}
		raw, err := unpickle(data)
		if err != nil {
			return nil, err
		}
		return fromPython(raw, depth+maxDepth/2)
	}
	shape, err := shapeOf(dictGet(st, "shape"))
	if err != nil {
		return nil, err
	}
	dt, ok := dictGet(st, "dtype").(string)
	if !ok {
		return nil, &UnsupportedError{Type: "numpy.ndarray", Detail: "structured dtypes are not supported"}
	}
	return makeArray(dt, shape, data, false)
}

// elemTypes maps numpy type codes (without byte order) to Go element types.
var elemTypes = map[string]reflect.Type{
	"f8": reflect.TypeFor[float64](), "f4": reflect.TypeFor[float32](),
	"i8": reflect.TypeFor[int64](), "i4": reflect.TypeFor[int32](),
	"i2": reflect.TypeFor[int16](), "i1": reflect.TypeFor[int8](),
	"u8": reflect.TypeFor[uint64](), "u4": reflect.TypeFor[uint32](),
	"u2": reflect.TypeFor[uint16](), "u1": reflect.TypeFor[uint8](),
	"b1": reflect.TypeFor[bool](), "c16": reflect.TypeFor[complex128](),
	"c8": reflect.TypeFor[complex64](),
}

// littleEndian: raw array data is copied as memory, which is only right
// on little-endian hosts (every HPC target we know of).
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// makeArray builds the Go value of an array of dtype dt (with byte order,
// "<f8") and shape; a nil shape is a scalar.
func makeArray(dt string, shape []int, data []byte, fortran bool) (any, error) {
	code := strings.TrimLeft(dt, "<>|=")
	order := strings.TrimSuffix(dt, code)
	et, ok := elemTypes[code]
	if !ok || len(order) > 1 {
		return nil, &UnsupportedError{Type: "numpy.ndarray", Detail: fmt.Sprintf("dtype %q (only numeric dtypes are)", dt)}
	}
	size := int(et.Size())
	if order == ">" && size > 1 {
		return nil, &UnsupportedError{Type: "numpy.ndarray", Detail: fmt.Sprintf("big-endian dtype %q", dt)}
	}
	if !littleEndian && size > 1 {
		return nil, errors.New("pickle: numpy data needs a little-endian host")
	}
	n := 1
	for _, d := range shape {
		if d != 0 && n > math.MaxInt32/d {
			return nil, fmt.Errorf("pickle: array shape %v too large", shape)
		}
		n *= d
	}
	if len(data) != n*size {
		return nil, fmt.Errorf("pickle: array of shape %v and dtype %s needs %d bytes, got %d", shape, dt, n*size, len(data))
	}
	s := reflect.MakeSlice(reflect.SliceOf(et), n, n)
	if n > 0 {
		dst := unsafe.Slice((*byte)(s.UnsafePointer()), n*size)
		if fortran && len(shape) > 1 {
			fortranToC(dst, data, shape, size)
		} else {
			copy(dst, data)
		}
		if et.Kind() == reflect.Bool {
			for i := range dst {
				if dst[i] > 1 {
					dst[i] = 1
				}
			}
		}
	}
	switch {
	case len(shape) == 0:
		if n != 1 {
			return nil, errors.New("pickle: scalar without exactly one element")
		}
		return s.Index(0).Interface(), nil
	case len(shape) == 1 && et.Kind() != reflect.Uint8:
		return s.Interface(), nil
	case len(shape) == 2 && et.Kind() == reflect.Float64 && shape[0] > 0 && shape[1] > 0:
		return mat.NewDense(shape[0], shape[1], s.Interface().([]float64)), nil
	}
	return Array{Shape: shape, Data: s.Interface()}, nil
}

// fortranToC copies column-major src into row-major dst.
func fortranToC(dst, src []byte, shape []int, size int) {
	nd := len(shape)
	idx := make([]int, nd)
	// Strides of the Fortran layout, in elements.
	fs := make([]int, nd)
	acc := 1
	for i := 0; i < nd; i++ {
		fs[i] = acc
		acc *= shape[i]
	}
	for c := 0; c*size < len(dst); c++ {
		f := 0
		for i := 0; i < nd; i++ {
			f += idx[i] * fs[i]
		}
		copy(dst[c*size:(c+1)*size], src[f*size:(f+1)*size])
		for i := nd - 1; i >= 0; i-- {
			idx[i]++
			if idx[i] < shape[i] {
				break
			}
			idx[i] = 0
		}
	}
}

// sortedKeys returns d's keys in the order Python's sorted() gives for
// the keys serialize_object sees (str or int keys).
func sortedKeys(d *types.Dict) []any {
	keys := make([]any, 0, len(*d))
	for _, e := range *d {
		keys = append(keys, e.Key)
	}
	sort.SliceStable(keys, func(i, j int) bool { return lessKey(keys[i], keys[j]) })
	return keys
}

// lessKey orders numbers numerically and before strings, strings by code
// point (Go's byte order of UTF-8 is code point order).
func lessKey(a, b any) bool {
	fa, aNum := toFloat(a)
	fb, bNum := toFloat(b)
	switch {
	case aNum && bNum:
		return fa < fb
	case aNum != bNum:
		return aNum
	}
	sa, _ := a.(string)
	sb, _ := b.(string)
	return sa < sb
}
