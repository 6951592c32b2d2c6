package wire

import (
	"bytes"
	"testing"

	json "github.com/goccy/go-json"
)

// headerCases are headers the hand-written encoder must write exactly as
// the generic one: plain, empty, and each kind of character that needs an
// escape.
var headerCases = []Header{
	{MsgID: "a1b2c3d4-0123456789abcdef01234567_42_7", MsgType: "apply_request", Username: "alice",
		Session: "a1b2c3d4-0123456789abcdef01234567", Date: "2026-12-07T10:00:00.123456Z", Version: "5.3"},
	{},
	{MsgID: `quote"back\slash`, MsgType: "tab\tnewline\n", Username: "<script>&amp;", Session: "é ü 雪",
		Date: "\u2028\u2029", Version: "\x00\x1f\x7f"},
	{MsgID: "bad utf-8 \xff\xfe", Username: "emoji 🙂"},
}

func TestHeaderEncoderMatchesGeneric(t *testing.T) {
	for _, h := range headerCases {
		want, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		if got := marshalHeader(&h); !bytes.Equal(got, want) {
			t.Errorf("header %+v:\n got %s\nwant %s", h, got, want)
		}
	}
}

func TestHeaderDecoderMatchesGeneric(t *testing.T) {
	inputs := []string{
		string(marshalHeader(&headerCases[0])),
		" {\n\t\"msg_type\" : \"x\" ,\r\n \"msg_id\":\"y\" } ",
		`{}`,
		`{"msg_id":"first","msg_id":"second"}`,
		// The generic decoder handles these; the fast path must step
		// aside rather than read them differently.
		`{"msg_id":"a\"b","msg_type":"x"}`,
		`{"msg_id":"\u00e9","msg_type":"x"}`,
		`{"MSG_ID":"upper","msg_type":"x"}`,
		`{"msg_id":"a","extra":{"nested":[1,2]},"msg_type":"x"}`,
		`{"msg_id":null,"msg_type":"x"}`,
		`{"msg_id":"é","msg_type":"雪"}`,
		"{\"msg_id\":\"\xff\",\"msg_type\":\"x\"}",
		// Malformed: both must refuse.
		`{"msg_id":"a"`, `{"msg_id":"a",}`, `{"msg_id" "a"}`, `{"msg_id":"a"} x`, `[]`, ``, `{"msg_id":5}`,
		"{\"msg_id\":\"a\x01\"}",
	}
	for _, in := range inputs {
		var want, got Header
		want.Version, got.Version = "kept", "kept" // fields absent from the input keep their value
		werr := json.Unmarshal([]byte(in), &want)
		gerr := unmarshalHeader([]byte(in), &got)
		if (werr == nil) != (gerr == nil) {
			t.Errorf("%q: error %v, generic decoder's %v", in, gerr, werr)
			continue
		}
		if got != want {
			t.Errorf("%q:\n got %+v\nwant %+v", in, got, want)
		}
	}
}

// TestHeaderFastPathTaken guards the point of the codec: the headers this
// project and Python peers write are read without the generic decoder.
func TestHeaderFastPathTaken(t *testing.T) {
	python := `{"msg_id": "0f5e6a1c-4b1d9e0f8a7c6b5d4e3f2a1b_1234_0", "msg_type": "execute_request", "username": "bob",
		"session": "0f5e6a1c-4b1d9e0f8a7c6b5d4e3f2a1b", "date": "2026-12-07T10:00:00.123456Z", "version": "5.3"}`
	for _, in := range []string{string(marshalHeader(&headerCases[0])), python} {
		var h Header
		if !decodeHeaderFast([]byte(in), &h) {
			t.Errorf("fast path refused %s", in)
		}
		if h.MsgType == "" || h.Version != "5.3" {
			t.Errorf("fast path read %+v from %s", h, in)
		}
	}
}

// FuzzHeaderDecode: whatever the fast path accepts, the generic decoder
// accepts with the same result.
func FuzzHeaderDecode(f *testing.F) {
	f.Add([]byte(`{"msg_id":"a","msg_type":"b","username":"c","session":"d","date":"e","version":"f"}`))
	f.Add([]byte(` { "msg_id" : "é" } `))
	f.Add([]byte(`{"msg_id":"a","msg_id":"b"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast, generic Header
		if !decodeHeaderFast(data, &fast) {
			return
		}
		if err := json.Unmarshal(data, &generic); err != nil {
			t.Fatalf("fast path accepted %q, generic decoder refused it: %v", data, err)
		}
		if fast != generic {
			t.Fatalf("%q: fast %+v, generic %+v", data, fast, generic)
		}
	})
}

// FuzzHeaderEncode: the hand-written encoder writes what the generic one
// writes, for any field values.
func FuzzHeaderEncode(f *testing.F) {
	for _, h := range headerCases {
		f.Add(h.MsgID, h.MsgType, h.Username, h.Session, h.Date, h.Version)
	}
	f.Fuzz(func(t *testing.T, id, typ, user, sess, date, ver string) {
		h := Header{id, typ, user, sess, date, ver}
		want, err := json.Marshal(h)
		if err != nil {
			t.Skip()
		}
		if got := marshalHeader(&h); !bytes.Equal(got, want) {
			t.Fatalf("got %s, want %s", got, want)
		}
	})
}

func BenchmarkHeaderCodec(b *testing.B) {
	h := headerCases[0]
	raw := marshalHeader(&h)
	b.Run("encode/hand", func(b *testing.B) {
		for range b.N {
			marshalHeader(&h)
		}
	})
	b.Run("encode/generic", func(b *testing.B) {
		for range b.N {
			_, _ = json.Marshal(h)
		}
	})
	b.Run("decode/hand", func(b *testing.B) {
		for range b.N {
			var d Header
			_ = unmarshalHeader(raw, &d)
		}
	})
	b.Run("decode/generic", func(b *testing.B) {
		for range b.N {
			var d Header
			_ = json.Unmarshal(raw, &d)
		}
	})
}

// TestHeaderKeysMatchFields: headerKey, headerKeys and headerFields agree
// with the struct tags the generic codec uses.
func TestHeaderKeysMatchFields(t *testing.T) {
	var h Header
	for i, p := range headerFields(&h) {
		*p = headerKeys[i] + "-value"
		if headerKey(headerKeys[i]) != i {
			t.Errorf("headerKey(%q) = %d, want %d", headerKeys[i], headerKey(headerKeys[i]), i)
		}
	}
	b, _ := json.Marshal(h)
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range headerKeys {
		if m[k] != k+"-value" {
			t.Errorf("key %q holds %q in the generic encoding", k, m[k])
		}
	}
}
