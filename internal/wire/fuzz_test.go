package wire

import (
	"bytes"
	"errors"
	"testing"
)

// fuzzKey signs the fuzz inputs that ask to be signed.
var fuzzKey = []byte("fuzz-key")

// FrameSep separates frames in a fuzz input: 0xff never occurs in JSON or
// in a hex signature, so realistic seeds split where they should.
const frameSep = 0xff

// splitFrames turns a fuzz input into a multipart message.
func splitFrames(data []byte) [][]byte { return bytes.Split(data, []byte{frameSep}) }

// signFrames replaces the signature of a message that has a delimiter and
// enough frames with a valid one, so the fuzzer also reaches decoding.
func signFrames(s *Session, frames [][]byte) {
	for i, f := range frames {
		if string(f) == Delimiter && len(frames)-i-1 >= 5 {
			b := frames[i+1:]
			b[0] = s.Sign(b[1], b[2], b[3], b[4])
			return
		}
	}
}

// FuzzParse feeds arbitrary frame lists to Parse and ParseUnchecked: they
// must never panic, and a message Parse accepts must verify again from its
// parsed fields and be refused as a replay the second time.
func FuzzParse(f *testing.F) {
	f.Add([]byte("<IDS|MSG>\xff\xff{\"msg_id\":\"a\",\"msg_type\":\"x\"}\xff{}\xff{}\xff{}"), true)
	f.Add([]byte("id\xff<IDS|MSG>\xffsig\xff{\xff}\xff{}\xff{}"), false)
	// One session per fuzz process: a session's replay guard takes
	// milliseconds to allocate, which would dominate every input.
	s := NewSession(fuzzKey, "fuzz")
	open := NewSession(nil, "open")
	f.Fuzz(func(t *testing.T, data []byte, sign bool) {
		frames := splitFrames(data)
		if len(frames) > MaxFrames+16 {
			return
		}
		if sign {
			signFrames(s, frames)
		}
		um, uerr := ParseUnchecked(frames)
		if uerr == nil && um.Header.MsgType == "" {
			t.Fatal("ParseUnchecked accepted a header without msg_type")
		}
		m, err := s.Parse(frames)
		if err != nil {
			// (A replay is possible: the fuzzer repeats inputs.)
			if sign && uerr == nil && (errors.Is(err, ErrBadSignature) || errors.Is(err, ErrUnsigned)) {
				t.Fatalf("a message signed with the key was refused: %v", err)
			}
			return
		}
		if uerr != nil {
			t.Fatalf("Parse accepted what ParseUnchecked refused (%v)", uerr)
		}
		if m.Header.MsgType == "" {
			t.Fatal("Parse accepted a header without msg_type")
		}
		body := [][]byte{m.Signature, m.RawHeader, m.RawParent, m.Metadata, m.Content}
		if err := s.Verify(body); err != nil {
			t.Fatalf("an accepted message does not re-verify: %v", err)
		}
		if _, err := s.Parse(frames); !errors.Is(err, ErrReplay) {
			t.Fatalf("the same frames parsed twice: %v", err)
		}
		// A session without a key accepts whatever decodes.
		if _, err := open.Parse(frames); err != nil {
			t.Fatalf("an unkeyed session refused a message the keyed one accepted: %v", err)
		}
	})
}
