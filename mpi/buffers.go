//go:build (ompi && !mpich) || (mpich && !ompi)

package mpi

import (
	"fmt"
	"math"
	"unsafe"

	"gonum.org/v1/gonum/mat"
)

// kind is the element type of a buffer; the values are translated to MPI
// datatypes in mpi_cgo.go.
type kind uint8

const (
	kNone kind = iota // no buffer (nil), allowed where MPI ignores the argument
	kFloat64
	kFloat32
	kInt64
	kInt32
	kUint8
)

var kindNames = [...]string{kNone: "nil", kFloat64: "float64", kFloat32: "float32", kInt64: "int64", kInt32: "int32", kUint8: "byte"}

func (k kind) String() string { return kindNames[k] }

// isFloat reports whether k is a floating-point type, for which MPI
// defines no logical or bitwise reductions.
func (k kind) isFloat() bool { return k == kFloat64 || k == kFloat32 }

// buffer is a contiguous run of n elements of kind k at p. When the Go
// value is not contiguous (a strided gonum view) p points at a copy, and
// back copies the result into the original after a receiving call.
type buffer struct {
	p    unsafe.Pointer
	n    int
	k    kind
	back func()
}

// end returns the address just past the buffer, for overlap checks.
func (b buffer) end() uintptr { return uintptr(b.p) + uintptr(b.n)*b.k.size() }

// size returns the size in bytes of one element.
func (k kind) size() uintptr {
	switch k {
	case kFloat64, kInt64:
		return 8
	case kFloat32, kInt32:
		return 4
	case kUint8:
		return 1
	}
	return 0
}

// overlaps reports whether two non-empty buffers share memory.
func overlaps(a, b buffer) bool {
	if a.n == 0 || b.n == 0 || a.p == nil || b.p == nil {
		return false
	}
	return uintptr(a.p) < b.end() && uintptr(b.p) < a.end()
}

// describe turns a supported Go value into a buffer. nil is accepted (kNone)
// so that callers can decide where MPI ignores a buffer. The result points
// into v's memory, which the caller keeps alive across the blocking MPI
// call (no pinning is needed: MPI does not keep the pointer afterwards).
func describe(v any) (buffer, error) {
	var b buffer
	switch x := v.(type) {
	case nil:
		return b, nil
	case []float64:
		b = buffer{unsafe.Pointer(unsafe.SliceData(x)), len(x), kFloat64, nil}
	case []float32:
		b = buffer{unsafe.Pointer(unsafe.SliceData(x)), len(x), kFloat32, nil}
	case []int64:
		b = buffer{unsafe.Pointer(unsafe.SliceData(x)), len(x), kInt64, nil}
	case []int32:
		b = buffer{unsafe.Pointer(unsafe.SliceData(x)), len(x), kInt32, nil}
	case []byte:
		b = buffer{unsafe.Pointer(unsafe.SliceData(x)), len(x), kUint8, nil}
	case *mat.Dense:
		if x == nil {
			return b, fmt.Errorf("mpi: nil *mat.Dense")
		}
		b = denseBuffer(x)
	case *mat.VecDense:
		if x == nil {
			return b, fmt.Errorf("mpi: nil *mat.VecDense")
		}
		b = vecBuffer(x)
	default:
		return b, fmt.Errorf("mpi: unsupported buffer type %T (want []float64, []float32, []int64, []int32, []byte, *mat.Dense or *mat.VecDense)", v)
	}
	if b.n > math.MaxInt32 {
		return buffer{}, fmt.Errorf("mpi: buffer of %d elements exceeds MPI's int count", b.n)
	}
	if b.n == 0 {
		// MPI never dereferences an empty buffer; a nil pointer keeps
		// the overlap checks simple.
		b.p = nil
	}
	return b, nil
}

// denseBuffer describes a gonum matrix row-major; a view whose rows are not
// adjacent (Stride > Cols) goes through a contiguous copy.
func denseBuffer(m *mat.Dense) buffer {
	if m.IsEmpty() {
		return buffer{k: kFloat64}
	}
	raw := m.RawMatrix()
	n := raw.Rows * raw.Cols
	if raw.Stride == raw.Cols || raw.Rows == 1 {
		return buffer{unsafe.Pointer(&raw.Data[0]), n, kFloat64, nil}
	}
	tmp := make([]float64, 0, n)
	for i := 0; i < raw.Rows; i++ {
		tmp = append(tmp, raw.Data[i*raw.Stride:i*raw.Stride+raw.Cols]...)
	}
	back := func() {
		for i := 0; i < raw.Rows; i++ {
			copy(raw.Data[i*raw.Stride:i*raw.Stride+raw.Cols], tmp[i*raw.Cols:(i+1)*raw.Cols])
		}
	}
	return buffer{unsafe.Pointer(&tmp[0]), n, kFloat64, back}
}

// vecBuffer describes a gonum vector; a strided view (Inc > 1) goes through
// a contiguous copy.
func vecBuffer(v *mat.VecDense) buffer {
	if v.IsEmpty() {
		return buffer{k: kFloat64}
	}
	raw := v.RawVector()
	if raw.Inc == 1 || raw.N == 1 {
		return buffer{unsafe.Pointer(&raw.Data[0]), raw.N, kFloat64, nil}
	}
	tmp := make([]float64, raw.N)
	for i := range tmp {
		tmp[i] = raw.Data[i*raw.Inc]
	}
	back := func() {
		for i, x := range tmp {
			raw.Data[i*raw.Inc] = x
		}
	}
	return buffer{unsafe.Pointer(&tmp[0]), raw.N, kFloat64, back}
}

// pair describes the send and receive buffers of one call and checks that
// they have the same element type. recv may be nil only if recvOptional.
func pair(send, recv any, recvOptional bool) (s, r buffer, err error) {
	if s, err = describe(send); err != nil {
		return
	}
	if r, err = describe(recv); err != nil {
		return
	}
	if s.k == kNone {
		return s, r, fmt.Errorf("mpi: send buffer is nil")
	}
	if r.k == kNone {
		if !recvOptional {
			return s, r, fmt.Errorf("mpi: receive buffer is nil")
		}
		return s, r, nil
	}
	if s.k != r.k {
		return s, r, fmt.Errorf("mpi: send buffer holds %s but receive buffer holds %s", s.k, r.k)
	}
	return s, r, nil
}

// valid reports whether o is one of the declared operators.
func (o Op) valid() bool { return o >= Sum && o <= BOr }

// integerOnly reports whether MPI defines o only for integer types.
func (o Op) integerOnly() bool { return o >= LAnd && o <= BOr }

// checkOp refuses operators MPI does not define for the element type.
func checkOp(op Op, k kind) error {
	if !op.valid() {
		return fmt.Errorf("mpi: invalid reduction operator %v", op)
	}
	if op.integerOnly() && k.isFloat() {
		return fmt.Errorf("mpi: operator %v is defined only for integer types, not %s", op, k)
	}
	return nil
}

// copyBack copies a staged result into the caller's gonum view, if any.
func (b buffer) copyBack() {
	if b.back != nil {
		b.back()
	}
}
