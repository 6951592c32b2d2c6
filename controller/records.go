package controller

import (
	"fmt"
	"sort"
	"sync"
	"time"

	json "github.com/goccy/go-json"

	"github.com/ipp-hpc/ipp/internal/wire"
)

// maxRecords bounds the in-memory task-record store, like ipyparallel's
// DictDB: the oldest completed records are culled first.
const maxRecords = 100_000

// DefaultResultCacheBytes is the default Config.ResultCacheBytes. Results
// are kept for clients that ask again (result_request); the bytes of the
// oldest are dropped first, so a few huge results cannot pin gigabytes in
// the controller long after they were delivered.
const DefaultResultCacheBytes = 256 << 20

// record is ipyparallel's TaskRecord (what the hub remembers of a request
// for db/result queries). Request buffers are not kept: only
// resubmission would need them, and they can be large (a pushed array).
type record struct {
	msgID          string
	header         json.RawMessage
	metadata       json.RawMessage
	clientUUID     string
	clientIdent    string // routing identity of the requesting client
	engineUUID     string
	queue          string
	submitted      time.Time
	completed      bool
	received       time.Time
	resultHeader   json.RawMessage
	resultMetadata json.RawMessage
	resultContent  json.RawMessage
	resultBuffers  [][]byte
	// evicted is set when resultBuffers were dropped to respect the cache
	// limit; result_request then says so instead of returning a result
	// with its data missing.
	evicted        bool
	stdout, stderr string
	// outputCut is set once the output exceeded outputCap and the rest
	// was dropped.
	outputCut bool
	// restored marks a request a restarted controller took over from the
	// previous one (restore.go): its client's routing identity is unknown.
	restored bool
}

// bufferBytes is what a record counts against the result cache: its
// result buffers and its output. Only completed records count (and only
// they can be evicted); a running task's output is bounded by outputCap.
func (r *record) bufferBytes() int {
	if !r.completed {
		return 0
	}
	n := len(r.stdout) + len(r.stderr)
	for _, b := range r.resultBuffers {
		n += len(b)
	}
	return n
}

// outputCap bounds the output one record keeps: a task printing without
// end must not grow the controller without end. A quarter of the result
// cache, so several such tasks still fit.
func (rs *records) outputCap() int { return max(rs.maxBytes/4, 1<<20) }

// truncatedNote ends output the controller stopped keeping.
const truncatedNote = "\n[output truncated by the controller: it keeps at most a quarter of --result-cache per task]\n"

// records is the task-record store.
type records struct {
	mu       sync.Mutex
	byID     map[string]*record
	order    []string // submission order, for history and culling
	bufBytes int
	maxBytes int
}

func newRecords(maxBytes int64) *records {
	return &records{byID: map[string]*record{}, maxBytes: int(min(maxBytes, int64(^uint(0)>>1)))}
}

func clone(b []byte) json.RawMessage { return append(json.RawMessage(nil), b...) }

// add records a request; false if its msg_id is already taken by another
// request (a replay, or a broken client), which must then be refused: a
// second record would let the first one's reply complete the wrong task.
func (rs *records) add(msg *wire.Message, client []byte, engineUUID, queue string) bool {
	r := &record{
		msgID:       msg.Header.MsgID,
		header:      clone(msg.RawHeader),
		metadata:    clone(msg.Metadata),
		clientUUID:  msg.Header.Session,
		clientIdent: string(client),
		engineUUID:  engineUUID,
		queue:       queue,
		submitted:   time.Now(),
	}
	if t, err := wire.ParseDate(msg.Header.Date); err == nil {
		r.submitted = t
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if old, ok := rs.byID[r.msgID]; ok {
		if old.header != nil {
			return false
		}
		// Output arrived first and made a bare record.
		r.stdout, r.stderr = old.stdout, old.stderr
	} else {
		rs.order = append(rs.order, r.msgID)
	}
	rs.byID[r.msgID] = r
	rs.cull()
	return true
}

// assign notes the engine a load-balanced task was sent to.
func (rs *records) assign(msgID, engineUUID string) {
	rs.mu.Lock()
	if r, ok := rs.byID[msgID]; ok {
		r.engineUUID = engineUUID
	}
	rs.mu.Unlock()
}

// complete stores the reply to a pending request. It refuses (false) a
// reply that was not expected: no such request, already answered, sent to
// another engine or by another client. Nothing is overwritten then.
func (rs *records) complete(reply *wire.Message, engineUUID string, client []byte) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r, ok := rs.byID[reply.Parent.MsgID]
	if !ok || r.header == nil || r.completed || r.engineUUID != engineUUID || (r.clientIdent != string(client) && !r.restored) {
		return false
	}
	r.completed = true
	r.received = time.Now()
	if engineUUID != "" {
		r.engineUUID = engineUUID
	}
	r.resultHeader = clone(reply.RawHeader)
	r.resultMetadata = clone(reply.Metadata)
	r.resultContent = clone(reply.Content)
	r.resultBuffers = reply.Buffers
	rs.bufBytes += r.bufferBytes() // counts the output so far too
	rs.cull()
	return true
}

// fail completes a pending record with an error, when its engine died.
func (rs *records) fail(msgID, ename, evalue string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r, ok := rs.byID[msgID]
	if !ok || r.completed {
		return
	}
	r.completed = true
	r.received = time.Now()
	r.resultContent, _ = json.Marshal(errorContent(ename, evalue))
	r.resultMetadata = json.RawMessage(`{"status": "error"}`)
	rs.bufBytes += r.bufferBytes()
}

func (rs *records) stream(msgID, name, text string) {
	if msgID == "" {
		return
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r, ok := rs.byID[msgID]
	if !ok {
		r = &record{msgID: msgID}
		rs.byID[msgID] = r
		rs.order = append(rs.order, msgID)
	}
	if r.evicted || r.outputCut {
		return
	}
	if len(r.stdout)+len(r.stderr)+len(text) > rs.outputCap() {
		text, r.outputCut = truncatedNote, true
	}
	if name == "stderr" {
		r.stderr += text
	} else {
		r.stdout += text
	}
	if r.completed {
		// Output often arrives after the reply.
		rs.bufBytes += len(text)
		rs.cull()
	}
}

// cull drops the oldest completed records beyond maxRecords, and the
// buffers of the oldest results beyond maxBytes (down to 9/10 of each, so
// it does not run on every add); mu held.
func (rs *records) cull() {
	if rs.bufBytes > rs.maxBytes {
		for _, id := range rs.order {
			if rs.bufBytes <= rs.maxBytes*9/10 {
				break
			}
			if r, ok := rs.byID[id]; ok && !r.evicted && r.bufferBytes() > 0 {
				rs.bufBytes -= r.bufferBytes()
				r.resultBuffers, r.stdout, r.stderr, r.evicted = nil, "", "", true
			}
		}
	}
	if len(rs.byID) <= maxRecords {
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
		if (r.completed || r.header == nil) && len(rs.byID) > maxRecords*9/10 {
			rs.bufBytes -= r.bufferBytes()
			delete(rs.byID, id)
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
		if r, ok := rs.byID[id]; ok && r.header != nil {
			out = append(out, id)
		}
	}
	return out
}

func (rs *records) results(ids []string, statusOnly bool) (map[string]any, [][]byte, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	content := map[string]any{"status": "ok"}
	pending, completed := []string{}, []string{}
	for _, id := range ids {
		r, ok := rs.byID[id]
		if !ok || r.header == nil {
			return nil, nil, fmt.Errorf("No such message: %s", id)
		}
		if r.evicted && !statusOnly {
			return nil, nil, fmt.Errorf("result of %s is no longer kept: the controller keeps the newest %d bytes of results (--result-cache)", id, rs.maxBytes)
		}
		if r.completed {
			completed = append(completed, id)
		} else {
			pending = append(pending, id)
		}
	}
	content["pending"], content["completed"] = pending, completed
	if statusOnly {
		return content, nil, nil
	}
	sorted := append([]string(nil), completed...)
	sort.Strings(sorted)
	var buffers [][]byte
	for _, id := range sorted {
		r := rs.byID[id]
		// Relays store frames unread; one that is not JSON must not make
		// the whole reply unencodable (the client would wait forever).
		for _, raw := range []*json.RawMessage{&r.header, &r.metadata, &r.resultHeader, &r.resultMetadata, &r.resultContent} {
			if len(*raw) > 0 && !json.Valid(*raw) {
				*raw = json.RawMessage("null")
			}
		}
		content[id] = map[string]any{
			"header":          r.header,
			"metadata":        r.metadata,
			"result_header":   r.resultHeader,
			"result_metadata": r.resultMetadata,
			"result_content":  r.resultContent,
			"received":        wire.FormatDate(r.received),
			"io":              map[string]any{"stdout": r.stdout, "stderr": r.stderr, "execute_input": nil, "execute_result": nil, "error": nil},
		}
		buffers = append(buffers, r.resultBuffers...)
	}
	return content, buffers, nil
}

func (rs *records) purge(ids []string) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, id := range ids {
		r, ok := rs.byID[id]
		if !ok {
			return fmt.Errorf("No such message: %s", id)
		}
		if !r.completed && r.header != nil {
			return fmt.Errorf("Can't purge pending message: %s", id)
		}
	}
	for _, id := range ids {
		rs.bufBytes -= rs.byID[id].bufferBytes()
		delete(rs.byID, id)
	}
	rs.compact()
	return nil
}

func (rs *records) purgeAll() {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for id, r := range rs.byID {
		if r.completed {
			rs.bufBytes -= r.bufferBytes()
			delete(rs.byID, id)
		}
	}
	rs.compact()
}

func (rs *records) purgeEngine(uuid string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for id, r := range rs.byID {
		if r.completed && r.engineUUID == uuid {
			rs.bufBytes -= r.bufferBytes()
			delete(rs.byID, id)
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
		if r != nil && r.engineUUID == uuid && r.queue == queue && r.completed == done {
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
