// Package pickle reads and writes the subset of Python pickles that
// carries plain values between the ipyparallel Python client and Go
// engines: the arguments and results of apply_request/apply_reply in
// ipyparallel's serialize_object layout (spec §5.2), including numpy
// arrays sent as canned buffers.
//
// # Library
//
// Reading uses github.com/nlpodyssey/gopickle, chosen over
// github.com/kisielk/og-rek after trying both on real ipyparallel 7.1
// messages: og-rek v1.3.0 (the newest served) stops at opcode NEWOBJ
// (0x81), which protocol 4 uses for every canned object (CannedFunction,
// CannedArray, Reference), so it cannot read a single push; gopickle
// reads protocols 0–5 and lets the caller resolve globals (FindClass), so
// every global becomes an inert placeholder here and nothing is ever
// executed. gopickle has no writer; Encode is our own, for exactly the
// values below, with the opcodes Python itself emits (protocol 4).
//
// # Python to Go (Decode)
//
//	None            nil
//	bool            bool
//	int             int (64-bit), or *big.Int beyond int64
//	float           float64
//	complex         complex128
//	str             string
//	bytes, bytearray []byte
//	list            []any
//	range           []any of int (up to 2^24 items; back to Python as a list)
//	tuple           Tuple (a []any that goes back to Python as a tuple)
//	dict            map[string]any when every key is a str, else
//	                map[any]any (keys must be None, bool, int, float or str)
//	numpy ndarray   1-D: []float64, []float32, []int64, []int32, []int16,
//	                []int8, []uint64, []uint32, []uint16, []uint8, []bool,
//	                []complex128, []complex64 by dtype; 2-D float64:
//	                *mat.Dense; other shapes: Array{Shape, Data}; 0-d: the
//	                element
//	numpy scalar    the Go scalar of its dtype (np.float64 → float64,
//	                np.int32 → int32, np.bool_ → bool)
//	ipyparallel.Reference  Reference{Name} (the engine resolves it)
//
// Anything else (sets, user classes, datetime, structured or object
// arrays, big-endian dtypes) is an *UnsupportedError naming the Python
// type.
//
// # Go to Python (Encode)
//
// The inverse, plus every integer, float and complex kind, []string and
// other slices and maps element by element, *mat.Dense, mat.VecDense and
// Array as numpy arrays, and pointers as what they point to. Numeric
// slices become numpy arrays, so a []float64 round-trips with Python as an
// ndarray and a Python list stays a list. Structs, functions, channels and
// other types are an *UnsupportedError naming the Go type.
//
// Arrays at the top level of a serialized object (the value itself, or an
// item of a top-level list, tuple or dict of fewer than 64 items) larger
// than 1 KiB travel as ipyparallel's CannedArray with the data in a frame
// of its own, without copying; others are pickled inline as
// numpy.ndarray(shape, dtype, buffer). Both are read-only arrays on the
// Python side, as arrays received by ipyparallel always are.
//
// # Robustness
//
// Decode never panics on malformed input (panics inside the library are
// recovered, and FuzzUnpickle exercises this) and checks every length and
// shape before use. Before unpickling, every length-prefixed argument is
// checked against the bytes that remain, since the library allocates a
// declared length before reading it. Nesting is limited to 100 levels.
package pickle
