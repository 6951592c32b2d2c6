package wire

import (
	"unicode/utf8"

	json "github.com/goccy/go-json"
)

// Every message carries a header and a parent header, and every process
// reads and writes them once per hop: the generic JSON codec spent 15 % of
// an engine's CPU on them per task, and compiled its encoders on the first
// message each process sent (a millisecond per engine, a second over 1,000
// engines' first exec). A header is a flat object of six strings, so the
// common case is written and read here by hand. Anything unusual (an
// escape, a key we do not know, a value that is not a string) goes to the
// generic codec, which stays the reference: FuzzHeaderCodec checks that
// both agree on every input the fast path accepts.

// appendHeader appends h as JSON, byte for byte what json.Marshal writes.
func appendHeader(dst []byte, h *Header) []byte {
	dst = append(dst, `{"msg_id":`...)
	dst = appendString(dst, h.MsgID)
	dst = append(dst, `,"msg_type":`...)
	dst = appendString(dst, h.MsgType)
	dst = append(dst, `,"username":`...)
	dst = appendString(dst, h.Username)
	dst = append(dst, `,"session":`...)
	dst = appendString(dst, h.Session)
	dst = append(dst, `,"date":`...)
	dst = appendString(dst, h.Date)
	dst = append(dst, `,"version":`...)
	dst = appendString(dst, h.Version)
	return append(dst, '}')
}

// marshalHeader is appendHeader into a buffer of the right size.
func marshalHeader(h *Header) []byte {
	n := len(`{"msg_id":"","msg_type":"","username":"","session":"","date":"","version":""}`) +
		len(h.MsgID) + len(h.MsgType) + len(h.Username) + len(h.Session) + len(h.Date) + len(h.Version)
	return appendHeader(make([]byte, 0, n), h)
}

// plainString reports whether s needs no escaping: printable ASCII other
// than the quote, the backslash and the three characters the generic
// encoder escapes for HTML.
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

func appendString(dst []byte, s string) []byte {
	if plainString(s) {
		dst = append(dst, '"')
		dst = append(dst, s...)
		return append(dst, '"')
	}
	b, err := json.Marshal(s)
	if err != nil { // cannot happen for a string; keep the output valid JSON
		return append(dst, `""`...)
	}
	return append(dst, b...)
}

// unmarshalHeader decodes b into h as json.Unmarshal does: fields present
// in b are set, the others keep their value.
func unmarshalHeader(b []byte, h *Header) error {
	if decodeHeaderFast(b, h) {
		return nil
	}
	return json.Unmarshal(b, h)
}

// headerKeys are the header's JSON keys, in its fields' order.
var headerKeys = [...]string{"msg_id", "msg_type", "username", "session", "date", "version"}

// headerKey is key's index in headerKeys, or -1; a switch, which the
// compiler turns into a few length and byte comparisons.
func headerKey(key string) int {
	switch key {
	case "msg_id":
		return 0
	case "msg_type":
		return 1
	case "username":
		return 2
	case "session":
		return 3
	case "date":
		return 4
	case "version":
		return 5
	}
	return -1
}

// headerFields points at h's fields in headerKeys' order.
func headerFields(h *Header) [len(headerKeys)]*string {
	return [...]*string{&h.MsgID, &h.MsgType, &h.Username, &h.Session, &h.Date, &h.Version}
}

// decodeHeaderFast decodes a flat object whose keys are the header's own
// (exact case) and whose values are strings without escapes, surrounded
// by JSON whitespace only. It reports false, leaving h untouched, for
// anything else.
func decodeHeaderFast(b []byte, h *Header) bool {
	// One string holds the whole frame; the fields are slices of it, so
	// decoding allocates once.
	s := string(b)
	i := skipSpace(s, 0)
	if i == len(s) || s[i] != '{' {
		return false
	}
	i = skipSpace(s, i+1)
	var vals [len(headerKeys)]string
	var seen [len(headerKeys)]bool
	if i < len(s) && s[i] == '}' {
		i++
	} else {
		for {
			key, j, ok := plainJSONString(s, i)
			if !ok {
				return false
			}
			j = skipSpace(s, j)
			if j == len(s) || s[j] != ':' {
				return false
			}
			val, k, ok := plainJSONString(s, skipSpace(s, j+1))
			if !ok {
				return false
			}
			f := headerKey(key)
			if f < 0 {
				// Unknown keys, and known ones in another case (which the
				// generic decoder matches case-insensitively).
				return false
			}
			vals[f], seen[f] = val, true
			i = skipSpace(s, k)
			if i == len(s) {
				return false
			}
			if s[i] == '}' {
				i++
				break
			}
			if s[i] != ',' {
				return false
			}
			i = skipSpace(s, i+1)
		}
	}
	if skipSpace(s, i) != len(s) {
		return false
	}
	for f, p := range headerFields(h) {
		if seen[f] {
			*p = vals[f]
		}
	}
	return true
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// plainJSONString reads the string starting at s[i] (its opening quote)
// and returns its contents and the index after its closing quote; false
// when there is no string there or it holds an escape, a control
// character or invalid UTF-8 (which the generic decoder replaces).
func plainJSONString(s string, i int) (string, int, bool) {
	if i >= len(s) || s[i] != '"' {
		return "", 0, false
	}
	start := i + 1
	ascii := true
	for j := start; j < len(s); j++ {
		c := s[j]
		switch {
		case c == '"':
			v := s[start:j]
			if !ascii && !utf8.ValidString(v) {
				return "", 0, false
			}
			return v, j + 1, true
		case c == '\\' || c < 0x20:
			return "", 0, false
		case c >= 0x80:
			ascii = false
		}
	}
	return "", 0, false
}
