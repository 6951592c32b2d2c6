package codec

import (
	"fmt"
	"reflect"
	"time"

	"gonum.org/v1/gonum/mat"
)

// encoder collects raw frames while building the envelope tree.
type encoder struct {
	frames [][]byte // frames[0] is reserved for the envelope
}

// node describes v, appending its raw data to e.frames.
func (e *encoder) node(v any, depth int) (node, error) {
	// The decoder refuses deeper envelopes; fail here with a clear error.
	if depth > maxNestedLevels/2-2 {
		return node{}, fmt.Errorf("codec: value nested deeper than %d levels", maxNestedLevels/2-2)
	}
	switch x := v.(type) {
	case nil:
		return node{Kind: kNil}, nil
	case *mat.Dense:
		if x == nil {
			return node{Kind: kDense, Nil: true}, nil
		}
		return e.dense(x, kDense)
	case mat.Dense:
		return e.dense(&x, kDenseValue)
	case *mat.VecDense:
		if x == nil {
			return node{Kind: kVecDense, Nil: true}, nil
		}
		return e.vecDense(x, kVecDense)
	case mat.VecDense:
		return e.vecDense(&x, kVecDenseValue)
	case time.Time:
		b, err := x.MarshalBinary()
		if err != nil {
			return node{}, fmt.Errorf("codec: %w", err)
		}
		return node{Kind: kTime, Bytes: b}, nil
	case time.Duration:
		return e.scalar(kDuration, int64(x))
	case []any:
		return e.list(x, depth)
	case map[string]any:
		return e.dict(x, depth)
	case error:
		rv := reflect.ValueOf(x)
		if rv.Kind() == reflect.Pointer && rv.IsNil() {
			// A typed nil error: its Error method may well dereference.
			return node{Kind: kNil}, nil
		}
		return e.scalar(kError, x.Error())
	}
	rv := reflect.ValueOf(v)
	// By reflect kind, so that named types (type Celsius float64, type
	// Vec []float64) travel too; Decode gives the underlying type and
	// DecodeInto converts back.
	switch rv.Kind() {
	case reflect.Bool:
		return e.scalar(kBool, rv.Bool())
	case reflect.Int:
		return e.scalar(kInt, rv.Int())
	case reflect.Int8:
		return e.scalar(kInt8, rv.Int())
	case reflect.Int16:
		return e.scalar(kInt16, rv.Int())
	case reflect.Int32:
		return e.scalar(kInt32, rv.Int())
	case reflect.Int64:
		return e.scalar(kInt64, rv.Int())
	case reflect.Uint:
		return e.scalar(kUint, rv.Uint())
	case reflect.Uint8:
		return e.scalar(kUint8, rv.Uint())
	case reflect.Uint16:
		return e.scalar(kUint16, rv.Uint())
	case reflect.Uint32:
		return e.scalar(kUint32, rv.Uint())
	case reflect.Uint64:
		return e.scalar(kUint64, rv.Uint())
	case reflect.Float32:
		return e.scalar(kFloat32, float32(rv.Float()))
	case reflect.Float64:
		return e.scalar(kFloat64, rv.Float())
	case reflect.Complex64:
		c := complex64(rv.Complex())
		return e.scalar(kComplex64, [2]float32{real(c), imag(c)})
	case reflect.Complex128:
		c := rv.Complex()
		return e.scalar(kComplex128, [2]float64{real(c), imag(c)})
	case reflect.String:
		return e.scalar(kString, rv.String())
	case reflect.Slice:
		if k, ok := rawKindOf[rv.Type().Elem().Kind()]; ok {
			return e.raw(rv, k)
		}
		if rv.Type().Elem().Kind() == reflect.String {
			n := node{Kind: kStrings, Nil: rv.IsNil()}
			ss := make([]string, rv.Len())
			for i := range ss {
				ss[i] = rv.Index(i).String()
			}
			data, err := encMode.Marshal(ss)
			n.Data = data
			return n, err
		}
	case reflect.Chan, reflect.Func, reflect.UnsafePointer:
		return node{}, fmt.Errorf("codec: cannot encode a %T", v)
	case reflect.Pointer:
		if rv.IsNil() {
			return node{Kind: kNil}, nil
		}
	}
	data, err := encMode.Marshal(v)
	if err != nil {
		return node{}, fmt.Errorf("codec: %T: %w", v, err)
	}
	return node{Kind: kCBOR, Data: data, Type: rv.Type().String()}, nil
}

// scalar is a node whose value is CBOR in Data.
func (e *encoder) scalar(k kind, v any) (node, error) {
	data, err := encMode.Marshal(v)
	if err != nil {
		return node{}, fmt.Errorf("codec: %w", err)
	}
	return node{Kind: k, Data: data}, nil
}

func (e *encoder) list(xs []any, depth int) (node, error) {
	n := node{Kind: kList, Nil: xs == nil, Items: make([]node, len(xs))}
	for i, x := range xs {
		var err error
		if n.Items[i], err = e.node(x, depth+1); err != nil {
			return node{}, err
		}
	}
	return n, nil
}

func (e *encoder) dict(m map[string]any, depth int) (node, error) {
	n := node{Kind: kMap, Nil: m == nil, Keys: make([]string, 0, len(m)), Items: make([]node, 0, len(m))}
	for k, x := range m {
		item, err := e.node(x, depth+1)
		if err != nil {
			return node{}, fmt.Errorf("codec: key %q: %w", k, err)
		}
		n.Keys = append(n.Keys, k)
		n.Items = append(n.Items, item)
	}
	return n, nil
}

// raw puts the memory image of a numeric slice in the envelope, or in a
// frame of its own when it is large.
func (e *encoder) raw(rv reflect.Value, k kind) (node, error) {
	n := node{Kind: k, Nil: rv.IsNil(), Len: rv.Len()}
	b, err := wireBytes(rv, k)
	if err != nil {
		return node{}, err
	}
	e.attach(&n, b)
	return n, nil
}

// attach stores raw data b in n: inline or as the next frame.
func (e *encoder) attach(n *node, b []byte) {
	if len(b) <= inlineMax {
		n.Bytes = b // copied into the envelope by the CBOR encoder
		return
	}
	e.frames = append(e.frames, b)
	n.Frame = len(e.frames) - 1
}

// dense sends the matrix's elements row after row. A view into a larger
// matrix (stride > columns) is compacted; a plain matrix is sent in place.
func (e *encoder) dense(m *mat.Dense, k kind) (node, error) {
	if m.IsEmpty() {
		return node{Kind: k, Dims: []int{0, 0}}, nil
	}
	raw := m.RawMatrix()
	data := raw.Data[:raw.Rows*raw.Cols]
	if raw.Stride != raw.Cols {
		data = make([]float64, raw.Rows*raw.Cols)
		for i := 0; i < raw.Rows; i++ {
			copy(data[i*raw.Cols:(i+1)*raw.Cols], raw.Data[i*raw.Stride:])
		}
	}
	n := node{Kind: k, Dims: []int{raw.Rows, raw.Cols}, Len: len(data)}
	b, err := wireBytes(reflect.ValueOf(data), kFloat64s)
	if err != nil {
		return node{}, err
	}
	e.attach(&n, b)
	return n, nil
}

// vecDense sends the vector's elements; a strided view is compacted.
func (e *encoder) vecDense(v *mat.VecDense, k kind) (node, error) {
	if v.IsEmpty() {
		return node{Kind: k, Dims: []int{0}}, nil
	}
	raw := v.RawVector()
	var data []float64
	if raw.Inc == 1 {
		data = raw.Data[:raw.N]
	} else {
		data = make([]float64, raw.N)
		for i := range data {
			data[i] = raw.Data[i*raw.Inc]
		}
	}
	n := node{Kind: k, Dims: []int{raw.N}, Len: raw.N}
	b, err := wireBytes(reflect.ValueOf(data), kFloat64s)
	if err != nil {
		return node{}, err
	}
	e.attach(&n, b)
	return n, nil
}
