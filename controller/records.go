package controller

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	json "github.com/goccy/go-json"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// DefaultResultCacheBytes is the default Config.ResultCacheBytes. Results
// are kept for clients that ask again (result_request); the bytes of the
// oldest are dropped first, so a few huge results cannot pin gigabytes in
// the controller long after they were delivered.
const DefaultResultCacheBytes = 256 << 20

// record is what the hub keeps of one request: the TaskRecord and the
// hub's own bookkeeping around it.
type record struct {
	TaskRecord
	seq         int64  // submission order, kept on disk
	clientIdent string // routing identity of the requesting client
	done        bool   // answered, or failed by the hub
	// bare is a record made by output whose request the hub has not
	// seen (yet): it is no task of anyone's.
	bare bool
	// evicted is set when the buffers and output were dropped from memory
	// to respect the cache limit. With a sqlite store they are still on
	// disk; otherwise result_request says they are gone instead of
	// returning a result with its data missing.
	evicted bool
	// stripped is a finished record of a --db none controller: only what
	// the hub's checks need is left.
	stripped bool
	// outputCut is set once the output exceeded outputCap and the rest
	// was dropped.
	outputCut bool
	// reqLost and resLost say why the request or result buffers were
	// not kept at all (too large), for the errors of resubmission and
	// result_request; "" when they were.
	reqLost, resLost string
	// restored marks a request a restarted controller took over from the
	// previous one (restore.go): its client's routing identity is unknown.
	restored bool
}

// bufferBytes is what a record counts against the result cache: its
// request and result buffers and its output. Only finished records count
// (and only they can be evicted); a running task's output is bounded by
// outputCap, its request by the queue limits.
func (r *record) bufferBytes() int {
	if !r.done || r.evicted {
		return 0
	}
	n := len(r.Stdout) + len(r.Stderr)
	for _, b := range r.ResultBuffers {
		n += len(b)
	}
	for _, b := range r.Buffers {
		n += len(b)
	}
	return n
}

// outputCap bounds the output one record keeps: a task printing without
// end must not grow the controller without end. A quarter of the result
// cache, so several such tasks still fit.
func (rs *records) outputCap() int { return max(rs.maxBytes/4, 1<<20) }

// bufferCap bounds the buffers of one request, and with a store of one
// result, that the controller keeps: a quarter of the result cache, as
// for output, and never beyond what SQLite stores in one blob (1e9
// bytes). Larger ones are forwarded but not kept, and the record says so.
func (rs *records) bufferCap() int { return min(rs.outputCap(), 512<<20) }

// truncatedNote ends output the controller stopped keeping.
const truncatedNote = "\n[output truncated by the controller: it keeps at most a quarter of --result-cache per task]\n"

// errNoDB answers queries that need records a --db none controller does
// not keep.
var errNoDB = errors.New("the controller keeps no task records after delivery (it runs with --db none); " +
	"start it with --db sqlite or --db memory to query or resubmit finished tasks")

// records is the task-record store: every record's small fields in
// memory (at most maxRecords of them), buffers and output in memory up to
// maxBytes, and, with a sqlite store, everything written behind to disk.
type records struct {
	mu         sync.Mutex
	byID       map[string]*record
	order      []string // submission order, for history and culling
	seq        int64
	bufBytes   int
	maxBytes   int
	maxRecords int
	mode       string       // DBMemory, DBSQLite or DBNone
	store      *sqliteStore // with DBSQLite
}

// newRecords makes an in-memory store (DBMemory); the controller sets
// mode, store and maxRecords for the other backends.
func newRecords(maxBytes int64) *records {
	return &records{byID: map[string]*record{}, maxBytes: int(min(maxBytes, int64(^uint(0)>>1))),
		maxRecords: DefaultDBMaxRecords, mode: DBMemory}
}

func clone(b []byte) json.RawMessage { return append(json.RawMessage(nil), b...) }

// persist queues r's current state for the store; buffers are written
// when they are new (reqBufs, resBufs). mu held.
func (rs *records) persist(r *record, reqBufs, resBufs bool) {
	if rs.store == nil || r.bare {
		return
	}
	rs.store.queue(&change{rec: r.TaskRecord, seq: r.seq, ident: r.clientIdent, done: r.done,
		output: !r.evicted, reqBufs: reqBufs, resBufs: resBufs, reqLost: r.reqLost, resLost: r.resLost})
}

// forget queues the deletion of id from the store. mu held.
func (rs *records) forget(id string) {
	if rs.store != nil {
		rs.store.queue(&change{rec: TaskRecord{MsgID: id}, deleted: true})
	}
}

// keep returns what a record keeps of a request's or result's buffers
// (what names them in the error): the buffers in Go memory, copied from
// libzmq's when the mux relay holds them (relay.go), or, over bufferCap,
// nothing and why. Larger ones are forwarded without a copy and never
// kept, neither in memory nor on disk.
func (rs *records) keep(bufs [][]byte, what string) ([][]byte, string) {
	if n := frameBytes(bufs); n > int64(rs.bufferCap()) {
		return nil, fmt.Sprintf("its %s of %d bytes were over the %d bytes the controller keeps per task (a quarter of --result-cache)", what, n, rs.bufferCap())
	}
	return transport.OwnAll(bufs), ""
}

// add records a request; false if its msg_id is already taken by another
// request (a replay, or a broken client), which must then be refused: a
// second record would let the first one's reply complete the wrong task.
func (rs *records) add(msg *wire.Message, client []byte, engineUUID, queue string) bool {
	r := &record{
		TaskRecord: TaskRecord{
			MsgID:      msg.Header.MsgID,
			Header:     clone(msg.RawHeader),
			Metadata:   clone(msg.Metadata),
			Content:    clone(msg.Content),
			Buffers:    msg.Buffers,
			ClientUUID: msg.Header.Session,
			EngineUUID: engineUUID,
			Queue:      queue,
			Submitted:  time.Now().UTC(),
		},
		clientIdent: string(client),
	}
	if t, err := wire.ParseDate(msg.Header.Date); err == nil {
		r.Submitted = t
	}
	r.Buffers, r.reqLost = rs.keep(msg.Buffers, "request buffers")
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if old, ok := rs.byID[r.MsgID]; ok {
		if !old.bare {
			return false
		}
		// Output arrived first and made a bare record.
		r.Stdout, r.Stderr, r.outputCut = old.Stdout, old.Stderr, old.outputCut
		r.seq = old.seq
	} else {
		rs.seq++
		r.seq = rs.seq
		rs.order = append(rs.order, r.MsgID)
	}
	rs.byID[r.MsgID] = r
	rs.persist(r, true, false)
	rs.cull()
	return true
}

// assign notes the engine a load-balanced task was sent to. The store
// learns it with the reply: a row write per assignment would cost a
// third of the writer's work for a field that a restore does not need
// (a task in flight then is failed whatever its engine).
func (rs *records) assign(msgID, engineUUID string) {
	rs.mu.Lock()
	if r, ok := rs.byID[msgID]; ok && !r.done {
		r.EngineUUID = engineUUID
		// Written so that a restored controller knows which engine to
		// wait for; a short task's assignment merges with its reply in
		// the writer's batch.
		rs.persist(r, false, false)
	}
	rs.mu.Unlock()
}

// complete stores the reply to a pending request. It refuses (false) a
// reply that was not expected: no such request, already answered, sent to
// another engine or by another client. Nothing is overwritten then.
func (rs *records) complete(reply *wire.Message, engineUUID string, client []byte) bool {
	// Before the lock: the copy of a large result must not stall the
	// other users of the records.
	bufs, lost := rs.keep(reply.Buffers, "result buffers")
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r, ok := rs.byID[reply.Parent.MsgID]
	if !ok || r.bare || r.done || r.EngineUUID != engineUUID || (r.clientIdent != string(client) && !r.restored) {
		return false
	}
	r.done = true
	r.Received = time.Now().UTC()
	if engineUUID != "" {
		r.EngineUUID = engineUUID
	}
	r.ResultHeader = clone(reply.RawHeader)
	r.ResultMetadata = clone(reply.Metadata)
	r.ResultContent = clone(reply.Content)
	r.ResultBuffers, r.resLost = bufs, lost
	if rs.finish(r) {
		rs.persist(r, false, r.resLost == "")
		rs.bufBytes += r.bufferBytes() // counts the output so far too
		rs.cull()
	}
	return true
}

// finish ends a record's life as a task; false when the backend keeps
// nothing of it (--db none), which strips it. mu held.
func (rs *records) finish(r *record) bool {
	if rs.mode != DBNone {
		return true
	}
	r.stripped = true
	r.TaskRecord = TaskRecord{MsgID: r.MsgID, EngineUUID: r.EngineUUID, Queue: r.Queue, ClientUUID: r.ClientUUID,
		Submitted: r.Submitted, Received: r.Received}
	return false
}

// fail completes a pending record with an error, when its engine died or
// the scheduler gave up on it.
func (rs *records) fail(msgID, ename, evalue string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r, ok := rs.byID[msgID]
	if !ok || r.done || r.bare {
		return
	}
	rs.failLocked(r, ename, evalue)
	if rs.finish(r) {
		rs.persist(r, false, false)
		rs.bufBytes += r.bufferBytes()
		rs.cull()
	}
}

func (rs *records) failLocked(r *record, ename, evalue string) {
	r.done = true
	now := time.Now().UTC()
	r.Received, r.Completed = now, now
	r.ResultHeader = failedReplyHeader(r.Header, now)
	r.ResultContent, _ = json.Marshal(protocol.NewError(ename, evalue))
	r.ResultMetadata = json.RawMessage(`{"status": "error"}`)
}

func (rs *records) stream(msgID, name, text string) {
	if msgID == "" || rs.mode == DBNone {
		return
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r, ok := rs.byID[msgID]
	if !ok {
		rs.seq++
		r = &record{TaskRecord: TaskRecord{MsgID: msgID}, bare: true, seq: rs.seq}
		rs.byID[msgID] = r
		rs.order = append(rs.order, msgID)
	}
	if r.evicted || r.outputCut {
		return
	}
	if len(r.Stdout)+len(r.Stderr)+len(text) > rs.outputCap() {
		text, r.outputCut = truncatedNote, true
	}
	if name == "stderr" {
		r.Stderr += text
	} else {
		r.Stdout += text
	}
	if r.done {
		// Output often arrives after the reply. A running task's output
		// is written with its reply: rewriting the whole output at
		// every flush while it grows would cost quadratic disk writes,
		// and a restore fails a task that was running anyway.
		rs.persist(r, false, false)
		rs.bufBytes += len(text)
		rs.cull()
	}
}

// setResubmitted notes on the original record the msg_id of its
// resubmission.
func (rs *records) setResubmitted(msgID, newID string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if r, ok := rs.byID[msgID]; ok && !r.bare {
		r.Resubmitted = newID
		rs.persist(r, false, false)
	}
}

// cull drops the oldest finished records beyond maxRecords (from the
// store too), and the buffers of the oldest results beyond maxBytes from
// memory (down to 9/10 of each, so it does not run on every add); mu
// held.
func (rs *records) cull() {
	if rs.bufBytes > rs.maxBytes {
		for _, id := range rs.order {
			if rs.bufBytes <= rs.maxBytes*9/10 {
				break
			}
			if r, ok := rs.byID[id]; ok && r.bufferBytes() > 0 {
				rs.bufBytes -= r.bufferBytes()
				r.Buffers, r.ResultBuffers, r.Stdout, r.Stderr, r.evicted = nil, nil, "", "", true
			}
		}
	}
	if len(rs.byID) <= rs.maxRecords {
		return
	}
	kept := rs.order[:0]
	for _, id := range rs.order {
		r, ok := rs.byID[id]
		if !ok {
			continue
		}
		// Bare records (output whose request is unknown: late output of
		// a purged task, or a parent id nobody sent) go too, or they
		// would pile up for good.
		if (r.done || r.bare) && len(rs.byID) > rs.maxRecords*9/10 {
			rs.bufBytes -= r.bufferBytes()
			delete(rs.byID, id)
			rs.forget(id)
			continue
		}
		kept = append(kept, id)
	}
	rs.order = kept
}

func (rs *records) history() []string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := make([]string, 0, len(rs.order))
	for _, id := range rs.order {
		if r, ok := rs.byID[id]; ok && !r.bare {
			out = append(out, id)
		}
	}
	return out
}

// copyOf is a copy of r to read outside the lock; the hub never changes
// the byte slices it shares with it in place.
type copyOf struct {
	TaskRecord
	evicted bool
}

// full fills the parts of c that were evicted to disk. Memory without a
// store has nothing to fill them from; ok is false then.
func (rs *records) full(c *copyOf) (ok bool, err error) {
	if !c.evicted {
		return true, nil
	}
	if rs.store == nil {
		return false, nil
	}
	c.Buffers, c.ResultBuffers, c.Stdout, c.Stderr, err = rs.store.large(c.MsgID)
	if err != nil {
		return false, err
	}
	c.evicted = false
	return true, nil
}

func (rs *records) results(ids []string, statusOnly bool) (map[string]any, [][]byte, error) {
	content := map[string]any{"status": "ok"}
	pending, completed := []string{}, []string{}
	var done []copyOf
	rs.mu.Lock()
	for _, id := range ids {
		r, ok := rs.byID[id]
		if !ok || r.bare {
			rs.mu.Unlock()
			return nil, nil, fmt.Errorf("No such message: %s", id)
		}
		if !r.done {
			pending = append(pending, id)
			continue
		}
		completed = append(completed, id)
		if statusOnly {
			continue
		}
		if r.stripped {
			rs.mu.Unlock()
			return nil, nil, fmt.Errorf("result of %s was delivered and not kept: %w", id, errNoDB)
		}
		if r.resLost != "" {
			rs.mu.Unlock()
			return nil, nil, fmt.Errorf("result of %s was not kept: %s", id, r.resLost)
		}
		if r.evicted && rs.store == nil {
			rs.mu.Unlock()
			return nil, nil, fmt.Errorf("result of %s is no longer kept: the controller keeps the newest %d bytes of results (--result-cache)", id, rs.maxBytes)
		}
		done = append(done, copyOf{r.TaskRecord, r.evicted})
	}
	rs.mu.Unlock()
	content["pending"], content["completed"] = pending, completed
	if statusOnly {
		return content, nil, nil
	}
	sort.Slice(done, func(i, j int) bool { return done[i].MsgID < done[j].MsgID })
	var buffers [][]byte
	for i := range done {
		c := &done[i]
		if _, err := rs.full(c); err != nil {
			return nil, nil, fmt.Errorf("result of %s: %w", c.MsgID, err)
		}
		// Relays store frames unread; one that is not JSON must not make
		// the whole reply unencodable (the client would wait forever).
		for _, raw := range []*json.RawMessage{&c.Header, &c.Metadata, &c.ResultHeader, &c.ResultMetadata, &c.ResultContent, &c.ExecuteResult, &c.Error} {
			if len(*raw) > 0 && !json.Valid(*raw) {
				*raw = json.RawMessage("null")
			}
		}
		io := map[string]any{"stdout": c.Stdout, "stderr": c.Stderr, "execute_input": nil, "execute_result": nil, "error": nil}
		if c.ExecuteInput != "" {
			io["execute_input"] = c.ExecuteInput
		}
		if len(c.ExecuteResult) > 0 {
			io["execute_result"] = c.ExecuteResult
		}
		if len(c.Error) > 0 {
			io["error"] = c.Error
		}
		content[c.MsgID] = map[string]any{
			"header":          c.Header,
			"metadata":        c.Metadata,
			"result_header":   c.ResultHeader,
			"result_metadata": c.ResultMetadata,
			"result_content":  c.ResultContent,
			"received":        wire.FormatDate(c.Received),
			"io":              io,
		}
		buffers = append(buffers, c.ResultBuffers...)
	}
	return content, buffers, nil
}

// fillTimes derives the reply's dates (metadata.started, header.date) the
// first time they are read: the hub does not parse replies it forwards.
// Completed falls back to Received.
func (r *TaskRecord) fillTimes() {
	if r.Started.IsZero() && len(r.ResultMetadata) > 0 {
		var md struct {
			Started string `json:"started"`
		}
		if json.Unmarshal(r.ResultMetadata, &md) == nil && md.Started != "" {
			if t, err := wire.ParseDate(md.Started); err == nil {
				r.Started = t
			}
		}
	}
	if r.Completed.IsZero() && len(r.ResultHeader) > 0 {
		var h struct {
			Date string `json:"date"`
		}
		if json.Unmarshal(r.ResultHeader, &h) == nil && h.Date != "" {
			if t, err := wire.ParseDate(h.Date); err == nil {
				r.Completed = t
			}
		}
	}
	if r.Completed.IsZero() {
		// A reply without a date (not from ipyparallel's session) is
		// still complete: queries on completed must see it.
		r.Completed = r.Received
	}
}

// largeKeys are the record fields that an evicted record keeps on disk
// only (records.full reads them back).
var largeKeys = []string{"buffers", "result_buffers", "stdout", "stderr"}

// find returns copies of the records for which match is true, in
// submission order. An evicted record's buffers and output are read back
// from disk (a memory backend's evicted records have none) only when
// needed: before matching when the query looks at them (matchLarge),
// after it for the records found when the caller wants them (withLarge),
// so that a query over a big database does not read every result. match
// gets the record, not its Doc, so that a query builds only the part of
// the document it looks at; it runs outside the hub's lock.
func (rs *records) find(match func(r *TaskRecord) bool, matchLarge, withLarge bool) ([]*TaskRecord, error) {
	if rs.mode == DBNone {
		return nil, errNoDB
	}
	rs.mu.Lock()
	all := make([]copyOf, 0, len(rs.order))
	for _, id := range rs.order {
		if r, ok := rs.byID[id]; ok && !r.bare {
			all = append(all, copyOf{r.TaskRecord, r.evicted})
		}
	}
	rs.mu.Unlock()
	var out []*TaskRecord
	for i := range all {
		c := &all[i]
		if matchLarge {
			if _, err := rs.full(c); err != nil {
				return nil, err
			}
		}
		c.fillTimes()
		if match != nil && !match(&c.TaskRecord) {
			continue
		}
		if withLarge {
			if _, err := rs.full(c); err != nil {
				return nil, err
			}
		}
		out = append(out, &c.TaskRecord)
	}
	return out, nil
}

// get returns a copy of one record, complete as find's are; an error
// when it is unknown, not kept (--db none), or its buffers were evicted
// without a store to read them back from (resubmission needs them).
func (rs *records) get(msgID string) (TaskRecord, error) {
	if rs.mode == DBNone {
		return TaskRecord{}, errNoDB
	}
	rs.mu.Lock()
	r, ok := rs.byID[msgID]
	if !ok || r.bare {
		rs.mu.Unlock()
		return TaskRecord{}, fmt.Errorf("No such message: %s", msgID)
	}
	c := copyOf{r.TaskRecord, r.evicted}
	reqLost := r.reqLost
	rs.mu.Unlock()
	if reqLost != "" {
		return TaskRecord{}, fmt.Errorf("task %s cannot be sent again: %s", msgID, reqLost)
	}
	ok, err := rs.full(&c)
	if err != nil {
		return TaskRecord{}, err
	}
	if !ok {
		return TaskRecord{}, fmt.Errorf("the buffers of %s are no longer kept: the controller keeps the newest %d bytes (--result-cache); "+
			"--db sqlite keeps them on disk", msgID, rs.maxBytes)
	}
	c.fillTimes()
	return c.TaskRecord, nil
}

func (rs *records) purge(ids []string) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, id := range ids {
		r, ok := rs.byID[id]
		if !ok {
			return fmt.Errorf("No such message: %s", id)
		}
		if !r.done && !r.bare {
			return fmt.Errorf("Can't purge pending message: %s", id)
		}
	}
	for _, id := range ids {
		rs.drop(id)
	}
	rs.compact()
	return nil
}

// drop deletes a record from memory and the store; mu held.
func (rs *records) drop(id string) {
	if r, ok := rs.byID[id]; ok {
		rs.bufBytes -= r.bufferBytes()
		delete(rs.byID, id)
		rs.forget(id)
	}
}

func (rs *records) purgeAll() {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for id, r := range rs.byID {
		if r.done || r.bare {
			rs.drop(id)
		}
	}
	rs.compact()
}

func (rs *records) purgeEngine(uuid string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for id, r := range rs.byID {
		if r.done && r.EngineUUID == uuid {
			rs.drop(id)
		}
	}
	rs.compact()
}

// compact drops purged ids from the order; mu held.
func (rs *records) compact() {
	kept := rs.order[:0]
	for _, id := range rs.order {
		if _, ok := rs.byID[id]; ok {
			kept = append(kept, id)
		}
	}
	rs.order = kept
}

func (rs *records) filter(uuid, queue string, done bool) []string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var out []string
	for _, id := range rs.order {
		r := rs.byID[id]
		if r != nil && r.EngineUUID == uuid && r.Queue == queue && r.done == done {
			out = append(out, id)
		}
	}
	return out
}

func (rs *records) completedOn(uuid string) []string {
	return append(rs.filter(uuid, "mux", true), rs.filter(uuid, "task", true)...)
}

func (rs *records) runningTasks(uuid string) []string { return rs.filter(uuid, "task", false) }

func (rs *records) completedTasks(uuid string) int { return len(rs.filter(uuid, "task", true)) }

// restore loads the store's records (every record's small fields;
// buffers and output stay on disk until asked for) and returns how many
// had finished and copies of those that had not: the controller's restore
// (restore.go) completes them from their engines' held replies or fails
// them. mu is not held: the controller is not serving yet.
func (rs *records) restore() (finished int, inflight []*TaskRecord, err error) {
	rows, err := rs.store.loadAll()
	if err != nil {
		return 0, nil, err
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, sr := range rows {
		r := &record{TaskRecord: sr.rec, seq: sr.seq, clientIdent: sr.ident, done: sr.done, evicted: true,
			reqLost: sr.reqLost, resLost: sr.resLost}
		if _, dup := rs.byID[r.MsgID]; dup {
			continue
		}
		rs.byID[r.MsgID] = r
		rs.order = append(rs.order, r.MsgID)
		rs.seq = max(rs.seq, r.seq)
		if r.done {
			finished++
			continue
		}
		r.restored = true
		tr := r.TaskRecord
		inflight = append(inflight, &tr)
	}
	rs.cull()
	return finished, inflight, nil
}
