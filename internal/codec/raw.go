package codec

import (
	"fmt"
	"reflect"
	"unsafe"
)

// littleEndian reports the host byte order. Raw frames are memory images,
// which is only the wire format (little-endian) on little-endian hosts:
// x86-64, arm64, ppc64le, riscv64 — every HPC target we know of. On a
// big-endian host raw data is refused (ErrBigEndian) instead of being
// silently byte-swapped or corrupted.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// rawKindOf maps a slice element kind to its raw node kind.
var rawKindOf = map[reflect.Kind]kind{
	reflect.Uint8:      kBytes,
	reflect.Float64:    kFloat64s,
	reflect.Float32:    kFloat32s,
	reflect.Int64:      kInt64s,
	reflect.Int32:      kInt32s,
	reflect.Int16:      kInt16s,
	reflect.Int8:       kInt8s,
	reflect.Int:        kInts,
	reflect.Uint64:     kUint64s,
	reflect.Uint32:     kUint32s,
	reflect.Uint16:     kUint16s,
	reflect.Uint:       kUints,
	reflect.Complex128: kComplex128s,
	reflect.Complex64:  kComplex64s,
}

// wireElem is the element type of each raw kind as laid out on the wire;
// hostElem the element type of the slice Decode returns. They differ only
// for int and uint on 32-bit hosts, where the wire keeps 8 bytes.
var wireElem, hostElem [kindLimit]reflect.Type

func init() {
	set := func(k kind, wire, host reflect.Type) { wireElem[k], hostElem[k] = wire, host }
	set(kBytes, reflect.TypeFor[uint8](), reflect.TypeFor[uint8]())
	set(kFloat64s, reflect.TypeFor[float64](), reflect.TypeFor[float64]())
	set(kFloat32s, reflect.TypeFor[float32](), reflect.TypeFor[float32]())
	set(kInt64s, reflect.TypeFor[int64](), reflect.TypeFor[int64]())
	set(kInt32s, reflect.TypeFor[int32](), reflect.TypeFor[int32]())
	set(kInt16s, reflect.TypeFor[int16](), reflect.TypeFor[int16]())
	set(kInt8s, reflect.TypeFor[int8](), reflect.TypeFor[int8]())
	set(kInts, reflect.TypeFor[int64](), reflect.TypeFor[int]())
	set(kUint64s, reflect.TypeFor[uint64](), reflect.TypeFor[uint64]())
	set(kUint32s, reflect.TypeFor[uint32](), reflect.TypeFor[uint32]())
	set(kUint16s, reflect.TypeFor[uint16](), reflect.TypeFor[uint16]())
	set(kUints, reflect.TypeFor[uint64](), reflect.TypeFor[uint]())
	set(kComplex128s, reflect.TypeFor[complex128](), reflect.TypeFor[complex128]())
	set(kComplex64s, reflect.TypeFor[complex64](), reflect.TypeFor[complex64]())
}

// isRaw reports whether k carries raw numeric data.
func isRaw(k kind) bool { return k < kindLimit && wireElem[k] != nil }

// wireBytes returns the wire image of the numeric slice rv: a view of its
// memory when host and wire layouts agree (no copy), else a converted copy.
func wireBytes(rv reflect.Value, k kind) ([]byte, error) {
	n := rv.Len()
	if n == 0 {
		return nil, nil
	}
	if rv.Type().Elem().Size() > 1 && !littleEndian {
		return nil, ErrBigEndian
	}
	size := int(rv.Type().Elem().Size())
	if size == int(wireElem[k].Size()) {
		return unsafe.Slice((*byte)(rv.UnsafePointer()), n*size), nil
	}
	// int/uint on a 32-bit host: widen to 8 bytes.
	wide := reflect.MakeSlice(reflect.SliceOf(wireElem[k]), n, n)
	for i := 0; i < n; i++ {
		wide.Index(i).Set(rv.Index(i).Convert(wireElem[k]))
	}
	return unsafe.Slice((*byte)(wide.UnsafePointer()), n*int(wireElem[k].Size())), nil
}

// fromWire returns the slice (of hostElem[k]) whose wire image is b, which
// must hold exactly count elements. When b is suitably aligned for the
// element type the slice aliases b: no copy, and the caller's frame memory
// becomes the slice's. Otherwise (or when layouts differ) it is a copy.
func fromWire(b []byte, k kind, count int) (reflect.Value, error) {
	wire, host := wireElem[k], hostElem[k]
	size := int(wire.Size())
	if count < 0 || len(b)%size != 0 || len(b)/size != count {
		return reflect.Value{}, fmt.Errorf("codec: raw data of %d bytes does not hold %d elements of %v", len(b), count, wire)
	}
	if count == 0 {
		return reflect.MakeSlice(reflect.SliceOf(host), 0, 0), nil
	}
	if size > 1 && !littleEndian {
		return reflect.Value{}, ErrBigEndian
	}
	p := unsafe.Pointer(unsafe.SliceData(b))
	if host.Size() == wire.Size() {
		if uintptr(p)%uintptr(host.Align()) == 0 {
			return reflect.SliceAt(host, p, count), nil
		}
		s := reflect.MakeSlice(reflect.SliceOf(host), count, count)
		copy(unsafe.Slice((*byte)(s.UnsafePointer()), len(b)), b)
		return s, nil
	}
	// int/uint on a 32-bit host: narrow from 8 bytes, refusing overflow.
	wide := reflect.MakeSlice(reflect.SliceOf(wire), count, count)
	copy(unsafe.Slice((*byte)(wide.UnsafePointer()), len(b)), b)
	s := reflect.MakeSlice(reflect.SliceOf(host), count, count)
	for i := 0; i < count; i++ {
		w := wide.Index(i)
		if (w.CanInt() && s.Index(i).OverflowInt(w.Int())) || (w.CanUint() && s.Index(i).OverflowUint(w.Uint())) {
			return reflect.Value{}, fmt.Errorf("codec: element %d does not fit in %v on this host", i, host)
		}
		s.Index(i).Set(w.Convert(host))
	}
	return s, nil
}
