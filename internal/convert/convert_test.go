package convert

import (
	"math"
	"math/big"
	"reflect"
	"strings"
	"testing"
)

type celsius float64

func tt[T any]() reflect.Type { return reflect.TypeFor[T]() }

func ptr[T any](v T) *T { return &v }

// fails marks a case that must be refused.
type fails struct{}

// TestRules pins each rule of the package doc with cases that pass and
// cases that must fail.
func TestRules(t *testing.T) {
	var nilSlice []float64
	big70 := new(big.Int).Lsh(big.NewInt(1), 70)
	for _, tc := range []struct {
		name string
		v    any
		to   reflect.Type
		want any
	}{
		{"nil to slice", nil, tt[[]int](), []int(nil)},
		{"nil to pointer", nil, tt[*int](), (*int)(nil)},
		{"nil to interface", nil, tt[any](), nil},
		{"nil to int", nil, tt[int](), fails{}},
		{"assignable", "x", tt[string](), "x"},
		{"int to float64", 3, tt[float64](), 3.0},
		{"float64 to int exact", 4.0, tt[int](), 4},
		{"float64 to int inexact", 2.5, tt[int](), fails{}},
		{"int to int8 overflow", 300, tt[int8](), fails{}},
		{"negative to uint", -1, tt[uint](), fails{}},
		{"2^63 as float to int64", math.Pow(2, 63), tt[int64](), fails{}},
		{"-2^63 as float to int64", -math.Pow(2, 63), tt[int64](), int64(math.MinInt64)},
		{"uint64 max to int64", uint64(math.MaxUint64), tt[int64](), fails{}},
		{"float64 to float32 overflow", 1e300, tt[float32](), fails{}},
		{"big.Int in range", big.NewInt(7), tt[int](), 7},
		{"big.Int beyond int64", big70, tt[int64](), fails{}},
		{"big.Int beyond int64 to float64", big70, tt[float64](), math.Pow(2, 70)},
		{"named scalar", 21.5, tt[celsius](), celsius(21.5)},
		{"string to bytes", "ab", tt[[]byte](), []byte("ab")},
		{"bytes to string", []byte("ab"), tt[string](), "ab"},
		{"[]any to []float64", []any{1, 2.5}, tt[[]float64](), []float64{1, 2.5}},
		{"[]any element of another type", []any{1, "x"}, tt[[]float64](), fails{}},
		{"[]int64 to []int", []int64{1, 2}, tt[[]int](), []int{1, 2}},
		{"nil slice stays nil", nilSlice, tt[[]int](), []int(nil)},
		{"slice to array", []any{1, 2}, tt[[2]int](), [2]int{1, 2}},
		{"slice to array of another length", []any{1}, tt[[2]int](), fails{}},
		{"map values", map[string]any{"a": 1}, tt[map[string]float64](), map[string]float64{"a": 1}},
		{"map[any]any keys", map[any]any{1: "x"}, tt[map[int]string](), map[int]string{1: "x"}},
		{"value to pointer", 5, tt[*float64](), ptr(5.0)},
		{"pointer to value", ptr(5), tt[float64](), 5.0},
		{"struct to string", struct{ X int }{1}, tt[string](), fails{}},
	} {
		got, err := To(tc.v, tc.to)
		if _, bad := tc.want.(fails); bad {
			if err == nil {
				t.Errorf("%s: converted to %#v, want an error", tc.name, got.Interface())
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got.Type() != tc.to || !reflect.DeepEqual(got.Interface(), tc.want) {
			t.Errorf("%s: got %#v (%s), want %#v", tc.name, got.Interface(), got.Type(), tc.want)
		}
	}
}

// TestErrorsNameThePlace: a failure deep inside names the element or key.
func TestErrorsNameThePlace(t *testing.T) {
	_, err := To(map[string]any{"k": []any{1, 2.5}}, tt[map[string][]int]())
	if err == nil || !strings.Contains(err.Error(), "value for k") || !strings.Contains(err.Error(), "element 1") {
		t.Errorf("error %v does not name the key and element", err)
	}
}

func TestInto(t *testing.T) {
	if v, err := Into[[]float64]([]any{1, 2}); err != nil || !reflect.DeepEqual(v, []float64{1, 2}) {
		t.Errorf("Into: %v, %v", v, err)
	}
	if _, err := Into[int]("x"); err == nil {
		t.Error("Into[int](\"x\") succeeded")
	}
}
