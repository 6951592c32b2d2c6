// Package codec serialises Go values into the buffers of apply_request and
// apply_reply messages exchanged between the Go client and Go engines. It
// plays the role of ipyparallel's pickle + buffer serialisation, for Go
// types, with large numeric data sent without any per-element encoding.
//
// # Frames
//
// Encode(v) returns frames:
//
//	frame 0    CBOR envelope {1: Version, 2: root node}
//	frame 1..  raw little-endian memory images of numeric data, one per
//	           numeric slice or matrix larger than 1 KiB, in the order the
//	           envelope refers to them
//
// A node is a CBOR map with small integer keys (see node in codec.go):
// Kind (what Go type to rebuild), then depending on the kind the scalar
// value as CBOR (Data), a list of child nodes (Items, and Keys for maps),
// raw data either inline (Bytes, up to 1 KiB) or as a frame index (Frame)
// with its element count (Len), a matrix shape (Dims), and a Nil flag that
// keeps nil slices, maps and pointers nil. Kind numbers are wire format.
//
// Raw data can sit anywhere in the tree, so a map[string]any of arrays
// (a push of several variables) sends each array as its own frame. Inside
// values that go through plain CBOR (structs, maps other than
// map[string]any, slices of slices) numbers are CBOR-encoded instead.
//
// Decode checks that every frame is referenced exactly once, that raw data
// holds exactly Len elements and that matrix shapes match, so a frame list
// cut at the wrong place fails instead of decoding into something else.
//
// # Several values
//
// EncodeMany concatenates the frames of each value and returns the frame
// count of each (at least 1: its envelope); DecodeMany takes the same
// counts. The engine's apply_request carries these counts as arg_frames.
//
// # Types
//
// Exact round trip (Decode gives the same Go type): nil, bool, all int,
// uint, float and complex kinds, string, []string, []any, map[string]any,
// slices of every fixed-size numeric type ([]byte, []float64, []float32,
// []int64, []int32, []int16, []int8, []int, []uint64, ..., []complex128),
// *mat.Dense, mat.Dense, *mat.VecDense, mat.VecDense, time.Time (instant,
// nanoseconds and zone offset; not the zone name nor the monotonic
// reading) and time.Duration. An error travels as its message and comes
// back as an error with that message. Named types (type Vec []float64) come
// back as their underlying type; DecodeInto converts them back.
//
// Anything else goes through plain CBOR (field names as map keys, json
// tags honoured): Decode gives map[string]any / []any / float64 and so on,
// DecodeInto into the original type gives it back. Channels and functions
// cannot be encoded.
//
// # Copies
//
// Encode does not copy numeric data: raw frames are views of the value's
// memory (strided matrix views are compacted first). Keep the value
// unchanged until the frames are sent.
//
// Decode does not copy either when it can: a raw frame whose address is
// aligned for the element type (8 bytes for float64) becomes the backing
// array of the returned slice or matrix, through reflect.SliceAt. Frames
// received from ZeroMQ are fresh Go allocations, which are 8-byte aligned,
// so large arrays arrive without a copy. A misaligned frame (or inline
// data) is copied once. Either way the caller must not reuse the frames'
// memory while the value is in use, and two decodes of the same frames
// share their arrays.
//
// # Byte order
//
// Raw frames are little-endian, which is what the memory image is on every
// supported host (amd64, arm64, ppc64le, riscv64). The byte order is checked
// once at start-up (raw.go); on a big-endian host encoding or decoding raw
// numeric data fails with ErrBigEndian instead of producing garbage.
// []int and []uint travel as 8-byte elements whatever the host's int size.
//
// # Robustness
//
// Decode never panics on malformed input: the envelope goes through the
// CBOR decoder's limits (nesting depth 64), every index, length and shape
// is checked before use, and FuzzDecode exercises this.
package codec
