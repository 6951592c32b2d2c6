package codec

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/fxamacker/cbor/v2"
)

// Version is the envelope format version written by Encode. Decode refuses
// other versions rather than misreading them.
const Version = 1

// kind tags a node of the envelope. The numbers are part of the wire
// format: never renumber, only append.
type kind uint8

const (
	kNil           kind = 0
	kBool          kind = 1
	kInt           kind = 2
	kInt8          kind = 3
	kInt16         kind = 4
	kInt32         kind = 5
	kInt64         kind = 6
	kUint          kind = 7
	kUint8         kind = 8
	kUint16        kind = 9
	kUint32        kind = 10
	kUint64        kind = 11
	kFloat32       kind = 12
	kFloat64       kind = 13
	kComplex64     kind = 14
	kComplex128    kind = 15
	kString        kind = 16
	kStrings       kind = 17 // []string, in the envelope
	kList          kind = 18 // []any, element nodes in Items
	kMap           kind = 19 // map[string]any, Keys and Items
	kTime          kind = 20 // time.Time, MarshalBinary form in Bytes
	kDuration      kind = 21
	kError         kind = 22 // any error, as its message
	kCBOR          kind = 23 // anything else, as plain CBOR in Data
	kDense         kind = 24 // *mat.Dense: raw float64 data, Dims = rows, cols
	kDenseValue    kind = 25 // mat.Dense
	kVecDense      kind = 26 // *mat.VecDense: raw float64 data, Dims = n
	kVecDenseValue kind = 27 // mat.VecDense
	kBytes         kind = 28 // numeric slices from here on are raw
	kFloat64s      kind = 29
	kFloat32s      kind = 30
	kInt64s        kind = 31
	kInt32s        kind = 32
	kInt16s        kind = 33
	kInt8s         kind = 34
	kInts          kind = 35 // []int, 8 bytes per element on the wire
	kUint64s       kind = 36
	kUint32s       kind = 37
	kUint16s       kind = 38
	kUints         kind = 39 // []uint, 8 bytes per element on the wire
	kComplex128s   kind = 40
	kComplex64s    kind = 41
	kindLimit           = 42
)

const (
	// inlineMax is the largest raw data kept inside the envelope; larger
	// data gets a frame of its own (a frame costs more than copying a few
	// hundred bytes).
	inlineMax = 1024
	// maxNestedLevels bounds CBOR nesting, hence the depth of []any and
	// map[string]any values (each level takes two).
	maxNestedLevels = 64
	// maxElements lifts the CBOR decoder's default limit of 131072 array
	// elements, which a []any argument may well exceed.
	maxElements = 1<<31 - 1
)

// envelope is frame 0.
type envelope struct {
	Version int  `cbor:"1,keyasint"`
	Root    node `cbor:"2,keyasint"`
}

// node describes one value. Which fields are set depends on Kind.
type node struct {
	Kind  kind            `cbor:"1,keyasint"`
	Data  cbor.RawMessage `cbor:"2,keyasint,omitempty"` // scalars, []string, kCBOR
	Bytes []byte          `cbor:"3,keyasint,omitempty"` // small raw data, time
	Frame int             `cbor:"4,keyasint,omitempty"` // index of the raw frame, 0 = none
	Len   int             `cbor:"5,keyasint,omitempty"` // element count of raw data
	Dims  []int           `cbor:"6,keyasint,omitempty"` // matrix shape
	Items []node          `cbor:"7,keyasint,omitempty"` // list elements, map values
	Keys  []string        `cbor:"8,keyasint,omitempty"` // map keys, parallel to Items
	Nil   bool            `cbor:"9,keyasint,omitempty"` // nil slice, map or pointer
	Type  string          `cbor:"10,keyasint,omitempty"`
}

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
	// decModeAnyKeys decodes maps whose keys are not all strings.
	decModeAnyKeys cbor.DecMode
)

func init() {
	var err error
	encMode, err = cbor.EncOptions{
		// Keep nanoseconds and the zone offset of times inside structs.
		Time: cbor.TimeRFC3339Nano,
	}.EncMode()
	if err != nil {
		panic(err)
	}
	opts := cbor.DecOptions{
		MaxNestedLevels:  maxNestedLevels,
		MaxArrayElements: maxElements,
		MaxMapPairs:      maxElements,
		DefaultMapType:   reflect.TypeFor[map[string]any](),
	}
	if decMode, err = opts.DecMode(); err != nil {
		panic(err)
	}
	opts.DefaultMapType = nil
	if decModeAnyKeys, err = opts.DecMode(); err != nil {
		panic(err)
	}
}

// ErrBigEndian is returned when raw numeric data would have to cross a
// big-endian host: the raw frames are little-endian memory images.
var ErrBigEndian = errors.New("codec: raw numeric frames need a little-endian host")

// Encode turns v into frames: frame 0 is the CBOR envelope, then one raw
// frame per numeric slice or matrix larger than 1 KiB. Raw frames alias
// v's memory (no copy): do not modify v until the frames are sent.
func Encode(v any) ([][]byte, error) {
	e := encoder{frames: [][]byte{nil}}
	root, err := e.node(v, 0)
	if err != nil {
		return nil, err
	}
	head, err := encMode.Marshal(envelope{Version: Version, Root: root})
	if err != nil {
		return nil, fmt.Errorf("codec: envelope: %w", err)
	}
	e.frames[0] = head
	return e.frames, nil
}

// Decode rebuilds the value Encode was given, with its Go type: []float64
// stays []float64, int stays int, *mat.Dense stays *mat.Dense. Values that
// went through plain CBOR (structs, other maps) come back as map[string]any
// and friends. Large numeric data aliases the frames when they are aligned
// for the element type (see the package doc).
func Decode(frames [][]byte) (any, error) {
	d, root, err := open(frames)
	if err != nil {
		return nil, err
	}
	v, err := d.value(root, 0)
	if err != nil {
		return nil, err
	}
	return v, d.finish()
}

// DecodeInto decodes into *ptr, converting where Go would let it (int into
// int64 without overflow, []any into []T, map[string]any into a struct, a
// CBOR-encoded struct into the same or a compatible struct).
func DecodeInto(frames [][]byte, ptr any) error {
	pv := reflect.ValueOf(ptr)
	if pv.Kind() != reflect.Pointer || pv.IsNil() {
		return fmt.Errorf("codec: DecodeInto needs a non-nil pointer, got %T", ptr)
	}
	d, root, err := open(frames)
	if err != nil {
		return err
	}
	if err := d.into(root, pv.Elem()); err != nil {
		return err
	}
	return d.finish()
}

// EncodeMany encodes each value and concatenates the frames; counts[i] is
// the number of frames of vs[i] (at least 1, its envelope).
func EncodeMany(vs ...any) (frames [][]byte, counts []int, err error) {
	counts = make([]int, len(vs))
	for i, v := range vs {
		f, err := Encode(v)
		if err != nil {
			return nil, nil, fmt.Errorf("codec: value %d: %w", i, err)
		}
		frames = append(frames, f...)
		counts[i] = len(f)
	}
	return frames, counts, nil
}

// DecodeMany undoes EncodeMany.
func DecodeMany(frames [][]byte, counts []int) ([]any, error) {
	total := 0
	for i, c := range counts {
		if c < 1 || c > len(frames) {
			return nil, fmt.Errorf("codec: count %d of value %d is out of range", c, i)
		}
		total += c
	}
	if total != len(frames) {
		return nil, fmt.Errorf("codec: counts add up to %d frames, got %d", total, len(frames))
	}
	out := make([]any, len(counts))
	at := 0
	for i, c := range counts {
		v, err := Decode(frames[at : at+c])
		if err != nil {
			return nil, fmt.Errorf("codec: value %d: %w", i, err)
		}
		out[i] = v
		at += c
	}
	return out, nil
}
