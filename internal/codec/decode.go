package codec

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/ipp-hpc/ipp/internal/convert"
)

// decoder resolves frame references while walking the envelope.
type decoder struct {
	frames [][]byte
	used   []bool
}

// open decodes and checks the envelope.
func open(frames [][]byte) (*decoder, *node, error) {
	if len(frames) == 0 {
		return nil, nil, errors.New("codec: no frames")
	}
	var env envelope
	if err := decMode.Unmarshal(frames[0], &env); err != nil {
		return nil, nil, fmt.Errorf("codec: envelope: %w", err)
	}
	if env.Version != Version {
		return nil, nil, fmt.Errorf("codec: envelope version %d, this build reads %d", env.Version, Version)
	}
	return &decoder{frames: frames, used: make([]bool, len(frames))}, &env.Root, nil
}

// finish checks that every raw frame was referenced: extra frames mean the
// sender and receiver disagree on how frames are grouped.
func (d *decoder) finish() error {
	for i := 1; i < len(d.frames); i++ {
		if !d.used[i] {
			return fmt.Errorf("codec: frame %d of %d is not referenced by the envelope", i, len(d.frames))
		}
	}
	return nil
}

// rawData returns the raw bytes of n: inline, or its frame.
func (d *decoder) rawData(n *node) ([]byte, error) {
	if n.Frame == 0 {
		return n.Bytes, nil
	}
	if n.Frame < 1 || n.Frame >= len(d.frames) {
		return nil, fmt.Errorf("codec: frame %d referenced, %d present", n.Frame, len(d.frames))
	}
	if d.used[n.Frame] {
		return nil, fmt.Errorf("codec: frame %d referenced twice", n.Frame)
	}
	if len(n.Bytes) > 0 {
		return nil, errors.New("codec: node has both inline data and a frame")
	}
	d.used[n.Frame] = true
	return d.frames[n.Frame], nil
}

// scalar decodes n.Data into a T.
func scalar[T any](n *node) (T, error) {
	var v T
	if err := decMode.Unmarshal(n.Data, &v); err != nil {
		return v, fmt.Errorf("codec: kind %d: %w", n.Kind, err)
	}
	return v, nil
}

// value rebuilds the Go value n describes.
func (d *decoder) value(n *node, depth int) (any, error) {
	if depth > maxNestedLevels {
		return nil, errors.New("codec: envelope nested too deep")
	}
	switch n.Kind {
	case kNil:
		return nil, nil
	case kBool:
		return scalar[bool](n)
	case kInt:
		return scalar[int](n)
	case kInt8:
		return scalar[int8](n)
	case kInt16:
		return scalar[int16](n)
	case kInt32:
		return scalar[int32](n)
	case kInt64:
		return scalar[int64](n)
	case kUint:
		return scalar[uint](n)
	case kUint8:
		return scalar[uint8](n)
	case kUint16:
		return scalar[uint16](n)
	case kUint32:
		return scalar[uint32](n)
	case kUint64:
		return scalar[uint64](n)
	case kFloat32:
		return scalar[float32](n)
	case kFloat64:
		return scalar[float64](n)
	case kComplex64:
		c, err := scalar[[2]float32](n)
		return complex(c[0], c[1]), err
	case kComplex128:
		c, err := scalar[[2]float64](n)
		return complex(c[0], c[1]), err
	case kString:
		return scalar[string](n)
	case kDuration:
		ns, err := scalar[int64](n)
		return time.Duration(ns), err
	case kError:
		msg, err := scalar[string](n)
		if err != nil {
			return nil, err
		}
		return errors.New(msg), nil
	case kTime:
		var t time.Time
		if err := t.UnmarshalBinary(n.Bytes); err != nil {
			return nil, fmt.Errorf("codec: time: %w", err)
		}
		return t, nil
	case kStrings:
		if n.Nil {
			return []string(nil), nil
		}
		ss, err := scalar[[]string](n)
		if ss == nil && err == nil {
			ss = []string{}
		}
		return ss, err
	case kList:
		return d.list(n, depth)
	case kMap:
		return d.dict(n, depth)
	case kDense, kDenseValue:
		return d.dense(n)
	case kVecDense, kVecDenseValue:
		return d.vecDense(n)
	case kCBOR:
		var v any
		if err := decMode.Unmarshal(n.Data, &v); err != nil {
			// Maps with non-string keys only fit map[any]any.
			if err2 := decModeAnyKeys.Unmarshal(n.Data, &v); err2 != nil {
				return nil, fmt.Errorf("codec: %s: %w", n.Type, err)
			}
		}
		return v, nil
	}
	if isRaw(n.Kind) {
		s, err := d.raw(n)
		if err != nil {
			return nil, err
		}
		return s.Interface(), nil
	}
	return nil, fmt.Errorf("codec: unknown kind %d (sent by a newer version?)", n.Kind)
}

// raw returns the numeric slice of a raw node, nil slice included.
func (d *decoder) raw(n *node) (reflect.Value, error) {
	b, err := d.rawData(n)
	if err != nil {
		return reflect.Value{}, err
	}
	if n.Nil {
		if len(b) > 0 {
			return reflect.Value{}, errors.New("codec: nil slice with data")
		}
		return reflect.Zero(reflect.SliceOf(hostElem[n.Kind])), nil
	}
	return fromWire(b, n.Kind, n.Len)
}

func (d *decoder) list(n *node, depth int) (any, error) {
	if n.Nil {
		if len(n.Items) > 0 {
			return nil, errors.New("codec: nil list with items")
		}
		return []any(nil), nil
	}
	out := make([]any, len(n.Items))
	for i := range n.Items {
		var err error
		if out[i], err = d.value(&n.Items[i], depth+1); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (d *decoder) dict(n *node, depth int) (any, error) {
	if len(n.Keys) != len(n.Items) {
		return nil, fmt.Errorf("codec: map with %d keys and %d values", len(n.Keys), len(n.Items))
	}
	if n.Nil {
		if len(n.Items) > 0 {
			return nil, errors.New("codec: nil map with items")
		}
		return map[string]any(nil), nil
	}
	out := make(map[string]any, len(n.Keys))
	for i, k := range n.Keys {
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("codec: map key %q repeated", k)
		}
		v, err := d.value(&n.Items[i], depth+1)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// matrixData returns the float64 elements of a dense or vector node after
// checking them against dims.
func (d *decoder) matrixData(n *node, dims int) ([]float64, int, int, error) {
	if len(n.Dims) != dims {
		return nil, 0, 0, fmt.Errorf("codec: matrix with %d dimensions, want %d", len(n.Dims), dims)
	}
	r, c := n.Dims[0], 1
	if dims == 2 {
		c = n.Dims[1]
	}
	if r < 0 || c < 0 || (c != 0 && r > math.MaxInt/c) {
		return nil, 0, 0, fmt.Errorf("codec: bad matrix shape %v", n.Dims)
	}
	if r*c != n.Len {
		return nil, 0, 0, fmt.Errorf("codec: matrix shape %v does not match %d elements", n.Dims, n.Len)
	}
	b, err := d.rawData(n)
	if err != nil {
		return nil, 0, 0, err
	}
	s, err := fromWire(b, kFloat64s, n.Len)
	if err != nil {
		return nil, 0, 0, err
	}
	return s.Interface().([]float64), r, c, nil
}

func (d *decoder) dense(n *node) (any, error) {
	if n.Nil {
		if n.Kind != kDense || n.Len != 0 || n.Frame != 0 || len(n.Bytes) > 0 {
			return nil, errors.New("codec: bad nil matrix")
		}
		return (*mat.Dense)(nil), nil
	}
	data, r, c, err := d.matrixData(n, 2)
	if err != nil {
		return nil, err
	}
	m := &mat.Dense{} // mat.NewDense refuses empty shapes
	if r > 0 && c > 0 {
		m = mat.NewDense(r, c, data)
	} else if len(data) > 0 {
		return nil, fmt.Errorf("codec: empty matrix %v with data", n.Dims)
	}
	if n.Kind == kDenseValue {
		return *m, nil
	}
	return m, nil
}

func (d *decoder) vecDense(n *node) (any, error) {
	if n.Nil {
		if n.Kind != kVecDense || n.Len != 0 || n.Frame != 0 || len(n.Bytes) > 0 {
			return nil, errors.New("codec: bad nil vector")
		}
		return (*mat.VecDense)(nil), nil
	}
	data, r, _, err := d.matrixData(n, 1)
	if err != nil {
		return nil, err
	}
	v := &mat.VecDense{}
	if r > 0 {
		v = mat.NewVecDense(r, data)
	}
	if n.Kind == kVecDenseValue {
		return *v, nil
	}
	return v, nil
}

// into decodes n into dst (addressable).
func (d *decoder) into(n *node, dst reflect.Value) error {
	if n.Kind == kCBOR && dst.Kind() != reflect.Interface {
		// Straight from CBOR to the target type: a struct stays a struct.
		if err := decMode.Unmarshal(n.Data, dst.Addr().Interface()); err != nil {
			return fmt.Errorf("codec: %s into %v: %w", n.Type, dst.Type(), err)
		}
		return nil
	}
	v, err := d.value(n, 0)
	if err != nil {
		return err
	}
	return assign(dst, v, n.Kind)
}

// assign stores v, decoded from a node of kind k, into dst, by the rules
// of internal/convert (shared with the engine's registry and the pickle
// path). Two codec-only cases remain: an error decodes into a string as
// its message, and plain data the rules cannot map (a map[string]any into
// a struct) is mapped over by CBOR, as the struct would have been encoded.
func assign(dst reflect.Value, v any, k kind) error {
	t := dst.Type()
	if k == kError && t.Kind() == reflect.String {
		dst.SetString(v.(error).Error())
		return nil
	}
	rv, err := convert.To(v, t)
	if err == nil {
		dst.Set(rv)
		return nil
	}
	switch k {
	case kList, kMap, kStrings, kCBOR:
	default:
		if !isRaw(k) {
			return fmt.Errorf("codec: cannot decode %T into %v: %w", v, t, err)
		}
	}
	data, cerr := encMode.Marshal(v)
	if cerr == nil {
		cerr = decMode.Unmarshal(data, dst.Addr().Interface())
	}
	if cerr != nil {
		return fmt.Errorf("codec: cannot decode %T into %v: %w", v, t, err)
	}
	return nil
}
