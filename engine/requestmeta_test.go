package engine

import (
	"bytes"
	"testing"

	json "github.com/goccy/go-json"
)

// TestReadRequestMetaMatchesLenient: the one-pass reading gives what the
// key-by-key reading gives, for the metadata peers send and for keys of
// the wrong type (where it must step aside).
func TestReadRequestMetaMatchesLenient(t *testing.T) {
	for _, in := range []string{
		`{}`, ``, `null`, `[]`, `{"is_broadcast":true,"is_coalescing":true,"original_msg_id":"m1","label":"x"}`,
		`{"label":null}`, `{"label":{"a":[1,2]}}`, `{"is_broadcast":"yes","original_msg_id":"m2"}`,
		`{"original_msg_id":5,"is_coalescing":true}`, `{"is_broadcast":null}`,
		`{"after":[],"follow":[],"timeout":null,"targets":[],"retries":0,"go.quiet":true}`,
	} {
		got, want := readRequestMeta(json.RawMessage(in)), readRequestMetaLenient(json.RawMessage(in))
		if got.isBroadcast != want.isBroadcast || got.isCoalescing != want.isCoalescing ||
			got.originalMsgID != want.originalMsgID || !bytes.Equal(got.label, want.label) || (got.label == nil) != (want.label == nil) {
			t.Errorf("%s: got %+v (label %q), want %+v (label %q)", in, got, got.label, want, want.label)
		}
	}
}
