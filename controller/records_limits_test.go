package controller

import (
	"strconv"
	"strings"
	"testing"

	"github.com/ipp-hpc/ipp/internal/wire"
)

func recordRequest(t *testing.T, rs *records, id string) {
	t.Helper()
	msg := &wire.Message{Header: wire.Header{MsgID: id, MsgType: "apply_request", Session: "s"},
		RawHeader: []byte(`{}`), Metadata: []byte(`{}`)}
	if !rs.add(msg, []byte("client"), "engine", "mux") {
		t.Fatalf("add %s refused", id)
	}
}

func recordReply(t *testing.T, rs *records, id string, buffer int) {
	t.Helper()
	reply := &wire.Message{Parent: wire.Header{MsgID: id}, RawHeader: []byte(`{}`), Metadata: []byte(`{}`),
		Content: []byte(`{"status":"ok"}`), Buffers: [][]byte{make([]byte, buffer)}}
	if !rs.complete(reply, "engine", []byte("client")) {
		t.Fatalf("complete %s refused", id)
	}
}

// TestResultCacheCountsOutput: output of finished tasks counts against the
// result cache with their buffers, including output arriving after the
// reply, and is dropped with them, oldest first.
func TestResultCacheCountsOutput(t *testing.T) {
	rs := newRecords(1000)
	recordRequest(t, rs, "a")
	rs.stream("a", "stdout", strings.Repeat("x", 100)) // running: not counted yet
	if rs.bufBytes != 0 {
		t.Fatalf("a running task's output counted: %d", rs.bufBytes)
	}
	recordReply(t, rs, "a", 500)
	rs.stream("a", "stderr", strings.Repeat("y", 200)) // after the reply
	if rs.bufBytes != 800 {
		t.Fatalf("counted %d bytes, want 800", rs.bufBytes)
	}
	recordRequest(t, rs, "b")
	recordReply(t, rs, "b", 300)
	if rs.bufBytes != 300 {
		t.Fatalf("after eviction %d bytes counted, want 300", rs.bufBytes)
	}
	if _, _, err := rs.results([]string{"a"}, false); err == nil || !strings.Contains(err.Error(), "no longer kept") {
		t.Fatalf("result of the evicted task: %v", err)
	}
	if _, bufs, err := rs.results([]string{"b"}, false); err != nil || len(bufs) != 1 {
		t.Fatalf("result of the kept task: %v", err)
	}
	rs.stream("a", "stdout", "late") // an evicted record takes nothing more
	if rs.byID["a"].Stdout != "" || rs.bufBytes != 300 {
		t.Fatalf("output kept for an evicted record: %q, %d", rs.byID["a"].Stdout, rs.bufBytes)
	}
	if err := rs.purge([]string{"a", "b"}); err != nil || rs.bufBytes != 0 {
		t.Fatalf("after purge: %v, %d bytes counted", err, rs.bufBytes)
	}
}

// TestOutputCap: a task printing without end keeps at most outputCap
// bytes in its record, ending with a note that says so.
func TestOutputCap(t *testing.T) {
	rs := newRecords(4 << 20)
	recordRequest(t, rs, "a")
	chunk := strings.Repeat("z", 64<<10)
	for range 64 { // 4 MiB
		rs.stream("a", "stdout", chunk)
	}
	r := rs.byID["a"]
	if len(r.Stdout) > rs.outputCap()+len(truncatedNote) || !strings.HasSuffix(r.Stdout, truncatedNote) {
		t.Fatalf("kept %d bytes of output (cap %d), ending %q", len(r.Stdout), rs.outputCap(), r.Stdout[len(r.Stdout)-40:])
	}
	recordReply(t, rs, "a", 10)
	if rs.bufBytes != len(r.Stdout)+10 {
		t.Fatalf("counted %d, want %d", rs.bufBytes, len(r.Stdout)+10)
	}
}

// TestBareRecordsCulled: output for requests the hub never saw makes bare
// records, which are culled with the completed ones instead of piling up.
func TestBareRecordsCulled(t *testing.T) {
	rs := newRecords(1 << 20)
	recordRequest(t, rs, "pending")
	for i := range rs.maxRecords + 10 {
		rs.stream("unknown-"+strconv.Itoa(i), "stdout", "x")
	}
	recordRequest(t, rs, "last") // add culls
	if n := len(rs.byID); n > rs.maxRecords {
		t.Fatalf("%d records kept, want at most %d", n, rs.maxRecords)
	}
	if rs.byID["pending"] == nil || rs.byID["last"] == nil {
		t.Fatal("a pending request's record was culled")
	}
}
