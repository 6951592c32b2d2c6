package pickle

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/ipp-hpc/ipp/internal/testutil"
)

// pyCase is one line of testdata/cases.py gen.
type pyCase struct {
	Name   string   `json:"name"`
	Proto  int      `json:"proto"`
	Frames []string `json:"frames"`
}

func bigInt(s string) *big.Int {
	b, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic(s)
	}
	return b
}

// want is the Go value each case of cases.py decodes to (package doc).
var want = map[string]any{
	"none":       nil,
	"true":       true,
	"false":      false,
	"int_small":  5,
	"int_neg":    -7,
	"int_16":     40000,
	"int_32":     -2_000_000_000,
	"int_64":     1 << 62,
	"int_min64":  math.MinInt64,
	"int_big":    bigInt("1180591620717411303424"),
	"int_bigneg": bigInt("-1208925819614629174706173"),
	"float":      2.5,
	"float_neg":  -1e300,
	"complex":    complex(1.5, -2),
	"str":        "héllo",
	"str_long":   strings.Repeat("x", 300),
	"bytes":      []byte("\x00\x01ab"),
	"bytes_long": bytes.Repeat(func() []byte {
		b := make([]byte, 256)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}(), 5),
	"list":           []any{1, "a", nil, 2.5},
	"list_empty":     []any{},
	"range":          []any{2, 5, 8},
	"tuple":          Tuple{1, "two", 3.0},
	"tuple_big":      Tuple{0, 1, 2, 3, 4},
	"dict":           map[string]any{"a": 1, "b": []any{1, 2}, "c": map[string]any{"d": nil}},
	"dict_intkeys":   map[any]any{1: "one", 2: "two"},
	"nested":         map[string]any{"l": []any{[]any{1, 2}, Tuple{3, 4}}, "t": Tuple{map[string]any{"x": 1}}},
	"f64":            seq(10, func(i int) float64 { return float64(i) }),
	"f64_big":        seq(300, func(i int) float64 { return float64(i) }),
	"i64":            seq(5, func(i int) int64 { return int64(i) }),
	"i32_big":        seq(300, func(i int) int32 { return int32(i) }),
	"f32":            []float32{1.5, -2},
	"i16":            []int16{1, -2, 3},
	"i8":             []int8{-1, 2},
	"u8":             Array{Shape: []int{3}, Data: []uint8{1, 2, 3}},
	"u64":            []uint64{1<<63 + 1},
	"bool_arr":       []bool{true, false, true},
	"c128":           []complex128{1 + 2i, 3 - 4i},
	"mat":            mat.NewDense(2, 3, []float64{0, 1, 2, 3, 4, 5}),
	"mat_big":        mat.NewDense(20, 20, seq(400, func(i int) float64 { return float64(i) })),
	"mat_fortran":    mat.NewDense(2, 3, []float64{0, 1, 2, 3, 4, 5}),
	"i32_3d":         Array{Shape: []int{2, 3, 4}, Data: seq(24, func(i int) int32 { return int32(i) })},
	"empty_arr":      []float64{},
	"np_f64":         2.5,
	"np_i32":         int32(-3),
	"arrays_in_list": []any{seq(200, func(i int) float64 { return float64(i) }), []int32{0, 1, 2}, "x"},
	"arrays_in_dict": map[string]any{"a": seq(200, func(i int) float64 { return float64(i) }), "b": seq(300, func(i int) int32 { return int32(i) })},
	"array_nested":   map[string]any{"inner": map[string]any{"a": []float64{0, 1, 2, 3}}},
}

// unsupportedType is the Python type each unsupported case must name.
var unsupportedType = map[string]string{
	"unsupported_set":        "set",
	"unsupported_frozenset":  "frozenset",
	"unsupported_datetime":   "datetime.datetime",
	"unsupported_object_arr": "numpy.ndarray",
	"unsupported_in_list":    "set",
	"unsupported_function":   "len",
	"unsupported_lambda":     "function __main__.<lambda>",
}

func seq[T any](n int, f func(int) T) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

func pythonCases(t *testing.T) []pyCase {
	t.Helper()
	py := testutil.NeedPython(t, "ipyparallel", "numpy")
	out, err := exec.Command(py, "testdata/cases.py", "gen").Output()
	if err != nil {
		t.Fatalf("cases.py gen: %v", err)
	}
	var cases []pyCase
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var c pyCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, c)
	}
	if len(cases) < 4*len(want) {
		t.Fatalf("cases.py gave %d cases, want at least %d", len(cases), 4*len(want))
	}
	return cases
}

func framesOf(t *testing.T, c pyCase) [][]byte {
	t.Helper()
	var fs [][]byte
	for _, s := range c.Frames {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, b)
	}
	return fs
}

// TestDecodePythonPickles decodes what Python's serialize_object makes of
// every supported value under protocols 2 to 5, and checks that every
// unsupported one fails naming its Python type.
func TestDecodePythonPickles(t *testing.T) {
	for _, c := range pythonCases(t) {
		frames := framesOf(t, c)
		got, used, err := DecodeObject(frames)
		if typ, ok := unsupportedType[c.Name]; ok {
			var ue *UnsupportedError
			if !errors.As(err, &ue) || ue.Type != typ || ue.Go {
				t.Errorf("%s (protocol %d): got %v, %v; want an UnsupportedError naming %s", c.Name, c.Proto, got, err, typ)
			}
			continue
		}
		w, ok := want[c.Name]
		if !ok {
			t.Fatalf("no expected value for case %s", c.Name)
		}
		if err != nil {
			t.Errorf("%s (protocol %d): %v", c.Name, c.Proto, err)
			continue
		}
		if used != len(frames) {
			t.Errorf("%s (protocol %d): used %d of %d frames", c.Name, c.Proto, used, len(frames))
		}
		if !equal(got, w) {
			t.Errorf("%s (protocol %d): got %#v, want %#v", c.Name, c.Proto, got, w)
		}
	}
}

func equal(a, b any) bool {
	if da, ok := a.(*mat.Dense); ok {
		db, ok := b.(*mat.Dense)
		return ok && mat.Equal(da, db)
	}
	if ba, ok := a.(*big.Int); ok {
		bb, ok := b.(*big.Int)
		return ok && ba.Cmp(bb) == 0
	}
	ra, rb := reflect.ValueOf(a), reflect.ValueOf(b)
	if a == nil || b == nil || ra.Type() != rb.Type() {
		return a == nil && b == nil
	}
	switch ra.Kind() {
	case reflect.Slice:
		if ra.Len() != rb.Len() {
			return false
		}
		for i := 0; i < ra.Len(); i++ {
			if !equal(ra.Index(i).Interface(), rb.Index(i).Interface()) {
				return false
			}
		}
		return true
	case reflect.Map:
		if ra.Len() != rb.Len() {
			return false
		}
		for _, k := range ra.MapKeys() {
			vb := rb.MapIndex(k)
			if !vb.IsValid() || !equal(ra.MapIndex(k).Interface(), vb.Interface()) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// TestEncodeForPython encodes every expected value with EncodeObject and
// has Python's deserialize_object rebuild it: it must equal the original
// Python value (type, dtype and shape included).
func TestEncodeForPython(t *testing.T) {
	py := testutil.NeedPython(t, "ipyparallel", "numpy")
	var in bytes.Buffer
	for name, v := range want {
		frames, err := EncodeObject(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var enc []string
		for _, f := range frames {
			enc = append(enc, base64.StdEncoding.EncodeToString(f))
		}
		line, _ := json.Marshal(map[string]any{"name": name, "frames": enc})
		in.Write(append(line, '\n'))
	}
	cmd := exec.Command(py, "testdata/cases.py", "check")
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cases.py check: %v", err)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r struct {
			Name string
			OK   bool
			Got  string
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%v: %q", err, line)
		}
		seen++
		if !r.OK {
			t.Errorf("%s: Python rebuilt %s", r.Name, r.Got)
		}
	}
	if seen != len(want) {
		t.Errorf("Python checked %d values, want %d", seen, len(want))
	}
}

// TestEncodeFrames checks the frame layout Python's deserialize_object
// relies on: large top-level arrays (and those of a small top-level list
// or dict) get a frame each, in sorted key order; nested ones stay inline.
func TestEncodeFrames(t *testing.T) {
	big1 := make([]float64, 200)
	big2 := make([]int32, 300)
	for _, tc := range []struct {
		v      any
		frames int
	}{
		{big1, 2},
		{[]float64{1, 2}, 1},
		{map[string]any{"b": big2, "a": big1}, 3},
		{[]any{big1, "x", big2}, 3},
		{map[string]any{"x": map[string]any{"a": big1}}, 1},
		{make([]any, 64), 1},
	} {
		frames, err := EncodeObject(tc.v)
		if err != nil {
			t.Fatal(err)
		}
		if len(frames) != tc.frames {
			t.Errorf("%T: %d frames, want %d", tc.v, len(frames), tc.frames)
		}
		back, used, err := DecodeObject(frames)
		if err != nil || used != len(frames) {
			t.Fatalf("%T: decode: %v (used %d of %d)", tc.v, err, used, len(frames))
		}
		_ = back
	}
	frames, _ := EncodeObject(map[string]any{"b": big2, "a": big1})
	if len(frames[1]) != 8*200 || len(frames[2]) != 4*300 {
		t.Errorf("frames not in sorted key order: %d, %d bytes", len(frames[1]), len(frames[2]))
	}
}

// TestEncodeScalarsByteExact pins the encoder's bytes for scalars against
// the pickle opcodes of spec §5.2 (the same Python's pickle emits).
func TestEncodeScalarsByteExact(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{nil, "\x80\x04N."},
		{true, "\x80\x04\x88."},
		{5, "\x80\x04K\x05."},
		{300, "\x80\x04M\x2c\x01."},
		{-1, "\x80\x04J\xff\xff\xff\xff."},
		{int64(1) << 40, "\x80\x04\x8a\x06\x00\x00\x00\x00\x00\x01."},
		{-int64(1) << 40, "\x80\x04\x8a\x06\x00\x00\x00\x00\x00\xff."},
		{uint64(math.MaxUint64), "\x80\x04\x8a\x09\xff\xff\xff\xff\xff\xff\xff\xff\x00."},
		{2.5, "\x80\x04G\x40\x04\x00\x00\x00\x00\x00\x00."},
		{"ab", "\x80\x04\x8c\x02ab."},
		{[]byte("ab"), "\x80\x04C\x02ab."},
		{[]any{1}, "\x80\x04](K\x01e."},
		{map[string]any{"a": 1}, "\x80\x04}(\x8c\x01aK\x01u."},
		{Tuple{1, 2}, "\x80\x04K\x01K\x02\x86."},
	} {
		got, err := Pickle(tc.v)
		if err != nil || string(got) != tc.want {
			t.Errorf("Pickle(%#v) = %q, %v; want %q", tc.v, got, err, tc.want)
		}
	}
}

// TestEncodeUnsupported names the Go type that cannot go to Python.
func TestEncodeUnsupported(t *testing.T) {
	type point struct{ X int }
	for _, v := range []any{point{1}, []any{1, make(chan int)}, map[string]any{"f": func() {}}} {
		_, err := EncodeObject(v)
		var ue *UnsupportedError
		if !errors.As(err, &ue) || !ue.Go {
			t.Errorf("EncodeObject(%T) = %v, want an UnsupportedError for a Go type", v, err)
		}
	}
	_, err := EncodeObject(point{1})
	if err == nil || !strings.Contains(err.Error(), "pickle.point") {
		t.Errorf("error does not name the type: %v", err)
	}
}

// TestDecodeMalformed feeds truncated and corrupted pickles: errors, never
// panics.
func TestDecodeMalformed(t *testing.T) {
	good, err := EncodeObject(map[string]any{"a": []any{1, 2.5, "x"}, "b": seq(300, func(i int) float64 { return float64(i) })})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(good[0]); i++ {
		_, _, _ = DecodeObject([][]byte{good[0][:i]})
		bad := bytes.Clone(good[0])
		bad[i] ^= 0xff
		_, _, _ = DecodeObject([][]byte{bad, good[1]})
	}
	if _, _, err := DecodeObject(good[:1]); err == nil {
		t.Error("a CannedArray without its frame decoded")
	}
	for _, b := range [][]byte{nil, {0x80}, {0x80, 4, 0x8a, 0}, {0x80, 4, ']', 'e', '.'}} {
		if _, _, err := DecodeObject([][]byte{b}); err == nil && len(b) < 4 {
			t.Errorf("%q decoded", b)
		}
	}
}

// TestDecodeApply reads what the Python client sends for push, pull,
// apply(Reference(name), ...) and a lambda: the function is identified
// by module and name, the arguments decoded with their frames.
func TestDecodeApply(t *testing.T) {
	py := testutil.NeedPython(t, "ipyparallel", "numpy")
	out, err := exec.Command(py, "testdata/cases.py", "apply").Output()
	if err != nil {
		t.Fatalf("cases.py apply: %v", err)
	}
	got := map[string]*Apply{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var c pyCase
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatal(err)
		}
		a, err := DecodeApply(framesOf(t, c))
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		got[c.Name] = a
	}
	arr300 := seq(300, func(i int) float64 { return float64(i) })
	if a := got["push"]; a.Func != (Func{Kind: FuncCanned, Module: "ipyparallel.util", Name: "_push"}) ||
		len(a.Args) != 0 || !reflect.DeepEqual(a.KwKeys, []string{"a", "arr"}) || a.Kwargs["a"] != 5 || !equal(a.Kwargs["arr"], arr300) {
		t.Errorf("push: %+v", a)
	}
	if a := got["pull"]; a.Func.Name != "_pull" || !equal(a.Args, []any{[]any{"a", "b"}}) {
		t.Errorf("pull: %+v", a)
	}
	if a := got["reference"]; a.Func != (Func{Kind: FuncReference, Name: "add"}) || len(a.Args) != 2 || a.Args[0] != 1 ||
		!equal(a.Args[1], seq(200, func(i int) float64 { return float64(i) })) || a.Kwargs["k"] != "v" {
		t.Errorf("reference: %+v", a)
	}
	if a := got["lambda"]; a.Func.Kind != FuncCanned || a.Func.Name != "<lambda>" || a.Func.Module != "__main__" {
		t.Errorf("lambda: %+v", a.Func)
	}
	if a := got["builtin"]; a.Func != (Func{Kind: FuncGlobal, Module: "builtins", Name: "len"}) {
		t.Errorf("builtin: %+v", a.Func)
	}
	// Cut anywhere, the push message fails cleanly.
	var push pyCase
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.Contains(line, `"push"`) {
			_ = json.Unmarshal([]byte(line), &push)
		}
	}
	frames := framesOf(t, push)
	for n := 0; n < len(frames); n++ {
		if _, err := DecodeApply(frames[:n]); err == nil {
			t.Errorf("push cut to %d of %d frames decoded", n, len(frames))
		}
	}
}

// TestDecodeHugeLengths: a few bytes declaring a 4 GiB string or an 8 EiB
// byte array are refused before anything is allocated.
func TestDecodeHugeLengths(t *testing.T) {
	for _, b := range []string{
		"\x80\x04X\xff\xff\xff\xffab.",
		"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7fab.",
		"\x80\x04\x96\xff\xff\xff\xff\xff\xff\xff\x7fab.",
		"\x80\x04\x95\xff\xff\xff\xff\x00\x00\x00\x00N.",
		"\x80\x04\x8b\xff\xff\xff\x7fab.",
	} {
		if _, err := Unpickle([]byte(b)); err == nil || !strings.Contains(err.Error(), "declares") {
			t.Errorf("%q: %v, want a declared-length error", b, err)
		}
	}
}

// FuzzUnpickle: any bytes decode or fail, never panic nor hang.
func FuzzUnpickle(f *testing.F) {
	for _, v := range []any{nil, 1, "x", []any{1, Tuple{2.5, "y"}}, map[string]any{"a": []float64{1, 2}}, Array{Shape: []int{2, 1}, Data: []int32{1, 2}}} {
		b, err := Pickle(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Unpickle(b)
		_, _, _ = DecodeObject([][]byte{b, b})
		_, _ = DecodeApply([][]byte{b, b, b})
	})
}
