package controller_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestPythonHubQueries runs the real ipyparallel 7.1 client and two Python
// engines against our controller for the hub queries of issue 9:
// db_query (projection, buffers, dates, dotted paths, bad queries),
// resubmit (finished, failed, in flight, a chain), get_result from a
// client that did not submit, load_request and the Dask requests.
func TestPythonHubQueries(t *testing.T) {
	const n = 2
	py, dir, c, ctx := pythonPeers(t, n)
	cmd := exec.CommandContext(ctx, py, "testdata/python_hubqueries.py", c.ClientFile(), fmt.Sprint(n))
	cmd.Env = append(os.Environ(), "IPYTHONDIR="+filepath.Join(dir, "ipython"))
	cmd.Stderr = os.Stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("python client: %v\n%s", err, raw)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	// JSON as Python printed it: numbers are float64, lists []any.
	want := map[string]any{
		"completed_keys":      []any{"engine_uuid", "msg_id"},
		"completed_has_ours":  true,
		"engine_uuids_known":  true,
		"default_count":       4.0,
		"default_has_buffers": false,
		"default_types":       []any{"datetime", "datetime", "datetime", "datetime", "datetime"},
		"default_queue":       "task",
		"session_kept":        true,
		"execute_record":      []any{"mux", "out\n", "print('out'); 6 * 7", "42"},
		"error_record":        "ZeroDivisionError",
		"buffers": []any{
			[]any{[]any{5.0}, map[string]any{}, "rrrrr"},
			[]any{[]any{40.0}, map[string]any{"y": 2.0}, 42.0},
		},
		"only_result_buffers":   []any{[]any{"msg_id", "result_buffers"}, 42.0},
		"after_mid":             []any{1.0, 2.0, 3.0},
		"before_mid":            []any{0.0},
		"exact_date":            []any{true},
		"dotted":                []any{true},
		"resubmit_done":         []any{"rrrrr", 42.0},
		"resubmitted_field":     true,
		"resubmit_header":       []any{true, "apply_request", true, true},
		"resubmit_inflight":     []any{"slow", []any{"slow"}}, // a list asked, a list returned
		"inflight_pending":      true,
		"resubmit_aborted":      []any{"victim"},
		"resubmit_chain":        []any{"b", "a"},
		"chain_after":           true,
		"second_client":         []any{"rrrrr", 42.0},
		"second_client_pending": "late",
		"second_client_execute": []any{"ExecuteReply", "42", "out\n", 1.0},
	}
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("%s = %#v, want %#v", k, got[k], w)
		}
	}
	// Errors: [ename, evalue]; the evalue must say what went wrong.
	for k, w := range map[string][2]string{
		"bad":                              {"ZeroDivisionError", "division by zero"},
		"bad_query":                        {"ValueError", `unknown operator "$regex" on "msg_id"`},
		"bad_key":                          {"ValueError", `"nope" is not a task record field`},
		"resubmit_failed":                  {"ZeroDivisionError", "division by zero"},
		"aborted":                          {"TaskAborted", ""},
		"resubmit_missing":                 {"KeyError", "No such msg(s): ['no-such-id']"},
		"second_client_error":              {"ZeroDivisionError", "division by zero"},
		"invalid_dependency":               {"InvalidDependency", "no-such-msg-id"},
		"second_client_invalid_dependency": {"InvalidDependency", "no-such-msg-id"},
		"stop_dask":                        {"NotImplementedError", "does not run a Dask scheduler"},
	} {
		e, _ := got[k].([]any)
		if len(e) != 2 || e[0] != w[0] || !strings.Contains(fmt.Sprint(e[1]), w[1]) {
			t.Errorf("%s raised %v, want %s containing %q", k, got[k], w[0], w[1])
		}
	}
	if !reflect.DeepEqual(got["become_dask"], []any{"become_dask_reply", "error", "NotImplementedError"}) {
		t.Errorf("become_dask = %v", got["become_dask"])
	}
	if t.Failed() {
		t.Logf("the client saw: %s", raw)
	}
	if !reflect.DeepEqual(got["load"], []any{"load_reply", []any{"0", "1"}}) {
		t.Errorf("load = %v", got["load"])
	}
}
