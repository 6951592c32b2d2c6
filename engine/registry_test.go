package engine

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/ipp-hpc/ipp/internal/interp"
)

func TestRegisterRejects(t *testing.T) {
	r := NewRegistry()
	for name, fn := range map[string]any{
		"":         func() {},
		"ipp.push": func() {},
		"notfunc":  42,
		"nilfunc":  (func())(nil),
		"threeout": func() (int, int, error) { return 0, 0, nil },
		"twonoerr": func() (int, int) { return 0, 0 },
	} {
		if err := r.Register(name, fn); err == nil {
			t.Errorf("Register(%q, %T) accepted", name, fn)
		}
	}
	if err := r.Register("f", func() {}); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("f", func() {}); err == nil {
		t.Errorf("duplicate accepted")
	}
	if got := r.Names(); !reflect.DeepEqual(got, []string{"f"}) {
		t.Errorf("Names = %v", got)
	}
}

func TestRegisterPanicsOnMisuse(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf("Register of a non-function did not panic")
		}
	}()
	Register("engine_test.bad", "not a function")
}

func TestCallConversions(t *testing.T) {
	type celsius float64
	r := NewRegistry()
	reg := func(name string, fn any) {
		t.Helper()
		if err := r.Register(name, fn); err != nil {
			t.Fatal(err)
		}
	}
	reg("int", func(n int) int { return n * 2 })
	reg("int8", func(n int8) int8 { return n })
	reg("uint", func(n uint) uint { return n })
	reg("float", func(x float64) float64 { return x })
	reg("named", func(c celsius) float64 { return float64(c) })
	reg("strings", func(s []string) string { return strings.Join(s, ",") })
	reg("ints", func(s []int) int { return len(s) })
	reg("map", func(m map[string]float64) float64 { return m["a"] })
	reg("ptr", func(p *int) int { return *p })
	reg("nilslice", func(s []float64) bool { return s == nil })
	reg("bytes", func(b []byte) string { return string(b) })
	reg("variadic", func(prefix string, xs ...int) int { return len(prefix) + len(xs) })
	reg("ctx", func(ctx context.Context, n int) (int, error) { return n, ctx.Err() })
	reg("err", func() error { return errors.New("bad") })
	reg("nothing", func() {})
	reg("iface", func(v any) any { return v })

	ok := []struct {
		fn   string
		args []any
		want any
	}{
		{"int", []any{int64(21)}, 42},
		{"int", []any{float64(21)}, 42},
		{"int8", []any{int64(-128)}, int8(-128)},
		{"uint", []any{int64(5)}, uint(5)},
		{"float", []any{int64(3)}, 3.0},
		{"named", []any{1.5}, 1.5},
		{"strings", []any{[]any{"a", "b"}}, "a,b"},
		{"ints", []any{[]int64{1, 2, 3}}, 3},
		{"map", []any{map[string]any{"a": int64(2)}}, 2.0},
		{"ptr", []any{int64(7)}, 7},
		{"nilslice", []any{nil}, true},
		{"bytes", []any{"hi"}, "hi"},
		{"variadic", []any{"ab", int64(1), int64(2)}, 4},
		{"variadic", []any{"ab"}, 2},
		{"ctx", []any{int64(9)}, 9},
		{"nothing", nil, nil},
		{"iface", []any{nil}, nil},
		{"iface", []any{"x"}, "x"},
	}
	for _, c := range ok {
		got, err := r.Call(context.Background(), c.fn, c.args)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s(%v) = %v (%T), %v; want %v", c.fn, c.args, got, got, err, c.want)
		}
	}

	bad := []struct {
		fn    string
		args  []any
		ename string
	}{
		{"int", []any{2.5}, "TypeError"},
		{"int8", []any{int64(300)}, "TypeError"},
		{"uint", []any{int64(-1)}, "TypeError"},
		{"int", []any{"7"}, "TypeError"},
		{"int", []any{nil}, "TypeError"},
		{"int", nil, "TypeError"},
		{"int", []any{int64(1), int64(2)}, "TypeError"},
		{"ints", []any{[]any{int64(1), "x"}}, "TypeError"},
		{"variadic", nil, "TypeError"},
		{"err", nil, "Error"},
		{"missing", nil, "NameError"},
	}
	for _, c := range bad {
		_, err := r.Call(context.Background(), c.fn, c.args)
		if err == nil {
			t.Errorf("%s(%v) succeeded", c.fn, c.args)
			continue
		}
		if ename, _, _ := describe(err, false); ename != c.ename {
			t.Errorf("%s(%v): %v is %s, want %s", c.fn, c.args, err, ename, c.ename)
		}
	}
}

func TestCallRecoversPanics(t *testing.T) {
	r := NewRegistry()
	r.Register("boom", func(xs []int) int { return xs[5] })
	_, err := r.Call(context.Background(), "boom", []any{[]int64{1}})
	ename, evalue, tb := describe(err, false)
	if ename != interp.NamePanic || !strings.Contains(evalue, "index out of range") || len(tb) < 3 {
		t.Errorf("panic became %s: %s (%d traceback lines)", ename, evalue, len(tb))
	}
}
