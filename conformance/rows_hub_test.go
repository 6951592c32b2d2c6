package conformance

import "strings"

// The hub's task records as the Python client reaches them (issue 9
// item 1, the query helper). Expected behaviour; rows fail until the
// feature lands.

func init() {
	specificError := func(words ...string) func(r *R, got PyResult) {
		return func(r *R, got PyResult) {
			var v struct{ Status, Ename, Evalue string }
			got.Into(r, &v)
			if v.Status != "error" || strings.Contains(v.Evalue, "Bad Message Type") || v.Ename == "" {
				r.Fatalf("reply status=%s %s: %s, want a specific error", v.Status, v.Ename, v.Evalue)
			}
			for _, w := range words {
				if strings.Contains(strings.ToLower(v.Evalue), w) {
					return
				}
			}
			r.Errorf("error %s: %s does not mention %v", v.Ename, v.Evalue, words)
		}
	}
	for _, row := range []Row{
		{Area: "hub", Behaviour: "db_query({'completed': {'$ne': None}}, keys=[msg_id, engine_uuid])", Py: "db_query_completed",
			Check: func(r *R, got PyResult) {
				got.Is(r, map[string]any{"all_found": true, "keys": []string{"engine_uuid", "msg_id"}})
			}},
		{Area: "hub", Behaviour: "db_query by msg_id $in, default keys", Py: "db_query_msg_id",
			Check: func(r *R, got PyResult) { got.Is(r, map[string]any{"msg_ids": true, "has_result": true}) }},
		{Area: "hub", Behaviour: "resubmit a finished task: new msg_id, same result", Py: "resubmit",
			Check: func(r *R, got PyResult) { got.Is(r, map[string]any{"value": 7, "new_id": true}) }},
		{Area: "hub", Behaviour: "get_result from a second client", Py: "get_result_other_client",
			Check: func(r *R, got PyResult) { got.Is(r, "from the first client") }},
		{Area: "hub", Behaviour: "become_dask_request: a specific error", Py: "become_dask", Check: specificError("dask", "distributed")},
		{Area: "hub", Behaviour: "stop_distributed_request: a specific error", Py: "stop_distributed", Check: specificError("dask", "distributed")},
	} {
		row.Fixture = fixOurs
		addRow(row)
	}
}
