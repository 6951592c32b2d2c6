// Package convert is the one set of rules by which a value decoded from
// the wire (by internal/codec or internal/pickle) becomes a value of the Go
// type a program asks for: a registered function's parameter
// (engine/registry.go), a DecodeInto target (internal/codec), a built-in's
// argument. Before it existed the codec and the registry each had a copy,
// and the copies disagreed (the codec turned nil into 0 and reshaped
// []any through CBOR; the registry refused nil for an int and converted
// element by element).
//
// The rules, in order:
//
//   - nil (or a nil interface) becomes the zero value of pointer, slice,
//     map, interface, func and channel types, and is refused for others:
//     a missing number must not silently read as 0.
//   - a value assignable to the type passes as it is.
//   - numbers convert between every integer and floating-point kind when
//     the value survives exactly: 300 does not fit an int8, 2.5 is not an
//     int, 1e300 is not a float32; a big.Int converts when it fits.
//   - named types over the same underlying scalar type convert (type
//     Celsius float64), and string and []byte convert into each other.
//   - slices and arrays convert element by element into slices, or into
//     arrays of the same length; maps convert key by key and value by
//     value. Errors name the element or key that failed.
//   - a value converts into a pointer to what it converts into, and a
//     non-nil pointer converts as what it points to.
//
// Anything else is an error that names both types.
package convert

import (
	"fmt"
	"math"
	"math/big"
	"reflect"
)

// To converts v to type t by the package's rules.
func To(v any, t reflect.Type) (reflect.Value, error) {
	if v == nil {
		return zeroFor(t)
	}
	return Value(reflect.ValueOf(v), t)
}

// Into converts v to T by the package's rules.
func Into[T any](v any) (T, error) {
	var zero T
	rv, err := To(v, reflect.TypeFor[T]())
	if err != nil {
		return zero, err
	}
	return rv.Interface().(T), nil
}

var bigIntType = reflect.TypeFor[*big.Int]()

func zeroFor(t reflect.Type) (reflect.Value, error) {
	switch t.Kind() {
	case reflect.Interface, reflect.Pointer, reflect.Slice, reflect.Map, reflect.Func, reflect.Chan:
		return reflect.Zero(t), nil
	}
	return reflect.Value{}, fmt.Errorf("cannot use nil as %s", t)
}

// Value converts rv to type t by the package's rules.
func Value(rv reflect.Value, t reflect.Type) (reflect.Value, error) {
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
			// A value of the interface type itself, so that it can be
			// stored in containers of that type.
			out := reflect.New(t).Elem()
			out.Set(rv)
			return out, nil
		}
		return rv, nil
	}
	from, to := rv.Kind(), t.Kind()
	switch {
	case rv.Type() == bigIntType && !rv.IsNil() && IsNumber(to):
		return bigNumber(rv.Interface().(*big.Int), t)
	case IsNumber(from) && IsNumber(to):
		return Number(rv, t)
	case from == to && from != reflect.Slice && from != reflect.Map && from != reflect.Array && from != reflect.Pointer && rv.Type().ConvertibleTo(t):
		return rv.Convert(t), nil
	case from == reflect.String && to == reflect.Slice && t.Elem().Kind() == reflect.Uint8,
		from == reflect.Slice && rv.Type().Elem().Kind() == reflect.Uint8 && to == reflect.String:
		return rv.Convert(t), nil
	case (from == reflect.Slice || from == reflect.Array) && to == reflect.Slice:
		if from == reflect.Slice && rv.IsNil() {
			return reflect.Zero(t), nil
		}
		out := reflect.MakeSlice(t, rv.Len(), rv.Len())
		for i := 0; i < rv.Len(); i++ {
			ev, err := Value(rv.Index(i), t.Elem())
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
			ev, err := Value(rv.Index(i), t.Elem())
			if err != nil {
				return reflect.Value{}, fmt.Errorf("element %d: %w", i, err)
			}
			out.Index(i).Set(ev)
		}
		return out, nil
	case from == reflect.Map && to == reflect.Map:
		if rv.IsNil() {
			return reflect.Zero(t), nil
		}
		out := reflect.MakeMapWithSize(t, rv.Len())
		iter := rv.MapRange()
		for iter.Next() {
			k, err := Value(iter.Key(), t.Key())
			if err != nil {
				return reflect.Value{}, fmt.Errorf("key %v: %w", iter.Key(), err)
			}
			ev, err := Value(iter.Value(), t.Elem())
			if err != nil {
				return reflect.Value{}, fmt.Errorf("value for %v: %w", iter.Key(), err)
			}
			out.SetMapIndex(k, ev)
		}
		return out, nil
	case to == reflect.Pointer && from != reflect.Pointer:
		ev, err := Value(rv, t.Elem())
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
		return Value(rv.Elem(), t)
	}
	return reflect.Value{}, fmt.Errorf("cannot use %s as %s", rv.Type(), t)
}

// IsNumber reports whether k is an integer or floating-point kind.
func IsNumber(k reflect.Kind) bool {
	return isInt(k) || isUint(k) || k == reflect.Float32 || k == reflect.Float64
}

func isInt(k reflect.Kind) bool  { return k >= reflect.Int && k <= reflect.Int64 }
func isUint(k reflect.Kind) bool { return k >= reflect.Uint && k <= reflect.Uintptr }

// Number converts between integer and floating-point kinds only when the
// value survives: an int64 of 300 must not silently become an int8 of 44,
// nor 2.5 an int.
func Number(rv reflect.Value, t reflect.Type) (reflect.Value, error) {
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
			if x > math.MaxInt64 || out.OverflowInt(int64(x)) {
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
			// -2^63 is exact as a float64; 2^63 is not an int64.
			if x != math.Trunc(x) || x < math.MinInt64 || x >= math.MaxInt64 || out.OverflowInt(int64(x)) {
				return bad()
			}
			out.SetInt(int64(x))
		case isUint(to):
			if x != math.Trunc(x) || x < 0 || x >= math.MaxUint64 || out.OverflowUint(uint64(x)) {
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

// bigNumber converts a big.Int (a Python int beyond 64 bits, or one a
// program built) when the target holds it exactly.
func bigNumber(b *big.Int, t reflect.Type) (reflect.Value, error) {
	switch {
	case b.IsInt64():
		return Number(reflect.ValueOf(b.Int64()), t)
	case b.IsUint64():
		return Number(reflect.ValueOf(b.Uint64()), t)
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		f, acc := new(big.Float).SetInt(b).Float64()
		out := reflect.New(t).Elem()
		if acc != big.Exact || math.IsInf(f, 0) || out.OverflowFloat(f) {
			return reflect.Value{}, fmt.Errorf("%v does not fit in %s exactly", b, t)
		}
		out.SetFloat(f)
		return out, nil
	}
	return reflect.Value{}, fmt.Errorf("%v does not fit in %s", b, t)
}
