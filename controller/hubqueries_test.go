package controller_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/transport"
)

// Bad db_request, resubmit_request and load_request contents get an error
// reply of the request's own type that says what is wrong, and the Dask
// requests a NotImplementedError; the controller keeps serving.
func TestHubQueriesBadInput(t *testing.T) {
	c, _ := startController(t, controller.Config{})
	ci := c.ClientInfo()
	q := dial(t, transport.Dealer, ci.URL(ci.Registration), []byte(ci.Key), "")
	for _, tc := range []struct {
		msgType   string
		content   any
		replyType string
		ename     string
		evalue    string
	}{
		{"db_request", map[string]any{"query": 5}, "db_reply", "ValueError", "a query is an object of conditions"},
		{"db_request", map[string]any{"query": map[string]any{"msg_id": map[string]any{"$regex": "x"}}}, "db_reply", "ValueError", `unknown operator "$regex"`},
		{"db_request", map[string]any{"query": map[string]any{}, "keys": 3}, "db_reply", "ValueError", "db_request keys"},
		{"db_request", map[string]any{"query": map[string]any{}, "keys": []string{"bogus"}}, "db_reply", "ValueError", `"bogus" is not a task record field`},
		{"db_request", []int{1}, "db_reply", "ValueError", "db_request content"},
		{"resubmit_request", map[string]any{"msg_ids": "abc"}, "resubmit_reply", "ValueError", "resubmit_request content"},
		{"resubmit_request", map[string]any{"msg_ids": []string{"nope"}}, "resubmit_reply", "KeyError", "No such msg(s): ['nope']"},
		{"load_request", map[string]any{"targets": []int{7}}, "hub_error", "IndexError", "No Such Engine: 7"},
		{"become_dask_request", map[string]any{"scheduler_args": map[string]any{}}, "become_dask_reply", "NotImplementedError", "does not run a Dask scheduler"},
		{"stop_distributed_request", map[string]any{}, "stop_distributed_reply", "NotImplementedError", "dask-scheduler"},
	} {
		h := q.send(nil, tc.msgType, tc.content)
		m := q.recv(10 * time.Second)
		var e struct {
			Status, EName, EValue string
		}
		m.DecodeContent(&e)
		if m.Parent.MsgID != h.MsgID || m.Header.MsgType != tc.replyType || e.Status != "error" || e.EName != tc.ename || !strings.Contains(e.EValue, tc.evalue) {
			t.Errorf("%s %v: got %s %s, want %s %s containing %q", tc.msgType, tc.content, m.Header.MsgType, m.Content, tc.replyType, tc.ename, tc.evalue)
		}
	}
	// Still serving, and an empty store answers an empty list.
	h := q.send(nil, "db_request", map[string]any{"query": map[string]any{"completed": map[string]any{"$ne": nil}}, "keys": "engine_uuid"})
	m := q.recv(10 * time.Second)
	if m.Parent.MsgID != h.MsgID || m.Header.MsgType != "db_reply" || !strings.Contains(string(m.Content), `"records":[]`) {
		t.Errorf("db_request on an empty store: %s %s", m.Header.MsgType, m.Content)
	}
	h = q.send(nil, "load_request", map[string]any{"targets": nil})
	m = q.recv(10 * time.Second)
	if m.Parent.MsgID != h.MsgID || m.Header.MsgType != "load_reply" {
		t.Errorf("load_request: %s %s", m.Header.MsgType, m.Content)
	}
}
