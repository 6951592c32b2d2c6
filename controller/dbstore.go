package controller

import (
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, cgo-free

	"github.com/ipp-hpc/ipp/internal/wire"
)

// Task database backends (Config.DB, --db).
const (
	// DBMemory keeps task records in the controller's memory only: they
	// are lost with the controller. The default of Config.
	DBMemory = "memory"
	// DBSQLite keeps them in memory and writes them behind to a SQLite
	// file (Config.DBPath), from which a restarted controller loads them
	// (Config.Restore). The default of `ipcluster start`.
	DBSQLite = "sqlite"
	// DBNone keeps a task only while it runs, as ipyparallel's NoDB:
	// results are not kept after delivery, and result_request,
	// db_request and resubmit_request for finished tasks get an error
	// that names --db.
	DBNone = "none"
)

// DefaultDBMaxRecords is the default Config.DBMaxRecords.
const DefaultDBMaxRecords = 100_000

// DBFile is where a sqlite task database lives by default:
// security/ipcontroller[-<cluster id>]-tasks.db in the profile, beside the
// connection files and as private as they are (it holds every request and
// result).
func DBFile(profileDir, clusterID string) string {
	name := "ipcontroller-tasks.db"
	if clusterID != "" {
		name = "ipcontroller-" + clusterID + "-tasks.db"
	}
	return filepath.Join(wire.SecurityDir(profileDir), name)
}

// flushEvery is how long the writer lets changes gather before it writes
// them in one transaction (after the previous one committed): a change is
// in the file, safe from a SIGKILL of the controller, within about
// flushEvery plus the time of two transactions.
const flushEvery = 20 * time.Millisecond

// change is one record's pending write: the record's small fields as they
// were last seen, and its large parts only when they changed (buffers are
// written once, output only while the hub still holds it).
type change struct {
	rec     TaskRecord // snapshot; Buffers, ResultBuffers, Stdout/err used per flags
	seq     int64
	ident   string
	done    bool
	output  bool // Stdout/Stderr are current: write them
	reqBufs bool // Buffers are set: write them
	resBufs bool // ResultBuffers are set: write them
	deleted bool
	// reqLost and resLost: why buffers were not kept (record fields).
	reqLost, resLost string
}

// merge folds a later change of the same record into c.
func (c *change) merge(n *change) {
	if n.deleted {
		*c = *n
		return
	}
	keepReq, keepRes := c.rec.Buffers, c.rec.ResultBuffers
	reqBufs, resBufs := c.reqBufs, c.resBufs
	*c = *n
	if !n.reqBufs && reqBufs {
		c.rec.Buffers, c.reqBufs = keepReq, true
	}
	if !n.resBufs && resBufs {
		c.rec.ResultBuffers, c.resBufs = keepRes, true
	}
}

// sqliteStore writes task records behind the hub to a SQLite file. The
// hub's hot path only appends to a queue (queue); a writer goroutine
// commits what gathered in one transaction, then the next batch. The file
// is in WAL mode with synchronous=NORMAL: a commit is a write(2) into the
// WAL without fsync, so what the writer committed survives the
// controller's SIGKILL (it is in the page cache) but not a power loss
// since the last checkpoint.
type sqliteStore struct {
	db                  *sql.DB
	insert, update, del *sql.Stmt
	path                string
	log                 *slog.Logger

	mu sync.Mutex
	// pending are the changes queued since the writer last took them, in
	// order; the writer merges those of one record (the hub only
	// appends: no map, no allocation per change beyond the slice).
	pending []change
	spare   []change // the previous batch's slice, reused
	// written counts batches committed; flush waits for it to pass the
	// batch that held its changes.
	queued, written uint64
	err             error // the last write error, cleared by a good write
	cond            *sync.Cond
	wake            chan struct{}
	quit            chan struct{}
	done            chan struct{}
}

const schema = `CREATE TABLE IF NOT EXISTS tasks (
	msg_id TEXT PRIMARY KEY,
	seq INTEGER NOT NULL,
	header BLOB, metadata BLOB, content BLOB, buffers BLOB,
	submitted INTEGER, client_uuid TEXT, client_ident BLOB, engine_uuid TEXT, queue TEXT,
	started INTEGER, completed INTEGER, received INTEGER, done INTEGER NOT NULL DEFAULT 0,
	resubmitted TEXT, result_header BLOB, result_metadata BLOB, result_content BLOB, result_buffers BLOB,
	execute_input TEXT, execute_result BLOB, error BLOB, stdout TEXT, stderr TEXT,
	req_lost TEXT, res_lost TEXT
);
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT);`

// openSQLite opens (restore) or starts afresh the database at path. A
// file left by an earlier controller that is not restored is kept as
// <path>.prev (with its WAL), replacing an older .prev: one generation of
// a forgotten --restore can still be recovered by hand.
func openSQLite(path string, restore bool, log *slog.Logger) (*sqliteStore, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("task database: %w", err)
	}
	if !restore {
		if _, err := os.Stat(path); err == nil {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				os.Remove(path + ".prev" + suffix)
				if err := os.Rename(path+suffix, path+".prev"+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
					return nil, fmt.Errorf("task database: moving the previous one aside: %w", err)
				}
			}
			// Its buffer files go with it.
			if err := os.RemoveAll(BlobDir(path + ".prev")); err != nil {
				return nil, fmt.Errorf("task database: removing the older one's buffer files: %w", err)
			}
			if err := os.Rename(BlobDir(path), BlobDir(path+".prev")); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("task database: moving the previous one's buffer files aside: %w", err)
			}
			log.Info("previous task database moved aside (start with --restore to load it)", "to", path+".prev")
		} else if err := os.RemoveAll(BlobDir(path)); err != nil {
			// Buffer files whose database is gone.
			return nil, fmt.Errorf("task database: removing buffer files left without their database: %w", err)
		}
	}
	if err := os.MkdirAll(BlobDir(path), 0o700); err != nil {
		return nil, fmt.Errorf("task database: %w", err)
	}
	// SQLite gives the WAL and shm files the mode of the database file:
	// create it private before SQLite does with the umask's.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("task database: %w", err)
	}
	f.Chmod(0o600)
	f.Close()
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(5000)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("task database %s: %w", path, err)
	}
	// One connection: the writer and the rare readers (result_request of
	// an evicted result) take turns; WAL readers would not block the
	// writer, but one connection keeps the pragmas in one place.
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("task database %s: %w (move the file aside to start afresh)", path, err)
	}
	s := &sqliteStore{db: db, path: path, log: log,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	for _, p := range []struct {
		dst **sql.Stmt
		sql string
	}{{&s.insert, insertRow}, {&s.update, updateRow}, {&s.del, deleteRow}} {
		if *p.dst, err = db.Prepare(p.sql); err != nil {
			db.Close()
			return nil, fmt.Errorf("task database %s: %w", path, err)
		}
	}
	s.cond = sync.NewCond(&s.mu)
	go s.writer()
	return s, nil
}

// queue records c for the next batch; it never waits on the file.
func (s *sqliteStore) queue(c *change) {
	s.mu.Lock()
	s.pending = append(s.pending, *c)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *sqliteStore) writer() {
	defer close(s.done)
	for {
		select {
		case <-s.quit:
			s.writeBatch()
			return
		case <-s.wake:
		}
		// Let changes gather: one transaction per flushEvery at most, so
		// that the changes of a short task (submitted, assigned,
		// answered) mostly become one row write.
		for {
			select {
			case <-s.quit:
			case <-time.After(flushEvery):
			}
			if !s.writeBatch() {
				break
			}
		}
	}
}

// writeBatch commits what is pending; false when nothing was.
func (s *sqliteStore) writeBatch() bool {
	s.mu.Lock()
	if len(s.pending) == 0 {
		s.mu.Unlock()
		return false
	}
	taken := s.pending
	s.pending, s.spare = s.spare[:0], nil
	s.queued++
	n := s.queued
	s.mu.Unlock()
	// One write per record: its changes merged, in first-change order.
	at := make(map[string]int, len(taken))
	batch := make([]*change, 0, len(taken))
	for i := range taken {
		c := &taken[i]
		if j, ok := at[c.rec.MsgID]; ok {
			batch[j].merge(c)
			continue
		}
		at[c.rec.MsgID] = len(batch)
		batch = append(batch, c)
	}
	err := s.write(batch)
	if err != nil {
		s.log.Error("task database write failed; those records live in memory only", "file", s.path, "records", len(batch), "err", err)
	}
	clear(taken) // drop the references to buffers before reuse
	s.mu.Lock()
	if s.spare == nil && cap(taken) <= 1<<16 {
		s.spare = taken[:0]
	}
	s.written, s.err = n, err
	s.cond.Broadcast()
	s.mu.Unlock()
	return true
}

func unixNano(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func fromNano(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.Unix(0, v.Int64).UTC()
}

func nullBlob(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// Statements of the writer, prepared once. insertRow writes a whole new
// record (its first change, which carries the request buffers);
// updateRow the fields that change once a record exists (engine, times,
// result, IOPub, resubmission), and its output and result buffers only
// when the change says they are current (?14, ?17 flags): an evicted
// record's empty output must not overwrite what is on disk. The request's
// own fields (header, metadata, content, submission, client, queue) never
// change after the insert, and leaving them out of the update made a
// queued task's two row writes ~20 % cheaper (BenchmarkSQLiteWriterTwoRows,
// CPU 1.36 s → 0.95–1.13 s for 20,000 tasks).
const (
	insertRow = `INSERT OR REPLACE INTO tasks (msg_id, seq, header, metadata, content, buffers, submitted, client_uuid,
		client_ident, engine_uuid, queue, started, completed, received, done, resubmitted, result_header, result_metadata,
		result_content, result_buffers, execute_input, execute_result, error, stdout, stderr, req_lost, res_lost)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`
	updateRow = `UPDATE tasks SET engine_uuid=?2, started=?3, completed=?4, received=?5, done=?6, resubmitted=?7,
		result_header=?8, result_metadata=?9, result_content=?10, execute_input=?11, execute_result=?12, error=?13,
		stdout = CASE WHEN ?14 THEN ?15 ELSE stdout END, stderr = CASE WHEN ?14 THEN ?16 ELSE stderr END,
		result_buffers = CASE WHEN ?17 THEN ?18 ELSE result_buffers END, res_lost=?19
		WHERE msg_id=?1`
	deleteRow = `DELETE FROM tasks WHERE msg_id = ?`
)

func (s *sqliteStore) write(batch []*change) error {
	tx, err := s.db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	insert, update, del := tx.Stmt(s.insert), tx.Stmt(s.update), tx.Stmt(s.del)
	var deleted []string
	written := map[string]string{}
	for _, c := range batch {
		r := &c.rec
		if c.deleted {
			if _, err := del.Exec(r.MsgID); err != nil {
				return err
			}
			deleted = append(deleted, r.MsgID)
			continue
		}
		r.fillTimes()
		done := 0
		if c.done {
			done = 1
		}
		var reqBufs, resBufs []byte
		if c.resBufs {
			if resBufs, err = s.storeBuffers(r.MsgID, blobResult, r.ResultBuffers, written); err != nil {
				return err
			}
		}
		if c.reqBufs {
			if reqBufs, err = s.storeBuffers(r.MsgID, blobRequest, r.Buffers, written); err != nil {
				return err
			}
			_, err = insert.Exec(r.MsgID, c.seq, nullBlob(r.Header), nullBlob(r.Metadata), nullBlob(r.Content),
				reqBufs, unixNano(r.Submitted), r.ClientUUID, []byte(c.ident), r.EngineUUID, r.Queue,
				unixNano(r.Started), unixNano(r.Completed), unixNano(r.Received), done, r.Resubmitted,
				nullBlob(r.ResultHeader), nullBlob(r.ResultMetadata), nullBlob(r.ResultContent), nullBlob(resBufs),
				r.ExecuteInput, nullBlob(r.ExecuteResult), nullBlob(r.Error), r.Stdout, r.Stderr, c.reqLost, c.resLost)
		} else {
			_, err = update.Exec(r.MsgID, r.EngineUUID, unixNano(r.Started), unixNano(r.Completed),
				unixNano(r.Received), done, r.Resubmitted, nullBlob(r.ResultHeader), nullBlob(r.ResultMetadata),
				nullBlob(r.ResultContent), r.ExecuteInput, nullBlob(r.ExecuteResult), nullBlob(r.Error), c.output,
				r.Stdout, r.Stderr, c.resBufs, resBufs, c.resLost)
		}
		if err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.removeBlobs(deleted)
	return nil
}

// flush waits until every change queued before the call is committed,
// and returns the error of the last write.
func (s *sqliteStore) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) > 0 {
		select {
		case s.wake <- struct{}{}:
		default:
		}
		// The batch holding our changes is the one after the last
		// taken (queued), unless the writer is gone.
		target := s.queued + 1
		for s.written < target {
			select {
			case <-s.done:
				return errors.New("task database closed")
			default:
			}
			s.cond.Wait()
		}
	} else {
		// Changes already taken may still be in flight.
		for s.written < s.queued {
			s.cond.Wait()
		}
	}
	return s.err
}

// close writes what is pending and closes the file.
func (s *sqliteStore) close() error {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	<-s.done
	s.mu.Lock()
	s.cond.Broadcast()
	s.mu.Unlock()
	return s.db.Close()
}

// storedRecord is a row read back: the record and the hub's own fields.
type storedRecord struct {
	rec              TaskRecord
	seq              int64
	ident            string
	done             bool
	reqLost, resLost string
}

const metaColumns = `msg_id, seq, header, metadata, content, submitted, client_uuid, client_ident, engine_uuid, queue,
	started, completed, received, done, resubmitted, result_header, result_metadata, result_content,
	execute_input, execute_result, error, req_lost, res_lost`

func scanMeta(sc interface{ Scan(...any) error }, extra ...any) (*storedRecord, error) {
	var sr storedRecord
	r := &sr.rec
	var submitted, started, completed, received sql.NullInt64
	var clientUUID, engine, queue, resub, input, reqLost, resLost sql.NullString
	var ident, header, metadata, content, rheader, rmetadata, rcontent, result, errContent []byte
	var done int64
	dest := []any{&r.MsgID, &sr.seq, &header, &metadata, &content, &submitted, &clientUUID, &ident, &engine, &queue,
		&started, &completed, &received, &done, &resub, &rheader, &rmetadata, &rcontent,
		&input, &result, &errContent, &reqLost, &resLost}
	if err := sc.Scan(append(dest, extra...)...); err != nil {
		return nil, err
	}
	r.Header, r.Metadata, r.Content = header, metadata, content
	r.ResultHeader, r.ResultMetadata, r.ResultContent = rheader, rmetadata, rcontent
	r.ExecuteResult, r.Error = result, errContent
	sr.done = done != 0
	r.Submitted, r.Started, r.Completed, r.Received = fromNano(submitted), fromNano(started), fromNano(completed), fromNano(received)
	r.ClientUUID, r.EngineUUID, r.Queue, r.Resubmitted, r.ExecuteInput = clientUUID.String, engine.String, queue.String, resub.String, input.String
	sr.ident, sr.reqLost, sr.resLost = string(ident), reqLost.String, resLost.String
	return &sr, nil
}

// loadAll reads every record's small fields in submission order; buffers
// and output stay on disk (fetched when asked for).
func (s *sqliteStore) loadAll() ([]*storedRecord, error) {
	rows, err := s.db.Query(`SELECT ` + metaColumns + ` FROM tasks ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("task database %s: %w", s.path, err)
	}
	defer rows.Close()
	var out []*storedRecord
	for rows.Next() {
		sr, err := scanMeta(rows)
		if err != nil {
			return nil, fmt.Errorf("task database %s: %w", s.path, err)
		}
		out = append(out, sr)
	}
	return out, rows.Err()
}

// large reads the parts of a record that the hub may have dropped from
// memory: request and result buffers and output.
func (s *sqliteStore) large(msgID string) (reqBufs, resBufs [][]byte, stdout, stderr string, err error) {
	if err := s.flush(); err != nil {
		return nil, nil, "", "", err
	}
	var req, res []byte
	var out, errOut sql.NullString
	err = s.db.QueryRow(`SELECT buffers, result_buffers, stdout, stderr FROM tasks WHERE msg_id = ?`, msgID).Scan(&req, &res, &out, &errOut)
	if err != nil {
		return nil, nil, "", "", fmt.Errorf("task database %s: reading %s: %w", s.path, msgID, err)
	}
	if reqBufs, err = s.loadBuffers(msgID, blobRequest, req); err == nil {
		resBufs, err = s.loadBuffers(msgID, blobResult, res)
	}
	if err != nil {
		return nil, nil, "", "", fmt.Errorf("task database %s: record %s: %w", s.path, msgID, err)
	}
	return reqBufs, resBufs, out.String, errOut.String, nil
}

// packBuffers writes a list of frames as a count then each length and
// frame, all lengths as uvarints.
func packBuffers(bufs [][]byte) []byte {
	n := binary.MaxVarintLen64
	for _, b := range bufs {
		n += binary.MaxVarintLen64 + len(b)
	}
	out := make([]byte, 0, n)
	out = binary.AppendUvarint(out, uint64(len(bufs)))
	for _, b := range bufs {
		out = binary.AppendUvarint(out, uint64(len(b)))
		out = append(out, b...)
	}
	return out
}

func unpackBuffers(data []byte) ([][]byte, error) {
	if len(data) == 0 {
		return nil, nil
	}
	count, k := binary.Uvarint(data)
	if k <= 0 || count > uint64(len(data)) {
		return nil, errors.New("corrupt buffer list")
	}
	data = data[k:]
	out := make([][]byte, 0, count)
	for range count {
		l, k := binary.Uvarint(data)
		if k <= 0 || l > uint64(len(data)-k) {
			return nil, errors.New("corrupt buffer list")
		}
		out = append(out, data[k:k+int(l)])
		data = data[k+int(l):]
	}
	return out, nil
}
