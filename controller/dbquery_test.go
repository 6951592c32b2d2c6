package controller

import (
	"slices"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"
)

// queryRecords are three records: a finished apply on engine e1, a failed
// execute on e2, and a pending apply.
func queryRecords() []*TaskRecord {
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 123456789, time.UTC)
	return []*TaskRecord{{
		MsgID:         "a",
		Header:        json.RawMessage(`{"msg_id":"a","msg_type":"apply_request","session":"s1","date":"2026-12-06T10:00:00.123456Z"}`),
		Metadata:      json.RawMessage(`{"after":["x","y"],"retries":3}`),
		Content:       json.RawMessage(`{}`),
		Buffers:       [][]byte{[]byte("f"), []byte("args")},
		Submitted:     t0,
		ClientUUID:    "s1",
		EngineUUID:    "e1",
		Queue:         "task",
		Started:       t0.Add(time.Second),
		Completed:     t0.Add(2 * time.Second),
		Received:      t0.Add(2 * time.Second),
		ResultHeader:  json.RawMessage(`{"msg_type":"apply_reply","date":"2026-12-06T10:00:02.123456Z"}`),
		ResultContent: json.RawMessage(`{"status":"ok"}`),
		ResultBuffers: [][]byte{[]byte("result")},
		Stdout:        "hello\n",
	}, {
		MsgID:         "b",
		Header:        json.RawMessage(`{"msg_id":"b","msg_type":"execute_request","session":"s2","date":"2026-12-06T11:00:00Z"}`),
		Metadata:      json.RawMessage(`{}`),
		Content:       json.RawMessage(`{"code":"1/0"}`),
		Submitted:     t0.Add(time.Hour),
		ClientUUID:    "s2",
		EngineUUID:    "e2",
		Queue:         "mux",
		Completed:     t0.Add(time.Hour + time.Second),
		ResultContent: json.RawMessage(`{"status":"error","ename":"ZeroDivisionError"}`),
		Error:         json.RawMessage(`{"ename":"ZeroDivisionError"}`),
	}, {
		MsgID:      "c",
		Header:     json.RawMessage(`{"msg_id":"c","msg_type":"apply_request","session":"s1","date":"2026-12-06T12:00:00Z"}`),
		Metadata:   json.RawMessage(`{"retries":0}`),
		Content:    json.RawMessage(`{}`),
		Submitted:  t0.Add(2 * time.Hour),
		ClientUUID: "s1",
		Queue:      "task",
	}}
}

func runQuery(t *testing.T, query string) ([]string, error) {
	t.Helper()
	q, err := parseDBQuery(json.RawMessage(query))
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, r := range queryRecords() {
		if q.match(r.Doc()) {
			ids = append(ids, r.MsgID)
		}
	}
	return ids, nil
}

func TestDBQueryOperators(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{``, []string{"a", "b", "c"}},
		{`null`, []string{"a", "b", "c"}},
		{`{}`, []string{"a", "b", "c"}},
		{`{"msg_id": "b"}`, []string{"b"}},
		{`{"engine_uuid": "e1"}`, []string{"a"}},
		{`{"engine_uuid": null}`, []string{"c"}},
		{`{"msg_id": {"$in": ["a", "c", "zzz"]}}`, []string{"a", "c"}},
		{`{"msg_id": {"$nin": ["a", "c"]}}`, []string{"b"}},
		{`{"engine_uuid": {"$in": [null, "e2"]}}`, []string{"b", "c"}},
		{`{"completed": {"$ne": null}}`, []string{"a", "b"}},
		{`{"completed": {"$eq": null}}`, []string{"c"}},
		{`{"completed": null}`, []string{"c"}},
		{`{"queue": {"$eq": "task"}, "client_uuid": "s1"}`, []string{"a", "c"}},
		{`{"stdout": {"$ne": ""}}`, []string{"a"}},
		// Dates: ISO strings in the query are dates, to the microsecond.
		{`{"submitted": {"$gte": "2026-12-06T10:00:00.123456Z"}}`, []string{"a", "b", "c"}},
		{`{"submitted": {"$gt": "2026-12-06T10:00:00.123456Z"}}`, []string{"b", "c"}},
		{`{"submitted": {"$lt": "2026-12-06T11:00:00.123456Z"}}`, []string{"a"}},
		{`{"submitted": {"$lte": "2026-12-06T11:00:00.123456Z"}}`, []string{"a", "b"}},
		{`{"submitted": "2026-12-06T10:00:00.123456Z"}`, []string{"a"}},
		{`{"submitted": {"$gt": "2026-12-06T10:00:00Z", "$lt": "2026-12-06T12:00:00Z"}}`, []string{"a", "b"}},
		{`{"submitted": {"$gte": "2026-12-06T12:00:00+02:00"}}`, []string{"a", "b", "c"}},
		{`{"submitted": {"$gte": "2026-12-06T11:30:00"}}`, []string{"c"}},
		// A null never orders: pending records have no completed date.
		{`{"completed": {"$gt": "2000-01-01T00:00:00Z"}}`, []string{"a", "b"}},
		{`{"completed": {"$lt": "2100-01-01T00:00:00Z"}}`, []string{"a", "b"}},
		{`{"started": {"$exists": true}}`, []string{"a"}},
		{`{"started": {"$exists": false}}`, []string{"b", "c"}},
		// Dotted paths into JSON fields; date strings inside them are dates.
		{`{"header.msg_type": "execute_request"}`, []string{"b"}},
		{`{"header.msg_type": {"$in": ["apply_request"]}}`, []string{"a", "c"}},
		{`{"header.date": {"$gte": "2026-12-06T11:00:00Z"}}`, []string{"b", "c"}},
		{`{"result_content.status": "error"}`, []string{"b"}},
		{`{"result_content.ename": {"$exists": true}}`, []string{"b"}},
		{`{"content.code": {"$exists": true}}`, []string{"b"}},
		{`{"metadata.retries": {"$gte": 1}}`, []string{"a"}},
		{`{"metadata.retries": {"$mod": [3, 0]}}`, []string{"a", "c"}},
		{`{"metadata.after.1": "y"}`, []string{"a"}},
		{`{"metadata.after": {"$all": ["y", "x"]}}`, []string{"a"}},
		{`{"metadata.after": {"$all": ["y", "z"]}}`, nil},
		{`{"metadata.after": ["x", "y"]}`, []string{"a"}},
		{`{"header.no.such.path": {"$exists": false}}`, []string{"a", "b", "c"}},
		{`{"error": {"ename": "ZeroDivisionError"}}`, []string{"b"}},
		// Strings order as strings; mixed kinds never order.
		{`{"msg_id": {"$gt": "a"}}`, []string{"b", "c"}},
		{`{"msg_id": {"$gt": 1}}`, nil},
		{`{"$or": [{"msg_id": "a"}, {"queue": "mux"}]}`, []string{"a", "b"}},
		{`{"$and": [{"queue": "task"}, {"completed": {"$ne": null}}]}`, []string{"a"}},
		{`{"$nor": [{"msg_id": "a"}, {"queue": "mux"}]}`, []string{"c"}},
	} {
		got, err := runQuery(t, tc.query)
		if err != nil {
			t.Errorf("%s: %v", tc.query, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s matched %v, want %v", tc.query, got, tc.want)
		}
	}
}

func TestDBQueryBad(t *testing.T) {
	for _, tc := range []struct{ query, want string }{
		{`[1, 2]`, "is an object of conditions"},
		{`"msg_id"`, "is an object of conditions"},
		{`{"msg_id": {"$regex": "a.*"}}`, `unknown operator "$regex" on "msg_id"`},
		{`{"msg_id": {"$in": "a"}}`, "$in on \"msg_id\" takes a list"},
		{`{"msg_id": {"$nin": null}}`, "$nin on \"msg_id\" takes a list"},
		{`{"msg_id": {"$all": 3}}`, "$all on \"msg_id\" takes a list"},
		{`{"metadata.retries": {"$mod": [0, 1]}}`, "divisor not zero"},
		{`{"metadata.retries": {"$mod": [2]}}`, "[divisor, remainder]"},
		{`{"started": {"$exists": "yes"}}`, "takes true or false"},
		{`{"msg_id": {"$eq": "a", "plain": 1}}`, "mixes operators and plain keys"},
		{`{"no_such_field": 1}`, `"no_such_field" is not a task record field`},
		{`{"$where": "1"}`, `unknown top-level operator "$where"`},
		{`{"$or": []}`, "$or takes a non-empty list"},
		{`{"$or": [{"msg_id": {"$bad": 1}}]}`, `unknown operator "$bad"`},
		{`{"msg_id": `, "not JSON"},
	} {
		_, err := runQuery(t, tc.query)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.query, err, tc.want)
		}
	}
}

func TestDBReplyProjection(t *testing.T) {
	recs := queryRecords()[:2]
	keys, err := dbProjection(nil)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(keys, "buffers") || slices.Contains(keys, "result_buffers") || keys[0] != "msg_id" {
		t.Errorf("default keys %v: want every field but the buffers, msg_id first", keys)
	}
	content, bufs := dbReply(recs, keys)
	if content["buffer_lens"] != nil || content["result_buffer_lens"] != nil || len(bufs) != 0 {
		t.Errorf("default projection sent buffers: %v %v %d", content["buffer_lens"], content["result_buffer_lens"], len(bufs))
	}
	raw, err := json.Marshal(content)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Records []map[string]any `json:"records"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	a := got.Records[0]
	if a["submitted"] != "2026-12-06T10:00:00.123456Z" || a["started"] != "2026-12-06T10:00:01.123456Z" {
		t.Errorf("dates: submitted %v started %v", a["submitted"], a["started"])
	}
	if h, _ := a["header"].(map[string]any); h["msg_type"] != "apply_request" {
		t.Errorf("header = %v", a["header"])
	}
	if got.Records[1]["started"] != nil || got.Records[1]["engine_uuid"] != "e2" {
		t.Errorf("record b: %v", got.Records[1])
	}

	// Buffers: each record's request buffers, then its result buffers.
	keys, err = dbProjection([]string{"result_buffers", "engine_uuid", "buffers", "engine_uuid"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{"msg_id", "result_buffers", "engine_uuid", "buffers"}) {
		t.Errorf("keys = %v", keys)
	}
	content, bufs = dbReply(recs, keys)
	if !slices.Equal(content["buffer_lens"].([]int), []int{2, 0}) || !slices.Equal(content["result_buffer_lens"].([]int), []int{1, 0}) {
		t.Errorf("lens %v %v", content["buffer_lens"], content["result_buffer_lens"])
	}
	var names []string
	for _, b := range bufs {
		names = append(names, string(b))
	}
	if !slices.Equal(names, []string{"f", "args", "result"}) {
		t.Errorf("buffers %q, want f args result", names)
	}
	docs := content["records"].([]map[string]any)
	if _, ok := docs[0]["buffers"]; ok || len(docs[0]) != 2 {
		t.Errorf("projected record %v: want msg_id and engine_uuid only", docs[0])
	}

	if _, err := dbProjection([]string{"msg_id", "nope"}); err == nil || !strings.Contains(err.Error(), `"nope" is not a task record field`) {
		t.Errorf("unknown key: %v", err)
	}
}

// A stored frame that is not JSON (relays store frames unread) is sent as
// null, so the reply stays encodable.
func TestDBReplyInvalidJSON(t *testing.T) {
	r := &TaskRecord{MsgID: "x", Header: json.RawMessage(`{not json`)}
	content, _ := dbReply([]*TaskRecord{r}, []string{"msg_id", "header"})
	if _, err := json.Marshal(content); err != nil {
		t.Fatal(err)
	}
	if v := content["records"].([]map[string]any)[0]["header"]; v != nil {
		t.Errorf("header = %v, want nil", v)
	}
}

// A query nested as deep as a 16 MiB message allows is refused or run, not
// a crash.
func TestDBQueryDeep(t *testing.T) {
	const depth = 200_000
	q := strings.Repeat(`{"$or": [`, depth) + `{"msg_id": "a"}` + strings.Repeat(`]}`, depth)
	got, err := runQuery(t, q)
	if err == nil && !slices.Equal(got, []string{"a"}) {
		t.Errorf("matched %v", got)
	}
	deep := `{"header": ` + strings.Repeat(`[`, depth) + strings.Repeat(`]`, depth) + `}`
	if _, err := runQuery(t, deep); err != nil {
		t.Logf("deep value: %v", err)
	}
}
