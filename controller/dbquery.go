package controller

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// The db_request query language is the subset of MongoDB's that
// ipyparallel's DictDB and SQLiteDB accept, matched against
// TaskRecord.Doc():
//
//	{"msg_id": {"$in": [...]}, "completed": {"$ne": null}}
//	{"submitted": {"$gte": "2026-12-06T10:00:00.123Z"}}
//	{"engine_uuid": "..."}                      (equality)
//	{"header.msg_type": "apply_request"}        (a path into a JSON field)
//
// Where ipyparallel's backends disagree or fail, Mongo's rules win: an
// ordering operator never matches a null or a value of another kind (DictDB
// raises TypeError on a pending record's completed date, SQLite says
// false), and $gt means greater (DictDB's is $lt). ISO date strings in the
// query are dates, as the Python hub's extract_dates makes them, and are
// compared as dates with the record's date fields and with date strings
// inside header fields.

// dbOps are the operators a condition may use, for error messages.
var dbOps = []string{"$lt", "$gt", "$lte", "$gte", "$eq", "$ne", "$in", "$nin", "$all", "$mod", "$exists"}

// dbQuery is a parsed query: a record matches when every condition does.
type dbQuery struct {
	// fields are the record keys the query and its branches look at.
	fields []string
	conds  []dbCond
	// and must all match, or holds groups of which one each must match,
	// nor must not match.
	and, nor []*dbQuery
	or       [][]*dbQuery
}

// dbCond tests the value at path (a record key, then keys or list indexes
// into a JSON field) with every op.
type dbCond struct {
	path []string
	ops  []dbOp
}

type dbOp struct {
	name string
	arg  any
}

// dbQueryError is a query the controller cannot run; it is answered with
// an error the client raises (RemoteError ValueError), never a hub_error.
type dbQueryError struct{ msg string }

func (e *dbQueryError) Error() string { return e.msg }

func queryErr(format string, a ...any) error {
	return &dbQueryError{msg: "db_request query: " + fmt.Sprintf(format, a...)}
}

// parseDBQuery reads a db_request query; null or absent means every record.
func parseDBQuery(raw json.RawMessage) (*dbQuery, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return &dbQuery{}, nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, queryErr("not JSON: %v", err)
	}
	return compileQuery(v)
}

func compileQuery(v any) (*dbQuery, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, queryErr("a query is an object of conditions keyed by record field, not %s", kindOf(v))
	}
	q := &dbQuery{}
	for _, key := range sortedKeys(m) {
		val := m[key]
		switch key {
		case "$and", "$or", "$nor":
			list, ok := val.([]any)
			if !ok || len(list) == 0 {
				return nil, queryErr("%s takes a non-empty list of queries", key)
			}
			var subs []*dbQuery
			for _, item := range list {
				sub, err := compileQuery(item)
				if err != nil {
					return nil, err
				}
				subs = append(subs, sub)
			}
			for _, sub := range subs {
				q.need(sub.fields...)
			}
			switch key {
			case "$and":
				q.and = append(q.and, subs...)
			case "$or":
				q.or = append(q.or, subs)
			case "$nor":
				q.nor = append(q.nor, subs...)
			}
			continue
		}
		if strings.HasPrefix(key, "$") {
			return nil, queryErr("unknown top-level operator %q (supported: $and, $or, $nor, or record field names)", key)
		}
		path := strings.Split(key, ".")
		if !slices.Contains(recordKeys, path[0]) {
			return nil, queryErr("%q is not a task record field (fields: %s; a dotted path reaches into header, metadata, content and the result fields)", path[0], strings.Join(recordKeys, ", "))
		}
		q.need(path[0])
		c := dbCond{path: path}
		ops, isOps, err := operators(key, val)
		if err != nil {
			return nil, err
		}
		if isOps {
			c.ops = ops
		} else {
			c.ops = []dbOp{{name: "$eq", arg: queryValue(val)}}
		}
		q.conds = append(q.conds, c)
	}
	return q, nil
}

// operators reads {"$op": arg, ...}. An object without "$" keys is a plain
// value compared for equality (isOps false); one that mixes both is
// refused, as Mongo does.
func operators(key string, val any) ([]dbOp, bool, error) {
	m, ok := val.(map[string]any)
	if !ok || len(m) == 0 {
		return nil, false, nil
	}
	dollar := 0
	for k := range m {
		if strings.HasPrefix(k, "$") {
			dollar++
		}
	}
	if dollar == 0 {
		return nil, false, nil
	}
	if dollar != len(m) {
		return nil, false, queryErr("the condition on %q mixes operators and plain keys", key)
	}
	var ops []dbOp
	for _, name := range sortedKeys(m) {
		arg := queryValue(m[name])
		if !slices.Contains(dbOps, name) {
			return nil, false, queryErr("unknown operator %q on %q (supported: %s)", name, key, strings.Join(dbOps, " "))
		}
		switch name {
		case "$in", "$nin", "$all":
			if _, ok := arg.([]any); !ok {
				return nil, false, queryErr("%s on %q takes a list, not %s", name, key, kindOf(arg))
			}
		case "$mod":
			l, ok := arg.([]any)
			if !ok || len(l) != 2 {
				return nil, false, queryErr("$mod on %q takes [divisor, remainder]", key)
			}
			d, ok1 := l[0].(float64)
			_, ok2 := l[1].(float64)
			if !ok1 || !ok2 || d == 0 {
				return nil, false, queryErr("$mod on %q takes two numbers, the divisor not zero", key)
			}
		case "$exists":
			if _, ok := arg.(bool); !ok {
				return nil, false, queryErr("$exists on %q takes true or false, not %s", key, kindOf(arg))
			}
		}
		ops = append(ops, dbOp{name: name, arg: arg})
	}
	return ops, true, nil
}

// isoDate is the date pattern of the Python hub's extract_dates.
var isoDate = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:?\d{2})?$`)

// queryValue turns ISO date strings in a query value into times.
func queryValue(v any) any {
	switch x := v.(type) {
	case string:
		if t, ok := asDate(x); ok {
			return t
		}
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = queryValue(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = queryValue(e)
		}
		return out
	}
	return v
}

func asDate(s string) (time.Time, bool) {
	if !isoDate.MatchString(s) {
		return time.Time{}, false
	}
	t, err := wire.ParseDate(s)
	return t, err == nil
}

func (q *dbQuery) need(keys ...string) {
	for _, k := range keys {
		if !slices.Contains(q.fields, k) {
			q.fields = append(q.fields, k)
		}
	}
}

// matchRecord tells whether r satisfies the query, looking only at the
// fields it names.
func (q *dbQuery) matchRecord(r *TaskRecord) bool { return q.match(r.DocOf(q.fields)) }

// match tells whether doc (a TaskRecord.Doc()) satisfies the query.
func (q *dbQuery) match(doc map[string]any) bool {
	for _, c := range q.conds {
		v := lookup(doc, c.path)
		for _, o := range c.ops {
			if !o.test(v) {
				return false
			}
		}
	}
	for _, sub := range q.and {
		if !sub.match(doc) {
			return false
		}
	}
	for _, group := range q.or {
		if !slices.ContainsFunc(group, func(sub *dbQuery) bool { return sub.match(doc) }) {
			return false
		}
	}
	for _, sub := range q.nor {
		if sub.match(doc) {
			return false
		}
	}
	return true
}

// lookup follows path into doc; nil when any step is missing.
func lookup(doc map[string]any, path []string) any {
	var v any = doc
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func (o dbOp) test(v any) bool {
	switch o.name {
	case "$eq":
		return equal(v, o.arg)
	case "$ne":
		return !equal(v, o.arg)
	case "$lt", "$lte", "$gt", "$gte":
		c, ok := compare(v, o.arg)
		if !ok {
			return false
		}
		switch o.name {
		case "$lt":
			return c < 0
		case "$lte":
			return c <= 0
		case "$gt":
			return c > 0
		default:
			return c >= 0
		}
	case "$in":
		return contains(o.arg.([]any), v)
	case "$nin":
		return !contains(o.arg.([]any), v)
	case "$all":
		// The field, a list, holds every value given.
		have, ok := v.([]any)
		if !ok {
			return false
		}
		for _, want := range o.arg.([]any) {
			if !contains(have, want) {
				return false
			}
		}
		return true
	case "$mod":
		n, ok := v.(float64)
		l := o.arg.([]any)
		return ok && math.Mod(n, l[0].(float64)) == l[1].(float64)
	case "$exists":
		return (v != nil) == o.arg.(bool)
	}
	return false
}

func contains(list []any, v any) bool {
	for _, e := range list {
		if equal(v, e) {
			return true
		}
	}
	return false
}

// equal compares a record value with a query value: dates as dates (to
// the microsecond the wire carries), numbers as numbers, lists and objects
// element by element.
func equal(a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if c, ok := compare(a, b); ok {
		return c == 0
	}
	switch x := a.(type) {
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !equal(xv, yv) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// compare orders two values of one kind: numbers, strings, dates (a date
// string in a record compares with a query date), bools. ok is false for
// values that do not order against each other, nulls included.
func compare(a, b any) (int, bool) {
	switch x := a.(type) {
	case float64:
		if y, ok := b.(float64); ok {
			return cmp.Compare(x, y), true
		}
	case string:
		switch y := b.(type) {
		case string:
			return strings.Compare(x, y), true
		case time.Time:
			if t, ok := asDate(x); ok {
				return cmpTime(t, y), true
			}
		}
	case time.Time:
		switch y := b.(type) {
		case time.Time:
			return cmpTime(x, y), true
		case string:
			if t, ok := asDate(y); ok {
				return cmpTime(x, t), true
			}
		}
	case bool:
		if y, ok := b.(bool); ok {
			if x == y {
				return 0, true
			}
			if !x {
				return -1, true
			}
			return 1, true
		}
	}
	return 0, false
}

func cmpTime(a, b time.Time) int {
	return a.Truncate(time.Microsecond).Compare(b.Truncate(time.Microsecond))
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	case time.Time:
		return "a date"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// dbProjection reads db_request keys: null or empty means every field but
// the two buffer lists (ipyparallel's default); msg_id always comes first.
func dbProjection(keys []string) ([]string, error) {
	if len(keys) == 0 {
		out := make([]string, 0, len(recordKeys))
		for _, k := range recordKeys {
			if k != "buffers" && k != "result_buffers" {
				out = append(out, k)
			}
		}
		return out, nil
	}
	out := []string{"msg_id"}
	for _, k := range keys {
		if !slices.Contains(recordKeys, k) {
			return nil, &dbQueryError{msg: fmt.Sprintf("db_request keys: %q is not a task record field (fields: %s)", k, strings.Join(recordKeys, ", "))}
		}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out, nil
}

// dbKeys reads db_request keys: null, a list of names, or one name (the
// Python client turns a str into a list; a raw peer may not).
func dbKeys(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var keys []string
	if err := json.Unmarshal(raw, &keys); err != nil {
		return nil, &dbQueryError{msg: "db_request keys: a list of record field names, or null for all of them but the buffers"}
	}
	return keys, nil
}

// dbReply answers a db_request for the records found: each projected to
// keys, with the requested buffers framed after the content, each
// record's request buffers then its result buffers, as the Python client
// splits them by buffer_lens and result_buffer_lens.
func dbReply(recs []*TaskRecord, keys []string) (map[string]any, [][]byte) {
	wantBufs := slices.Contains(keys, "buffers")
	wantResult := slices.Contains(keys, "result_buffers")
	var bufLens, resultLens []int
	if wantBufs {
		bufLens = []int{}
	}
	if wantResult {
		resultLens = []int{}
	}
	var buffers [][]byte
	out := make([]map[string]any, 0, len(recs))
	for _, r := range recs {
		doc := make(map[string]any, len(keys))
		for _, k := range keys {
			if k != "buffers" && k != "result_buffers" {
				doc[k] = r.wireField(k)
			}
		}
		if wantBufs {
			bufLens = append(bufLens, len(r.Buffers))
			buffers = append(buffers, r.Buffers...)
		}
		if wantResult {
			resultLens = append(resultLens, len(r.ResultBuffers))
			buffers = append(buffers, r.ResultBuffers...)
		}
		out = append(out, doc)
	}
	content := map[string]any{"status": "ok", "records": out, "buffer_lens": nil, "result_buffer_lens": nil}
	if wantBufs {
		content["buffer_lens"] = bufLens
	}
	if wantResult {
		content["result_buffer_lens"] = resultLens
	}
	return content, buffers
}

// wireField is a record field as db_reply sends it: JSON fields as they
// were received (null if they are not JSON: relays store frames unread),
// dates as ISO strings, unset values null.
func (r *TaskRecord) wireField(key string) any {
	raw := func(b json.RawMessage) any {
		if len(b) == 0 || !json.Valid(b) {
			return nil
		}
		return b
	}
	date := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return wire.FormatDate(t)
	}
	str := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	switch key {
	case "msg_id":
		return r.MsgID
	case "header":
		return raw(r.Header)
	case "metadata":
		return raw(r.Metadata)
	case "content":
		return raw(r.Content)
	case "submitted":
		return date(r.Submitted)
	case "client_uuid":
		return str(r.ClientUUID)
	case "engine_uuid":
		return str(r.EngineUUID)
	case "started":
		return date(r.Started)
	case "completed":
		return date(r.Completed)
	case "resubmitted":
		return str(r.Resubmitted)
	case "received":
		return date(r.Received)
	case "result_header":
		return raw(r.ResultHeader)
	case "result_metadata":
		return raw(r.ResultMetadata)
	case "result_content":
		return raw(r.ResultContent)
	case "queue":
		return str(r.Queue)
	case "execute_input":
		return str(r.ExecuteInput)
	case "execute_result":
		return raw(r.ExecuteResult)
	case "error":
		return raw(r.Error)
	case "stdout":
		return r.Stdout
	case "stderr":
		return r.Stderr
	}
	return nil
}

// dbJob is a db_request waiting for the db goroutine.
type dbJob struct {
	s   transport.Socket
	msg *wire.Message
}

// maxDBJobs bounds the db_requests waiting: a query over a full store
// takes a while, and the hub goroutine that reads every other query and
// the engines' registrations must not wait for it.
const maxDBJobs = 64

// queueDB hands a db_request to the db goroutine, or refuses it when too
// many are waiting.
func (h *hub) queueDB(s transport.Socket, msg *wire.Message) {
	h.dbOnce.Do(func() { go h.serveDB() })
	select {
	case h.dbJobs <- dbJob{s, msg}:
	default:
		h.reply(s, msg.Idents, msg, "db_reply", protocol.NewError("RuntimeError",
			fmt.Sprintf("the controller already has %d db_requests waiting; try again when they are answered", maxDBJobs)))
	}
}

// serveDB answers db_requests one at a time until the hub stops.
func (h *hub) serveDB() {
	for {
		select {
		case <-h.quit:
			return
		case j := <-h.dbJobs:
			h.safeDB(j)
		}
	}
}

func (h *hub) safeDB(j dbJob) {
	defer func() {
		if r := recover(); r != nil {
			h.c.log.Error("db_request panic", "panic", r)
			h.reply(j.s, j.msg.Idents, j.msg, "db_reply", protocol.NewError("InternalError", fmt.Sprint(r)))
		}
	}()
	h.dbRequest(j.s, j.msg)
}

// dbRequest answers db_request: the records matching query, projected to
// keys. A query the controller cannot run is answered with an error in the
// db_reply, which the Python client raises.
func (h *hub) dbRequest(s transport.Socket, msg *wire.Message) {
	var req struct {
		Query json.RawMessage `json:"query"`
		Keys  json.RawMessage `json:"keys"`
	}
	if err := msg.DecodeContent(&req); err != nil {
		h.reply(s, msg.Idents, msg, "db_reply", protocol.NewError("ValueError", "db_request content: "+err.Error()))
		return
	}
	q, err := parseDBQuery(req.Query)
	var keys []string
	if err == nil {
		if keys, err = dbKeys(req.Keys); err == nil {
			keys, err = dbProjection(keys)
		}
	}
	if err != nil {
		h.reply(s, msg.Idents, msg, "db_reply", protocol.NewError("ValueError", err.Error()))
		return
	}
	large := func(keys []string) bool {
		return slices.ContainsFunc(keys, func(k string) bool { return slices.Contains(largeKeys, k) })
	}
	recs, err := h.records.find(q.matchRecord, large(q.fields), large(keys))
	if err != nil {
		h.reply(s, msg.Idents, msg, "db_reply", protocol.NewError("KeyError", err.Error()))
		return
	}
	content, buffers := dbReply(recs, keys)
	frames, _, berr := h.c.session.Build(wire.Out{Idents: msg.Idents, MsgType: "db_reply", Parent: msg.RawHeader, Content: content, Buffers: buffers})
	if berr != nil {
		h.c.log.Error("building db_reply", "err", berr)
		h.reply(s, msg.Idents, msg, "db_reply", protocol.NewError("InternalError", "db_reply could not be encoded: "+berr.Error()))
		return
	}
	s.Send(frames)
}
