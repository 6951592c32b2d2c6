package pickle

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"sort"
	"unsafe"

	"gonum.org/v1/gonum/mat"
)

// Pickle opcodes written by the encoder (those Python's protocol 4 uses
// for the same values).
const (
	opProto          = 0x80
	opStop           = '.'
	opNone           = 'N'
	opTrue           = 0x88
	opFalse          = 0x89
	opBinInt1        = 'K'
	opBinInt2        = 'M'
	opBinInt         = 'J'
	opLong1          = 0x8a
	opLong4          = 0x8b
	opBinFloat       = 'G'
	opShortUnicode   = 0x8c
	opBinUnicode     = 'X'
	opShortBinBytes  = 'C'
	opBinBytes       = 'B'
	opEmptyList      = ']'
	opAppends        = 'e'
	opEmptyTuple     = ')'
	opTuple1         = 0x85
	opTuple2         = 0x86
	opTuple3         = 0x87
	opTuple          = 't'
	opEmptyDict      = '}'
	opSetItems       = 'u'
	opMark           = '('
	opStackGlobal    = 0x93
	opReduce         = 'R'
	opNewObj         = 0x81
	opBuild          = 'b'
	protocolVersion  = 4
	maxShortLen      = 255
	maxLen32         = math.MaxUint32
	ndarrayModule    = "numpy"
	ndarrayClassName = "ndarray"
)

type encoder struct {
	buf    bytes.Buffer
	frames [][]byte // data frames that follow the pickle
}

// Pickle encodes v as one protocol-4 pickle, arrays inline.
func Pickle(v any) ([]byte, error) {
	var e encoder
	e.buf.Write([]byte{opProto, protocolVersion})
	if err := e.value(reflect.ValueOf(v), levelNested, 0); err != nil {
		return nil, err
	}
	e.buf.WriteByte(opStop)
	return e.buf.Bytes(), nil
}

// EncodeObject encodes v as ipyparallel's serialize_object does: a pickle
// then the data frames of large arrays at the top level, as CannedArray
// placeholders. deserialize_object on the Python side rebuilds v. Array
// frames alias v's memory: keep v unchanged until they are sent.
func EncodeObject(v any) ([][]byte, error) {
	var e encoder
	e.buf.Write([]byte{opProto, protocolVersion})
	if err := e.value(reflect.ValueOf(v), levelTop, 0); err != nil {
		return nil, err
	}
	e.buf.WriteByte(opStop)
	return append([][]byte{e.buf.Bytes()}, e.frames...), nil
}

var (
	bigIntType = reflect.TypeFor[*big.Int]()
	denseType  = reflect.TypeFor[mat.Dense]()
	vecType    = reflect.TypeFor[mat.VecDense]()
	arrayType  = reflect.TypeFor[Array]()
	tupleType  = reflect.TypeFor[Tuple]()
	errorType  = reflect.TypeFor[error]()
)

// Levels of serialize_object's canning: the object itself (whose small
// container's items are canned too), a canned value (whose large arrays
// get frames), and anything deeper (pickled as is).
const (
	levelNested = iota
	levelCanned
	levelTop
)

// value writes rv at the given canning level.
func (e *encoder) value(rv reflect.Value, level int, depth int) error {
	top := level >= levelCanned
	if depth > maxDepth {
		return errors.New("pickle: value nested too deep")
	}
	for rv.Kind() == reflect.Interface {
		if rv.IsNil() {
			e.buf.WriteByte(opNone)
			return nil
		}
		rv = rv.Elem()
	}
	if !rv.IsValid() {
		e.buf.WriteByte(opNone)
		return nil
	}
	t := rv.Type()
	switch {
	case t == bigIntType:
		if rv.IsNil() {
			e.buf.WriteByte(opNone)
			return nil
		}
		e.bigInt(rv.Interface().(*big.Int))
		return nil
	case t.Kind() == reflect.Pointer && (t.Elem() == denseType || t.Elem() == vecType):
		if rv.IsNil() {
			e.buf.WriteByte(opNone)
			return nil
		}
		return e.value(rv.Elem(), level, depth)
	case t == denseType:
		d := rv.Interface().(mat.Dense)
		m := &d
		r, c := m.Dims()
		data := make([]float64, 0, r*c)
		for i := 0; i < r; i++ {
			data = append(data, m.RawRowView(i)[:c]...)
		}
		return e.array([]int{r, c}, reflect.ValueOf(data), top)
	case t == vecType:
		v := rv.Interface().(mat.VecDense)
		n := v.Len()
		data := make([]float64, n)
		for i := range n {
			data[i] = v.AtVec(i)
		}
		return e.array([]int{n}, reflect.ValueOf(data), top)
	case t == arrayType:
		a := rv.Interface().(Array)
		return e.array(a.Shape, reflect.ValueOf(a.Data), top)
	case t.Implements(errorType) && t.Kind() == reflect.Pointer:
		return &UnsupportedError{Type: t.String(), Go: true, Detail: "errors are not values"}
	}
	switch t.Kind() {
	case reflect.Bool:
		if rv.Bool() {
			e.buf.WriteByte(opTrue)
		} else {
			e.buf.WriteByte(opFalse)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.int(rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u <= math.MaxInt64 {
			e.int(int64(u))
		} else {
			e.bigInt(new(big.Int).SetUint64(u))
		}
	case reflect.Float32, reflect.Float64:
		e.float(rv.Float())
	case reflect.Complex64, reflect.Complex128:
		c := rv.Complex()
		e.global("builtins", "complex")
		e.float(real(c))
		e.float(imag(c))
		e.buf.WriteByte(opTuple2)
		e.buf.WriteByte(opReduce)
	case reflect.String:
		e.str(rv.String())
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice && rv.IsNil() && t != tupleType && t.Elem().Kind() != reflect.Uint8 && !isNumericElem(t.Elem()) {
			// A nil []any is an empty list, not None: Go code often
			// leaves result slices nil.
			e.buf.WriteByte(opEmptyList)
			return nil
		}
		if t.Elem().Kind() == reflect.Uint8 {
			b := make([]byte, rv.Len())
			reflect.Copy(reflect.ValueOf(b), rv)
			e.bytes(b)
			return nil
		}
		if isNumericElem(t.Elem()) {
			if t.Kind() == reflect.Array {
				s := reflect.MakeSlice(reflect.SliceOf(t.Elem()), rv.Len(), rv.Len())
				reflect.Copy(s, rv)
				rv = s
			}
			return e.array([]int{rv.Len()}, rv, top)
		}
		itemsTop := levelNested
		if level == levelTop && rv.Len() < itemThreshold {
			itemsTop = levelCanned
		}
		if t == tupleType {
			return e.tuple(rv, itemsTop, depth)
		}
		e.buf.WriteByte(opEmptyList)
		if rv.Len() == 0 {
			return nil
		}
		e.buf.WriteByte(opMark)
		for i := 0; i < rv.Len(); i++ {
			if err := e.value(rv.Index(i), itemsTop, depth+1); err != nil {
				return err
			}
		}
		e.buf.WriteByte(opAppends)
	case reflect.Map:
		itemsTop := levelNested
		if level == levelTop && rv.Len() < itemThreshold {
			itemsTop = levelCanned
		}
		return e.dict(rv, itemsTop, depth)
	case reflect.Pointer:
		if rv.IsNil() {
			e.buf.WriteByte(opNone)
			return nil
		}
		return e.value(rv.Elem(), level, depth+1)
	default:
		return &UnsupportedError{Type: t.String(), Go: true}
	}
	return nil
}

func (e *encoder) tuple(rv reflect.Value, itemsTop int, depth int) error {
	n := rv.Len()
	if n == 0 {
		e.buf.WriteByte(opEmptyTuple)
		return nil
	}
	if n > 3 {
		e.buf.WriteByte(opMark)
	}
	for i := 0; i < n; i++ {
		if err := e.value(rv.Index(i), itemsTop, depth+1); err != nil {
			return err
		}
	}
	switch n {
	case 1:
		e.buf.WriteByte(opTuple1)
	case 2:
		e.buf.WriteByte(opTuple2)
	case 3:
		e.buf.WriteByte(opTuple3)
	default:
		e.buf.WriteByte(opTuple)
	}
	return nil
}

// dict writes a map with its keys in sorted order: deserialize_object
// fills the placeholders of a top-level dict's values in sorted key order,
// so the frames must be in that order, and sorted output is reproducible.
func (e *encoder) dict(rv reflect.Value, itemsTop int, depth int) error {
	keys := rv.MapKeys()
	plain := make([]any, len(keys))
	for i, k := range keys {
		for k.Kind() == reflect.Interface && !k.IsNil() {
			k = k.Elem()
		}
		switch k.Kind() {
		case reflect.String:
			plain[i] = k.String()
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			plain[i] = float64(k.Int())
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			plain[i] = float64(k.Uint())
		case reflect.Float32, reflect.Float64:
			plain[i] = k.Float()
		case reflect.Bool, reflect.Interface, reflect.Complex64, reflect.Complex128:
			plain[i] = fmt.Sprint(k.Interface())
		default:
			return &UnsupportedError{Type: rv.Type().String(), Go: true, Detail: "map keys of type " + k.Type().String()}
		}
	}
	order := make([]int, len(keys))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return lessKey(plain[order[a]], plain[order[b]]) })
	e.buf.WriteByte(opEmptyDict)
	if len(keys) == 0 {
		return nil
	}
	e.buf.WriteByte(opMark)
	for _, i := range order {
		if err := e.value(keys[i], levelNested, depth+1); err != nil {
			return err
		}
		if err := e.value(rv.MapIndex(keys[i]), itemsTop, depth+1); err != nil {
			return err
		}
	}
	e.buf.WriteByte(opSetItems)
	return nil
}

func (e *encoder) int(x int64) {
	switch {
	case x >= 0 && x <= math.MaxUint8:
		e.buf.WriteByte(opBinInt1)
		e.buf.WriteByte(byte(x))
	case x >= 0 && x <= math.MaxUint16:
		e.buf.WriteByte(opBinInt2)
		e.buf.Write(binary.LittleEndian.AppendUint16(nil, uint16(x)))
	case x >= math.MinInt32 && x <= math.MaxInt32:
		e.buf.WriteByte(opBinInt)
		e.buf.Write(binary.LittleEndian.AppendUint32(nil, uint32(int32(x))))
	default:
		e.bigInt(big.NewInt(x))
	}
}

// bigInt writes LONG1/LONG4: little-endian two's complement, shortest.
func (e *encoder) bigInt(b *big.Int) {
	var le []byte
	if b.Sign() != 0 {
		n := b.BitLen()/8 + 1
		// Two's complement of b in n bytes: b mod 2^(8n).
		m := new(big.Int).Lsh(big.NewInt(1), uint(8*n))
		v := new(big.Int).Mod(b, m)
		be := v.FillBytes(make([]byte, n))
		for i := len(be) - 1; i >= 0; i-- {
			le = append(le, be[i])
		}
		// Drop redundant sign bytes, as Python's encode_long does.
		for len(le) > 1 {
			last, prev := le[len(le)-1], le[len(le)-2]
			if (last == 0x00 && prev&0x80 == 0) || (last == 0xff && prev&0x80 != 0) {
				le = le[:len(le)-1]
				continue
			}
			break
		}
	}
	if len(le) < 256 {
		e.buf.WriteByte(opLong1)
		e.buf.WriteByte(byte(len(le)))
	} else {
		e.buf.WriteByte(opLong4)
		e.buf.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(le))))
	}
	e.buf.Write(le)
}

func (e *encoder) float(f float64) {
	e.buf.WriteByte(opBinFloat)
	e.buf.Write(binary.BigEndian.AppendUint64(nil, math.Float64bits(f)))
}

func (e *encoder) str(s string) {
	if len(s) <= maxShortLen {
		e.buf.WriteByte(opShortUnicode)
		e.buf.WriteByte(byte(len(s)))
	} else {
		e.buf.WriteByte(opBinUnicode)
		e.buf.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(s))))
	}
	e.buf.WriteString(s)
}

func (e *encoder) bytes(b []byte) {
	if len(b) <= maxShortLen {
		e.buf.WriteByte(opShortBinBytes)
		e.buf.WriteByte(byte(len(b)))
	} else {
		e.buf.WriteByte(opBinBytes)
		e.buf.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(b))))
	}
	e.buf.Write(b)
}

func (e *encoder) global(module, name string) {
	e.str(module)
	e.str(name)
	e.buf.WriteByte(opStackGlobal)
}

// dtypes maps Go element kinds to numpy dtype strings.
var dtypes = map[reflect.Kind]string{
	reflect.Float64: "<f8", reflect.Float32: "<f4",
	reflect.Int64: "<i8", reflect.Int: "<i8", reflect.Int32: "<i4",
	reflect.Int16: "<i2", reflect.Int8: "|i1",
	reflect.Uint64: "<u8", reflect.Uint: "<u8", reflect.Uint32: "<u4",
	reflect.Uint16: "<u2", reflect.Uint8: "|u1", reflect.Bool: "|b1",
	reflect.Complex128: "<c16", reflect.Complex64: "<c8",
}

func isNumericElem(t reflect.Type) bool {
	_, ok := dtypes[t.Kind()]
	return ok && t.Kind() != reflect.Uint8
}

// array writes a numeric slice as a numpy array of the given shape: a
// CannedArray whose data is the next frame when at the top level and
// large, else numpy.ndarray(shape, dtype, buffer) with the data inline.
func (e *encoder) array(shape []int, data reflect.Value, top bool) error {
	if data.Kind() != reflect.Slice {
		return &UnsupportedError{Type: "pickle.Array", Go: true, Detail: fmt.Sprintf("Data is a %s, not a numeric slice", data.Kind())}
	}
	et := data.Type().Elem()
	dt, ok := dtypes[et.Kind()]
	if !ok || (et.Kind() == reflect.Int || et.Kind() == reflect.Uint) && et.Size() != 8 {
		return &UnsupportedError{Type: data.Type().String(), Go: true, Detail: "not a numeric element type"}
	}
	n := 1
	for _, d := range shape {
		if d < 0 || (d != 0 && n > math.MaxInt32/d) {
			return fmt.Errorf("pickle: bad array shape %v", shape)
		}
		n *= d
	}
	if n != data.Len() {
		return fmt.Errorf("pickle: array shape %v does not match %d elements", shape, data.Len())
	}
	if !littleEndian && et.Size() > 1 {
		return errors.New("pickle: numpy data needs a little-endian host")
	}
	var raw []byte
	if n > 0 {
		raw = unsafe.Slice((*byte)(data.UnsafePointer()), n*int(et.Size()))
	}
	if top && len(raw) > bufferThreshold {
		e.global(canning, "CannedArray")
		e.buf.WriteByte(opEmptyTuple)
		e.buf.WriteByte(opNewObj)
		e.buf.WriteByte(opEmptyDict)
		e.buf.WriteByte(opMark)
		e.str("shape")
		e.shape(shape)
		e.str("dtype")
		e.str(dt)
		e.str("pickled")
		e.buf.WriteByte(opFalse)
		e.str("buffers")
		e.buf.WriteByte(opEmptyList)
		e.buf.WriteByte(opNone)
		e.buf.WriteByte('a') // APPEND
		e.buf.WriteByte(opSetItems)
		e.buf.WriteByte(opBuild)
		e.frames = append(e.frames, raw)
		return nil
	}
	e.global(ndarrayModule, ndarrayClassName)
	e.shape(shape)
	e.str(dt)
	e.bytes(raw)
	e.buf.WriteByte(opTuple3)
	e.buf.WriteByte(opReduce)
	return nil
}

func (e *encoder) shape(shape []int) {
	if len(shape) > 3 || len(shape) == 0 {
		e.buf.WriteByte(opMark)
	}
	for _, d := range shape {
		e.int(int64(d))
	}
	switch len(shape) {
	case 1:
		e.buf.WriteByte(opTuple1)
	case 2:
		e.buf.WriteByte(opTuple2)
	case 3:
		e.buf.WriteByte(opTuple3)
	default:
		e.buf.WriteByte(opTuple)
	}
}
