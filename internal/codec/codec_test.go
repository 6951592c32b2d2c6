package codec

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"gonum.org/v1/gonum/mat"
)

type point struct {
	X, Y float64
	Tag  string
	When time.Time
}

type vec []float64

type celsius float64

// roundTrip encodes v and decodes it back into any.
func roundTrip(t *testing.T, v any) (any, [][]byte) {
	t.Helper()
	frames, err := Encode(v)
	if err != nil {
		t.Fatalf("Encode(%T): %v", v, err)
	}
	got, err := Decode(frames)
	if err != nil {
		t.Fatalf("Decode(%T): %v", v, err)
	}
	return got, frames
}

func big(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = float64(i) * 0.5
	}
	return s
}

func TestRoundTripKeepsGoTypes(t *testing.T) {
	when := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("X", 3600))
	cases := []any{
		nil, true, false,
		int(-7), int8(-8), int16(-16), int32(-32), int64(math.MinInt64),
		uint(7), uint8(8), uint16(16), uint32(32), uint64(math.MaxUint64),
		float32(1.25), math.Pi, math.Inf(-1), complex64(1 + 2i), complex(3.5, -4),
		"", "héllo",
		[]byte{}, []byte("raw"), []float64{1, 2.5}, []float32{1.5}, []int64{-1, 2}, []int32{3}, []int{4, -5},
		[]int16{6}, []int8{-7}, []uint64{8}, []uint32{9}, []uint16{10}, []uint{11}, []complex128{1i}, []complex64{2i},
		[]float64(nil), []float64{}, []string{"a", "b"}, []string{}, []string(nil),
		big(1000), // frame of its own
		[]any{1, "x", nil, []float64{1}, big(300), map[string]any{"k": int8(1)}},
		[]any{}, []any(nil),
		map[string]any{"a": 1.0, "b": []any{"c"}, "d": big(2000), "m": mat.NewDense(1, 1, []float64{3})},
		map[string]any{}, map[string]any(nil),
		mat.NewDense(2, 3, []float64{1, 2, 3, 4, 5, 6}), mat.NewVecDense(3, []float64{7, 8, 9}),
		*mat.NewDense(1, 2, []float64{1, 2}), *mat.NewVecDense(1, []float64{1}),
		&mat.Dense{}, &mat.VecDense{}, (*mat.Dense)(nil), (*mat.VecDense)(nil),
		when, 90 * time.Second,
	}
	for _, v := range cases {
		got, _ := roundTrip(t, v)
		if reflect.TypeOf(got) != reflect.TypeOf(v) {
			t.Errorf("%T came back as %T", v, got)
			continue
		}
		switch want := v.(type) {
		case time.Time:
			if g := got.(time.Time); !g.Equal(want) || g.Nanosecond() != want.Nanosecond() {
				t.Errorf("time %v came back as %v", want, g)
			}
			_, off := got.(time.Time).Zone()
			if off != 3600 {
				t.Errorf("zone offset %d lost", off)
			}
		case float64:
			if !(got == want || (math.IsNaN(want) && math.IsNaN(got.(float64)))) {
				t.Errorf("%v came back as %v", want, got)
			}
		default:
			if !reflect.DeepEqual(got, v) {
				t.Errorf("%#v came back as %#v", v, got)
			}
		}
	}
}

func TestErrorTravelsAsMessage(t *testing.T) {
	got, _ := roundTrip(t, errors.New("disk full"))
	err, ok := got.(error)
	if !ok || err.Error() != "disk full" {
		t.Fatalf("got %#v", got)
	}
	frames, _ := Encode(errors.New("bad"))
	var s string
	if err := DecodeInto(frames, &s); err != nil || s != "bad" {
		t.Errorf("into string: %q, %v", s, err)
	}
	var e error
	if err := DecodeInto(frames, &e); err != nil || e.Error() != "bad" {
		t.Errorf("into error: %v, %v", e, err)
	}
	var nilErr *strings.Builder // not an error; a typed nil pointer
	if got, _ := roundTrip(t, nilErr); got != nil {
		t.Errorf("typed nil pointer came back as %#v", got)
	}
}

func TestStructsAndOtherMapsGoThroughCBOR(t *testing.T) {
	p := point{1, 2, "t", time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)}
	frames, err := Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	var back point
	if err := DecodeInto(frames, &back); err != nil || !reflect.DeepEqual(back, p) {
		t.Errorf("DecodeInto struct: %+v, %v", back, err)
	}
	anyv, err := Decode(frames)
	m, ok := anyv.(map[string]any)
	if err != nil || !ok || m["Tag"] != "t" || m["X"] != 1.0 {
		t.Errorf("Decode struct: %#v, %v", anyv, err)
	}
	var pp *point
	if err := DecodeInto(frames, &pp); err != nil || pp == nil || pp.Tag != "t" {
		t.Errorf("DecodeInto pointer: %v, %v", pp, err)
	}
	got, _ := roundTrip(t, map[int]string{1: "one"})
	if mm, ok := got.(map[any]any); !ok || mm[uint64(1)] != "one" {
		t.Errorf("map[int]string came back as %#v", got)
	}
	got, _ = roundTrip(t, [][]float64{{1}, {2, 3}})
	if !reflect.DeepEqual(got, []any{[]any{1.0}, []any{2.0, 3.0}}) {
		t.Errorf("[][]float64 came back as %#v", got)
	}
	frames, _ = Encode([][]float64{{1}, {2, 3}})
	var nested [][]float64
	if err := DecodeInto(frames, &nested); err != nil || !reflect.DeepEqual(nested, [][]float64{{1}, {2, 3}}) {
		t.Errorf("DecodeInto [][]float64: %v, %v", nested, err)
	}
}

func TestDecodeIntoConverts(t *testing.T) {
	enc := func(v any) [][]byte {
		f, err := Encode(v)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	var i64 int64
	if err := DecodeInto(enc(42), &i64); err != nil || i64 != 42 {
		t.Errorf("int into int64: %v %v", i64, err)
	}
	var i8 int8
	if err := DecodeInto(enc(300), &i8); err == nil {
		t.Errorf("300 fitted in an int8: %v", i8)
	}
	var f float64
	if err := DecodeInto(enc(3), &f); err != nil || f != 3 {
		t.Errorf("int into float64: %v %v", f, err)
	}
	var n int
	if err := DecodeInto(enc(1.5), &n); err == nil {
		t.Errorf("1.5 fitted in an int: %v", n)
	}
	var v vec
	if err := DecodeInto(enc(vec{1, 2}), &v); err != nil || !reflect.DeepEqual(v, vec{1, 2}) {
		t.Errorf("named slice: %v %v", v, err)
	}
	var c celsius
	if err := DecodeInto(enc(celsius(21.5)), &c); err != nil || c != 21.5 {
		t.Errorf("named float: %v %v", c, err)
	}
	var fs []float64
	if err := DecodeInto(enc([]any{1.0, 2}), &fs); err != nil || !reflect.DeepEqual(fs, []float64{1, 2}) {
		t.Errorf("[]any into []float64: %v %v", fs, err)
	}
	if err := DecodeInto(enc([]int64{5, 6}), &fs); err != nil || !reflect.DeepEqual(fs, []float64{5, 6}) {
		t.Errorf("[]int64 into []float64: %v %v", fs, err)
	}
	var p point
	if err := DecodeInto(enc(map[string]any{"X": 1.5, "Tag": "m"}), &p); err != nil || p.X != 1.5 || p.Tag != "m" {
		t.Errorf("map into struct: %+v %v", p, err)
	}
	var d mat.Dense
	if err := DecodeInto(enc(mat.NewDense(1, 2, []float64{1, 2})), &d); err != nil || d.At(0, 1) != 2 {
		t.Errorf("*mat.Dense into mat.Dense: %v", err)
	}
	var dp *mat.Dense
	if err := DecodeInto(enc(*mat.NewDense(1, 1, []float64{4})), &dp); err != nil || dp.At(0, 0) != 4 {
		t.Errorf("mat.Dense into *mat.Dense: %v", err)
	}
	var m mat.Matrix
	if err := DecodeInto(enc(mat.NewVecDense(2, []float64{1, 2})), &m); err != nil || m.At(1, 0) != 2 {
		t.Errorf("into mat.Matrix: %v", err)
	}
	var a any
	if err := DecodeInto(enc([]int32{1}), &a); err != nil || !reflect.DeepEqual(a, []int32{1}) {
		t.Errorf("into any: %#v %v", a, err)
	}
	var s string
	if err := DecodeInto(enc(mat.NewDense(1, 1, nil)), &s); err == nil {
		t.Error("a matrix decoded into a string")
	}
	if err := DecodeInto(enc(1), s); err == nil {
		t.Error("DecodeInto accepted a non-pointer")
	}
}

func TestLargeDataUsesFramesAndAliases(t *testing.T) {
	data := big(100_000)
	frames, err := Encode(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 2 || len(frames[1]) != 8*len(data) {
		t.Fatalf("%d frames, want envelope + one raw frame of %d bytes", len(frames), 8*len(data))
	}
	if unsafe.SliceData(frames[1]) != (*byte)(unsafe.Pointer(&data[0])) {
		t.Error("Encode copied the slice instead of sending its memory")
	}
	if len(frames[0]) > 64 {
		t.Errorf("envelope of %d bytes for one slice", len(frames[0]))
	}
	got, err := Decode(frames)
	if err != nil {
		t.Fatal(err)
	}
	back := got.([]float64)
	if !reflect.DeepEqual(back, data) {
		t.Fatal("data changed")
	}
	if unsafe.Pointer(&back[0]) != unsafe.Pointer(&frames[1][0]) {
		t.Error("aligned frame was copied on decode")
	}

	// A misaligned frame is copied, and decodes the same.
	buf := make([]byte, len(frames[1])+1)
	copy(buf[1:], frames[1])
	got, err = Decode([][]byte{frames[0], buf[1:]})
	if err != nil {
		t.Fatal(err)
	}
	back = got.([]float64)
	if !reflect.DeepEqual(back, data) || uintptr(unsafe.Pointer(&back[0]))%8 != 0 {
		t.Error("misaligned frame not decoded into an aligned copy")
	}

	// A strided matrix view is compacted.
	full := mat.NewDense(4, 4, big(16))
	view := full.Slice(1, 3, 1, 3).(*mat.Dense)
	got, _ = roundTrip(t, view)
	if !mat.Equal(got.(*mat.Dense), view) {
		t.Errorf("view %v came back as %v", mat.Formatted(view), mat.Formatted(got.(mat.Matrix)))
	}
	col := full.ColView(2).(*mat.VecDense)
	got, _ = roundTrip(t, col)
	if !mat.Equal(got.(*mat.VecDense), col) {
		t.Errorf("column view came back as %v", got)
	}
}

func TestEncodeManyDecodeMany(t *testing.T) {
	frames, counts, err := EncodeMany(1, big(500), "s", map[string]any{"a": big(600)})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(counts, []int{1, 2, 1, 2}) {
		t.Errorf("counts %v", counts)
	}
	vs, err := DecodeMany(frames, counts)
	if err != nil {
		t.Fatal(err)
	}
	if vs[0] != 1 || len(vs[1].([]float64)) != 500 || vs[2] != "s" || len(vs[3].(map[string]any)["a"].([]float64)) != 600 {
		t.Errorf("got %v", vs)
	}
	if _, err := DecodeMany(frames, []int{1, 2, 1, 1}); err == nil {
		t.Error("counts that do not cover the frames were accepted")
	}
	if _, err := DecodeMany(frames, []int{2, 1, 1, 2}); err == nil {
		t.Error("counts that split values wrongly were accepted")
	}
}

func TestRejectsBadInput(t *testing.T) {
	good, _ := Encode(big(1000))
	bad := map[string][][]byte{
		"no frames":        nil,
		"garbage":          {[]byte("not cbor")},
		"truncated head":   {good[0][:len(good[0])-1], good[1]},
		"missing frame":    {good[0]},
		"truncated frame":  {good[0], good[1][:len(good[1])-8]},
		"odd frame":        {good[0], good[1][:len(good[1])-3]},
		"extra frame":      {good[0], good[1], []byte{1}},
		"unsupported type": nil,
	}
	delete(bad, "unsupported type")
	for name, frames := range bad {
		if _, err := Decode(frames); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if _, err := Encode(make(chan int)); err == nil {
		t.Error("encoded a channel")
	}
	if _, err := Encode(map[string]any{"f": func() {}}); err == nil {
		t.Error("encoded a func inside a map")
	}
}

// FuzzDecode feeds Decode corrupted envelopes and frames: it must return an
// error or a value, never panic. Run longer with
// go test -fuzz FuzzDecode -fuzztime 20s ./internal/codec/
func FuzzDecode(f *testing.F) {
	seeds := []any{
		nil, 1, "s", big(10), big(200), []any{1, []float64{1}}, map[string]any{"a": []int{1}},
		mat.NewDense(2, 2, big(4)), mat.NewVecDense(2, big(2)), time.Unix(0, 1), point{X: 1},
		[]string{"x"}, errors.New("e"), complex(1, 2), *mat.NewDense(1, 1, nil),
	}
	for _, s := range seeds {
		frames, err := Encode(s)
		if err != nil {
			f.Fatal(err)
		}
		var extra []byte
		if len(frames) > 1 {
			extra = frames[1]
		}
		f.Add(frames[0], extra, len(frames) > 1)
	}
	f.Fuzz(func(t *testing.T, head, extra []byte, withExtra bool) {
		frames := [][]byte{head}
		if withExtra {
			frames = append(frames, extra)
		}
		v, err := Decode(frames)
		if err != nil {
			return
		}
		// Whatever decoded must encode again.
		if _, err := Encode(v); err != nil {
			t.Errorf("decoded %T does not re-encode: %v", v, err)
		}
		var target struct{ A []float64 }
		_ = DecodeInto(frames, &target)
	})
}

// BenchmarkMemcpy80MB is the baseline: copying 1e7 float64.
func BenchmarkMemcpy80MB(b *testing.B) {
	src := big(10_000_000)
	dst := make([]float64, len(src))
	b.SetBytes(int64(8 * len(src)))
	for b.Loop() {
		copy(dst, src)
	}
}

// BenchmarkEncode80MB encodes 1e7 float64: the data is not copied.
func BenchmarkEncode80MB(b *testing.B) {
	src := big(10_000_000)
	b.SetBytes(int64(8 * len(src)))
	for b.Loop() {
		if _, err := Encode(src); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecode80MB decodes 1e7 float64 from an aligned frame (aliased).
func BenchmarkDecode80MB(b *testing.B) {
	frames, _ := Encode(big(10_000_000))
	b.SetBytes(int64(len(frames[1])))
	for b.Loop() {
		if _, err := Decode(frames); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeUnaligned80MB decodes from a misaligned frame: one copy,
// which is the worst case and should run at memcpy speed.
func BenchmarkDecodeUnaligned80MB(b *testing.B) {
	frames, _ := Encode(big(10_000_000))
	buf := make([]byte, len(frames[1])+1)
	copy(buf[1:], frames[1])
	frames[1] = buf[1:]
	b.SetBytes(int64(len(frames[1])))
	for b.Loop() {
		if _, err := Decode(frames); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeMixed is a typical apply_request: a few small values and a
// medium array in a map.
func BenchmarkEncodeMixed(b *testing.B) {
	v := map[string]any{"n": 10, "name": "run", "x": big(10_000), "opts": []any{true, 1.5}}
	for b.Loop() {
		if _, err := Encode(v); err != nil {
			b.Fatal(err)
		}
	}
}
