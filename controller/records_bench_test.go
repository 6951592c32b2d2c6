package controller

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ipp-hpc/ipp/internal/wire"
)

// BenchmarkSQLiteWriter measures what the write-behind costs per task
// (one request and its reply of typical sizes, written as one row), on
// the writer's goroutine: the rate the store sustains beside the hub.
func BenchmarkSQLiteWriter(b *testing.B) {
	st, err := openSQLite(filepath.Join(b.TempDir(), "tasks.db"), false, newTestLogger())
	if err != nil {
		b.Fatal(err)
	}
	defer st.close()
	rs := newRecords(DefaultResultCacheBytes)
	rs.mode, rs.store = DBSQLite, st
	header := []byte(`{"msg_id":"` + strings.Repeat("x", 40) + `","msg_type":"apply_request","username":"u","session":"` +
		strings.Repeat("s", 36) + `","date":"2026-12-06T16:00:00.000000Z","version":"5.3"}`)
	md := []byte(`{"after":[],"follow":[],"timeout":null,"targets":[],"retries":0,"go.quiet":true}`)
	content := []byte(`{"go":{"func":"ipp.noop","arg_frames":[1]}}`)
	rmd := []byte(`{"started":"2026-12-06T16:00:00.000100Z","dependencies_met":true,"engine":"e","status":"ok","is_broadcast":false}`)
	b.ResetTimer()
	for i := range b.N {
		id := "task-" + strconv.Itoa(i)
		req := &wire.Message{Header: wire.Header{MsgID: id, Session: "s", Date: "2026-12-06T16:00:00.000000Z"},
			RawHeader: header, Metadata: md, Content: content, Buffers: [][]byte{make([]byte, 24)}}
		rs.add(req, []byte("client"), "engine", "task")
		rs.complete(&wire.Message{Parent: wire.Header{MsgID: id}, RawHeader: header, Metadata: rmd,
			Content: []byte(`{"status":"ok"}`), Buffers: [][]byte{make([]byte, 24)}}, "engine", []byte("client"))
	}
	if err := st.flush(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSQLiteWriterTwoRows is BenchmarkSQLiteWriter when a task waits
// in the queue longer than the writer's batch: its submission is one row
// write, its result another (the load-balanced bench's backlog).
func BenchmarkSQLiteWriterTwoRows(b *testing.B) {
	st, err := openSQLite(filepath.Join(b.TempDir(), "tasks.db"), false, newTestLogger())
	if err != nil {
		b.Fatal(err)
	}
	defer st.close()
	rs := newRecords(DefaultResultCacheBytes)
	rs.mode, rs.store = DBSQLite, st
	header := []byte(`{"msg_id":"` + strings.Repeat("x", 40) + `","msg_type":"apply_request","username":"u","session":"` +
		strings.Repeat("s", 36) + `","date":"2026-12-06T16:00:00.000000Z","version":"5.3"}`)
	md := []byte(`{"after":[],"follow":[],"timeout":null,"targets":[],"retries":0,"go.quiet":true}`)
	content := []byte(`{"go":{"func":"ipp.noop","arg_frames":[1]}}`)
	rmd := []byte(`{"started":"2026-12-06T16:00:00.000100Z","dependencies_met":true,"engine":"e","status":"ok","is_broadcast":false}`)
	b.ResetTimer()
	// In batches of 500, as the writer sees a backlog: 500 submissions,
	// then their 500 results.
	for start := 0; start < b.N; start += 500 {
		end := min(start+500, b.N)
		for i := start; i < end; i++ {
			id := "task-" + strconv.Itoa(i)
			rs.add(&wire.Message{Header: wire.Header{MsgID: id, Session: "s", Date: "2026-12-06T16:00:00.000000Z"},
				RawHeader: header, Metadata: md, Content: content, Buffers: [][]byte{make([]byte, 24)}}, []byte("client"), "engine", "task")
		}
		if err := st.flush(); err != nil {
			b.Fatal(err)
		}
		for i := start; i < end; i++ {
			rs.complete(&wire.Message{Parent: wire.Header{MsgID: "task-" + strconv.Itoa(i)}, RawHeader: header, Metadata: rmd,
				Content: []byte(`{"status":"ok"}`), Buffers: [][]byte{make([]byte, 24)}}, "engine", []byte("client"))
		}
		if err := st.flush(); err != nil {
			b.Fatal(err)
		}
	}
}
