package controller

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ipp-hpc/ipp/internal/wire"
)

// writerBench is a record store over a fresh SQLite file and the two
// halves of a typical no-op task: add submits task i, complete answers it.
type writerBench struct {
	st *sqliteStore
	rs *records
}

var (
	benchHeader = []byte(`{"msg_id":"` + strings.Repeat("x", 40) + `","msg_type":"apply_request","username":"u","session":"` +
		strings.Repeat("s", 36) + `","date":"2026-12-06T16:00:00.000000Z","version":"5.3"}`)
	benchMetadata = []byte(`{"after":[],"follow":[],"timeout":null,"targets":[],"retries":0,"go.quiet":true}`)
	benchContent  = []byte(`{"go":{"func":"ipp.noop","arg_frames":[1]}}`)
	benchResultMD = []byte(`{"started":"2026-12-06T16:00:00.000100Z","dependencies_met":true,"engine":"e","status":"ok","is_broadcast":false}`)
)

func newWriterBench(b *testing.B) *writerBench {
	st, err := openSQLite(filepath.Join(b.TempDir(), "tasks.db"), false, newTestLogger())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.close() })
	rs := newRecords(DefaultResultCacheBytes)
	rs.mode, rs.store = DBSQLite, st
	return &writerBench{st: st, rs: rs}
}

func (w *writerBench) add(i int) {
	w.rs.add(&wire.Message{Header: wire.Header{MsgID: "task-" + strconv.Itoa(i), Session: "s", Date: "2026-12-06T16:00:00.000000Z"},
		RawHeader: benchHeader, Metadata: benchMetadata, Content: benchContent, Buffers: [][]byte{make([]byte, 24)}},
		[]byte("client"), "engine", "task")
}

func (w *writerBench) complete(i int) {
	w.rs.complete(&wire.Message{Parent: wire.Header{MsgID: "task-" + strconv.Itoa(i)}, RawHeader: benchHeader,
		Metadata: benchResultMD, Content: []byte(`{"status":"ok"}`), Buffers: [][]byte{make([]byte, 24)}},
		"engine", []byte("client"))
}

func (w *writerBench) flush(b *testing.B) {
	if err := w.st.flush(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSQLiteWriter measures what the write-behind costs per task
// (one request and its reply of typical sizes, written as one row), on
// the writer's goroutine: the rate the store sustains beside the hub.
func BenchmarkSQLiteWriter(b *testing.B) {
	w := newWriterBench(b)
	b.ResetTimer()
	for i := range b.N {
		w.add(i)
		w.complete(i)
	}
	w.flush(b)
}

// BenchmarkSQLiteWriterTwoRows is BenchmarkSQLiteWriter when a task waits
// in the queue longer than the writer's batch: its submission is one row
// write, its result another (the load-balanced bench's backlog). In
// batches of 500, as the writer sees a backlog: 500 submissions, then
// their 500 results.
func BenchmarkSQLiteWriterTwoRows(b *testing.B) {
	w := newWriterBench(b)
	b.ResetTimer()
	for start := 0; start < b.N; start += 500 {
		end := min(start+500, b.N)
		for i := start; i < end; i++ {
			w.add(i)
		}
		w.flush(b)
		for i := start; i < end; i++ {
			w.complete(i)
		}
		w.flush(b)
	}
}
