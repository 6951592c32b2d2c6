package interp

import (
	"fmt"
	"go/constant"
	"math"
	"reflect"
	"strings"

	"gonum.org/v1/gonum/mat"
)

// exportValue turns a value read from yaegi's globals into a plain Go value.
func exportValue(v reflect.Value) any {
	if !v.IsValid() || !v.CanInterface() {
		return nil
	}
	x := v.Interface()
	if c, ok := x.(constant.Value); ok {
		// yaegi keeps untyped constants (const C = 3) as go/constant
		// values; give them their default Go type, as the compiler would.
		return constantValue(c)
	}
	return x
}

// constantValue converts an untyped constant to its default type.
func constantValue(c constant.Value) any {
	switch c.Kind() {
	case constant.Bool:
		return constant.BoolVal(c)
	case constant.String:
		return constant.StringVal(c)
	case constant.Int:
		if i, ok := constant.Int64Val(c); ok && i >= math.MinInt && i <= math.MaxInt {
			return int(i)
		}
		f, _ := constant.Float64Val(c)
		return f
	case constant.Float:
		f, _ := constant.Float64Val(c)
		return f
	case constant.Complex:
		re, _ := constant.Float64Val(constant.Real(c))
		im, _ := constant.Float64Val(constant.Imag(c))
		return complex(re, im)
	}
	return c.String()
}

// maxShown bounds how many elements of a slice or array render shows: a
// trailing `a` on a 1e7-element slice must not build a 200 MB execute_result
// (numpy abbreviates for the same reason). The full value is still in
// Result.Value.
const maxShown = 1000

// render is Result.Text: fmt's %v, except that matrices print as aligned
// rows and very long slices are abbreviated.
func render(v any) string {
	rv := reflect.ValueOf(v)
	if m, ok := v.(mat.Matrix); ok && !(rv.Kind() == reflect.Pointer && rv.IsNil()) {
		r, c := m.Dims()
		opts := []mat.FormatOption{mat.Squeeze()}
		if r > 16 || c > 16 {
			opts = append(opts, mat.Excerpt(4))
		}
		return fmt.Sprintf("%v", mat.Formatted(m, opts...))
	}
	if (rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array) && rv.Len() > maxShown {
		var b strings.Builder
		b.WriteByte('[')
		for i := 0; i < 10; i++ {
			fmt.Fprintf(&b, "%v ", rv.Index(i))
		}
		b.WriteString("...")
		for i := rv.Len() - 10; i < rv.Len(); i++ {
			fmt.Fprintf(&b, " %v", rv.Index(i))
		}
		fmt.Fprintf(&b, "] (len %d)", rv.Len())
		return b.String()
	}
	return fmt.Sprintf("%v", v)
}
