package controller

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	json "github.com/goccy/go-json"

	"github.com/ipp-hpc/ipp/internal/wire"
)

func sqliteRecords(t *testing.T, path string, maxBytes int64, restore bool) *records {
	t.Helper()
	st, err := openSQLite(path, restore, newTestLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.close() })
	rs := newRecords(maxBytes)
	rs.mode, rs.store = DBSQLite, st
	return rs
}

func newTestLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestSQLiteEvictedServedFromDisk: with a sqlite store, results and
// request buffers evicted from memory by the result cache are read back
// from the file, and a closed store keeps them for a restore, which fails
// the task that was still pending.
func TestSQLiteEvictedServedFromDisk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "security", "tasks.db")
	rs := sqliteRecords(t, path, 1000, false)
	req := &wire.Message{Header: wire.Header{MsgID: "a", MsgType: "apply_request", Session: "s", Date: "2026-01-02T03:04:05.000006Z"},
		RawHeader: []byte(`{"msg_id":"a"}`), Metadata: []byte(`{}`), Content: []byte(`{"x":1}`), Buffers: [][]byte{[]byte("req-a")}}
	if !rs.add(req, []byte("client"), "engine", "mux") {
		t.Fatal("add refused")
	}
	rs.stream("a", "stderr", "while running") // written with the reply
	recordReply(t, rs, "a", 800)
	rs.stream("a", "stdout", "printed by a")
	recordRequest(t, rs, "b")
	recordReply(t, rs, "b", 300)
	recordRequest(t, rs, "pending")
	if !rs.byID["a"].evicted {
		t.Fatal("a was not evicted from memory")
	}
	content, bufs, err := rs.results([]string{"a"}, false)
	if err != nil {
		t.Fatalf("result of the evicted task: %v", err)
	}
	if len(bufs) != 1 || len(bufs[0]) != 800 {
		t.Fatalf("buffers from disk: %d of %v", len(bufs), bufs)
	}
	if io := content["a"].(map[string]any)["io"].(map[string]any); io["stdout"] != "printed by a" || io["stderr"] != "while running" {
		t.Fatalf("output from disk: %v", io)
	}
	rs.setResubmitted("a", "a-again") // what resubmit_request notes on the original
	rec, err := rs.get("a")
	if err != nil || len(rec.Buffers) != 1 || string(rec.Buffers[0]) != "req-a" || string(rec.Content) != `{"x":1}` {
		t.Fatalf("get: %v %q %s", err, rec.Buffers, rec.Content)
	}
	if rec.Resubmitted != "a-again" {
		t.Fatalf("resubmitted: %q", rec.Resubmitted)
	}
	if rec.Submitted.Year() != 2026 || rec.Completed.IsZero() {
		t.Fatalf("dates: submitted %v completed %v", rec.Submitted, rec.Completed)
	}
	// While open, the database and its WAL and shared-memory files are
	// private (SQLite removes the last two at close).
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir: %v %v, want mode 0700", err, fi)
	}
	if err := rs.store.close(); err != nil {
		t.Fatal(err)
	}

	rs2 := sqliteRecords(t, path, 1000, true)
	finished, inflight, err := rs2.restore()
	if err != nil || finished != 2 || len(inflight) != 1 || inflight[0].MsgID != "pending" {
		t.Fatalf("restore: %d finished, %d in flight, %v", finished, len(inflight), err)
	}
	// The controller's restore decides the fate of what was in flight;
	// here it fails, as when its engine cannot come back.
	rs2.fail("pending", "TaskLost", "the controller restarted while task 'pending' was in flight")
	if h := rs2.history(); !slices.Equal(h, []string{"a", "b", "pending"}) {
		t.Fatalf("history after restore: %v", h)
	}
	if rec, err := rs2.get("a"); err != nil || rec.Resubmitted != "a-again" || string(rec.Buffers[0]) != "req-a" {
		t.Fatalf("restored record: %v %q", err, rec.Resubmitted)
	}
	content, bufs, err = rs2.results([]string{"a", "b", "pending"}, false)
	if err != nil || len(bufs) != 2 || len(bufs[0]) != 800 || len(bufs[1]) != 300 {
		t.Fatalf("restored results: %v, %d buffers", err, len(bufs))
	}
	rc := content["pending"].(map[string]any)["result_content"].(json.RawMessage)
	if s := string(rc); !strings.Contains(s, "TaskLost") || !strings.Contains(s, "controller restarted while task 'pending'") {
		t.Fatalf("in-flight task after restore: %s", s)
	}
	if err := rs2.purge([]string{"a"}); err != nil {
		t.Fatal(err)
	}
	if err := rs2.store.flush(); err != nil {
		t.Fatal(err)
	}
	if _, _, _, _, err := rs2.store.large("a"); err == nil {
		t.Fatal("purged record still on disk")
	}
	rs2.store.close()

	// Without restore the file is moved aside and the new one is empty.
	rs3 := sqliteRecords(t, path, 1000, false)
	if rows, err := rs3.store.loadAll(); err != nil || len(rows) != 0 {
		t.Fatalf("fresh start loaded %d rows (%v)", len(rows), err)
	}
	if _, err := os.Stat(path + ".prev"); err != nil {
		t.Fatalf("previous database not kept aside: %v", err)
	}
}

// TestPackBuffers: the frame list encoding round-trips and refuses a
// truncated blob instead of panicking.
func TestPackBuffers(t *testing.T) {
	in := [][]byte{[]byte("one"), {}, make([]byte, 300)}
	blob := packBuffers(in)
	out, err := unpackBuffers(blob)
	if err != nil || len(out) != 3 || string(out[0]) != "one" || len(out[1]) != 0 || len(out[2]) != 300 {
		t.Fatalf("round trip: %v %q", err, out)
	}
	for i := 1; i < len(blob); i++ {
		if _, err := unpackBuffers(blob[:i]); err == nil {
			t.Fatalf("truncated at %d decoded", i)
		}
	}
}

// TestBufferCaps: request and result buffers over a quarter of the result
// cache are not kept, in memory or on disk (the mux relay forwards them
// without a copy), and resubmission and result_request say why instead of
// returning a task without its data.
func TestBufferCaps(t *testing.T) {
	rs := sqliteRecords(t, filepath.Join(t.TempDir(), "tasks.db"), 4<<20, false)
	big := &wire.Message{Header: wire.Header{MsgID: "big", MsgType: "apply_request", Session: "s"},
		RawHeader: []byte(`{}`), Metadata: []byte(`{}`), Content: []byte(`{}`), Buffers: [][]byte{make([]byte, 2<<20)}}
	if !rs.add(big, []byte("client"), "engine", "mux") {
		t.Fatal("add refused")
	}
	if _, err := rs.get("big"); err == nil || !strings.Contains(err.Error(), "request buffers of 2097152 bytes") {
		t.Fatalf("get of a request whose buffers were not kept: %v", err)
	}
	recordReply(t, rs, "big", 2<<20)
	// Not kept at all, not even while the cache has room: the mux relay
	// forwards such results from libzmq's memory without a copy.
	if _, _, err := rs.results([]string{"big"}, false); err == nil || !strings.Contains(err.Error(), "result buffers of 2097152 bytes") {
		t.Fatalf("a result over the cap: %v", err)
	}
	if n := rs.bufBytes; n != 0 {
		t.Fatalf("a result over the cap counts %d bytes against the cache", n)
	}
	for _, id := range []string{"c", "d", "e"} {
		recordRequest(t, rs, id)
		recordReply(t, rs, id, 1<<20)
	}
	if _, _, err := rs.results([]string{"big"}, false); err == nil || !strings.Contains(err.Error(), "result buffers of 2097152 bytes") {
		t.Fatalf("a result over the cap, later: %v", err)
	}
	if _, bufs, err := rs.results([]string{"c"}, false); err != nil || len(bufs) != 1 || len(bufs[0]) != 1<<20 {
		t.Fatalf("a result within the cap: %v", err)
	}
}

// TestSQLiteLargeBuffersInFiles: request and result buffers of blobMin
// bytes or more are kept in private files beside the database, named by a
// hash of the message id (a client's "../" id names no path), read back
// after eviction and restore, moved aside with the database, removed with
// their record; a file that went missing is an error, not a panic.
func TestSQLiteLargeBuffersInFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "security")
	path := filepath.Join(dir, "tasks.db")
	rs := sqliteRecords(t, path, 64<<20, false)
	const id = "../../../escape"
	pattern := func(n int, seed byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = seed + byte(i%251)
		}
		return b
	}
	reqBufs := [][]byte{pattern(blobMin, 1), []byte("small")}
	resBufs := [][]byte{pattern(blobMin/2, 2), {}, pattern(blobMin/2+1, 3)}
	req := &wire.Message{Header: wire.Header{MsgID: id, MsgType: "apply_request", Session: "s"},
		RawHeader: []byte(`{}`), Metadata: []byte(`{}`), Content: []byte(`{}`), Buffers: reqBufs}
	if !rs.add(req, []byte("client"), "engine", "mux") {
		t.Fatal("add refused")
	}
	reply := &wire.Message{Parent: wire.Header{MsgID: id}, RawHeader: []byte(`{}`), Metadata: []byte(`{}`),
		Content: []byte(`{"status":"ok"}`), Buffers: resBufs}
	if !rs.complete(reply, "engine", []byte("client")) {
		t.Fatal("complete refused")
	}
	recordRequest(t, rs, "small") // under blobMin: stays in SQLite
	recordReply(t, rs, "small", 100)
	if err := rs.store.flush(); err != nil {
		t.Fatal(err)
	}
	files, err := os.ReadDir(BlobDir(path))
	if err != nil || len(files) != 2 {
		t.Fatalf("buffer files: %v %v, want the request's and the result's", files, err)
	}
	for _, f := range files {
		fi, err := f.Info()
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, want mode 0600", f.Name(), err)
		}
	}
	if fi, err := os.Stat(BlobDir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("buffer directory: %v, want mode 0700", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) != 1 {
		t.Fatalf("files beside the security directory: %v", entries)
	}
	var col []byte
	if err := rs.store.db.QueryRow(`SELECT buffers FROM tasks WHERE msg_id = ?`, id).Scan(&col); err != nil || !slices.Equal(col, blobMarker) {
		t.Fatalf("buffers column: %q %v, want the marker", col, err)
	}
	same := func(what string, got, want [][]byte) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d buffers, want %d", what, len(got), len(want))
		}
		for i := range want {
			if !slices.Equal(got[i], want[i]) {
				t.Fatalf("%s: buffer %d differs (%d bytes, want %d)", what, i, len(got[i]), len(want[i]))
			}
		}
	}
	gotReq, gotRes, _, _, err := rs.store.large(id)
	if err != nil {
		t.Fatal(err)
	}
	same("request", gotReq, reqBufs)
	same("result", gotRes, resBufs)
	rs.store.close()

	rs2 := sqliteRecords(t, path, 64<<20, true)
	if finished, _, err := rs2.restore(); err != nil || finished != 2 {
		t.Fatalf("restore: %d finished, %v", finished, err)
	}
	rec, err := rs2.get(id)
	if err != nil {
		t.Fatal(err)
	}
	same("restored request", rec.Buffers, reqBufs)
	_, bufs, err := rs2.results([]string{id}, false)
	if err != nil {
		t.Fatal(err)
	}
	same("restored result", bufs, resBufs)
	rs2.store.close()

	// A fresh start moves the files aside with the database.
	rs3 := sqliteRecords(t, path, 64<<20, false)
	if moved, err := os.ReadDir(BlobDir(path + ".prev")); err != nil || len(moved) != 2 {
		t.Fatalf("buffer files moved aside: %v %v", moved, err)
	}
	if left, err := os.ReadDir(BlobDir(path)); err != nil || len(left) != 0 {
		t.Fatalf("buffer files of the new database: %v %v", left, err)
	}
	rs3.store.close()

	// Purged: the record's files go; a missing file is an error.
	rs4 := sqliteRecords(t, path+".prev", 64<<20, true)
	if _, _, err := rs4.restore(); err != nil {
		t.Fatal(err)
	}
	os.Remove(rs4.store.blobPath(id, blobResult))
	if _, _, _, _, err := rs4.store.large(id); err == nil || !strings.Contains(err.Error(), "cannot be read") {
		t.Fatalf("a missing buffer file: %v", err)
	}
	if err := rs4.purge([]string{id}); err != nil {
		t.Fatal(err)
	}
	if err := rs4.store.flush(); err != nil {
		t.Fatal(err)
	}
	if left, err := os.ReadDir(BlobDir(path + ".prev")); err != nil || len(left) != 0 {
		t.Fatalf("files left after the purge: %v %v", left, err)
	}
}

// TestSQLiteSharedBuffersLinked: records of one batch that share their
// buffers (a fan-out's copies) get one file written and hard links to it;
// each reads back whole, and removing one record leaves the other's.
// Equal bytes in other memory are written again, not linked.
func TestSQLiteSharedBuffersLinked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "security", "tasks.db")
	st, err := openSQLite(path, false, newTestLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	shared := [][]byte{bytes.Repeat([]byte{5}, blobMin), []byte("tail")}
	copied := [][]byte{bytes.Clone(shared[0]), []byte("tail")}
	req := func(id string, bufs [][]byte) *change {
		return &change{rec: TaskRecord{MsgID: id, Buffers: bufs, Header: []byte(`{}`)}, reqBufs: true}
	}
	if err := st.write([]*change{req("a", shared), req("b", shared), req("c", copied)}); err != nil {
		t.Fatal(err)
	}
	info := func(id string) os.FileInfo {
		t.Helper()
		fi, err := os.Stat(st.blobPath(id, blobRequest))
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	if !os.SameFile(info("a"), info("b")) {
		t.Fatal("records sharing their buffers got two files")
	}
	if os.SameFile(info("a"), info("c")) {
		t.Fatal("a record with its own buffers was linked to another's file")
	}
	if err := st.write([]*change{{rec: TaskRecord{MsgID: "a"}, deleted: true}}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"b", "c"} {
		got, _, _, _, err := st.large(id)
		if err != nil || len(got) != 2 || !bytes.Equal(got[0], shared[0]) || string(got[1]) != "tail" {
			t.Fatalf("%s read back: %v, %d buffers", id, err, len(got))
		}
	}
	if _, err := os.Stat(st.blobPath("a", blobRequest)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the deleted record's name is still there: %v", err)
	}
}
