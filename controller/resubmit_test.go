package controller

import (
	"strings"
	"testing"

	json "github.com/goccy/go-json"

	"github.com/ipp-hpc/ipp/internal/wire"
)

// resubmission keeps the original header but its msg_id and date, the
// content and buffers, and renames dependencies on tasks resubmitted with
// it; the result verifies under the controller's key.
func TestResubmission(t *testing.T) {
	sess := wire.NewSession([]byte("key"), "hub")
	r := &TaskRecord{
		MsgID:    "old",
		Header:   json.RawMessage(`{"msg_id":"old","msg_type":"apply_request","session":"client","username":"u","date":"2026-01-01T00:00:00Z","version":"5.3","extra":1}`),
		Metadata: json.RawMessage(`{"after":["dep","other"],"follow":{"dependencies":["dep"],"all":false},"retries":2}`),
		Content:  json.RawMessage(`{}`),
		Buffers:  [][]byte{[]byte("f"), []byte("args")},
	}
	frames, err := resubmission(sess, r, "new", map[string]string{"dep": "dep2", "old": "new"})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := sess.Parse(frames)
	if err != nil {
		t.Fatalf("resubmission does not verify: %v", err)
	}
	if string(msg.Idents[0]) != resubmitIdent || len(msg.Idents) != 1 {
		t.Errorf("idents %q", msg.Idents)
	}
	var h map[string]any
	json.Unmarshal(msg.RawHeader, &h)
	if h["msg_id"] != "new" || h["session"] != "client" || h["username"] != "u" || h["msg_type"] != "apply_request" ||
		h["extra"] != 1.0 || h["date"] == "2026-01-01T00:00:00Z" {
		t.Errorf("header %v", h)
	}
	var md struct {
		After   []string                        `json:"after"`
		Follow  struct{ Dependencies []string } `json:"follow"`
		Retries int                             `json:"retries"`
	}
	json.Unmarshal(msg.Metadata, &md)
	if strings.Join(md.After, ",") != "dep2,other" || strings.Join(md.Follow.Dependencies, ",") != "dep2" || md.Retries != 2 {
		t.Errorf("metadata %s", msg.Metadata)
	}
	if len(msg.Buffers) != 2 || string(msg.Buffers[1]) != "args" {
		t.Errorf("buffers %q", msg.Buffers)
	}
	r.Header = json.RawMessage(`[1]`)
	if _, err := resubmission(sess, r, "new", nil); err == nil {
		t.Error("a header that is not an object was resubmitted")
	}
}

// A record whose buffers the result cache dropped cannot be resubmitted,
// and says so.
func TestResubmitLookupEvicted(t *testing.T) {
	rs := newRecords(100)
	recordRequest(t, rs, "a")
	recordReply(t, rs, "a", 90)
	recordRequest(t, rs, "b")
	recordReply(t, rs, "b", 90) // evicts a
	found, missing, evicted, _ := rs.lookup([]string{"a", "b", "c"})
	if len(found) != 1 || found[0].MsgID != "b" || strings.Join(missing, ",") != "c" || strings.Join(evicted, ",") != "a" {
		t.Errorf("found %d, missing %v, evicted %v", len(found), missing, evicted)
	}
}
