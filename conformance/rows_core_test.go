package conformance

// The everyday client API: the real Python client with Python engines on
// our controller.

func init() {
	is := func(want any) func(r *R, got PyResult) { return func(r *R, got PyResult) { got.Is(r, want) } }
	upTo := func(n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = i + 1
		}
		return out
	}
	squares := make([]int, 10)
	for i := range squares {
		squares[i] = i * i
	}
	for _, row := range []Row{
		{Area: "connect", Behaviour: "Client(file) + wait_for_engines: engine ids", Py: "ids", Check: is([]int{0, 1})},
		{Area: "direct view", Behaviour: "execute: stdout per engine", Py: "execute_stdout", Check: is([]string{"hello 42\n", "hello 42\n"})},
		{Area: "direct view", Behaviour: "execute(silent=False): execute_result", Py: "execute_result", Check: is("42")},
		{Area: "direct view", Behaviour: "apply_sync", Py: "apply", Check: is([]int{42, 42})},
		{Area: "direct view", Behaviour: "map_sync", Py: "map", Check: is(squares)},
		{Area: "direct view", Behaviour: "push/pull", Py: "push_pull", Check: is([][]any{{5, []any{1, "two"}}, {5, []any{1, "two"}}})},
		{Area: "direct view", Behaviour: "scatter/gather", Py: "scatter_gather", Check: is([]int{0, 1, 2, 3, 4, 5, 6, 7})},
		{Area: "errors", Behaviour: "RemoteError from one engine", Py: "remote_error", Check: is([]string{"RemoteError", "ZeroDivisionError"})},
		{Area: "errors", Behaviour: "CompositeError from several engines (apply)", Py: "composite_error", Check: is([]string{"ZeroDivisionError", "ZeroDivisionError"})},
		{Area: "errors", Behaviour: "CompositeError from execute", Py: "execute_error", Check: is([]string{"NameError", "NameError"})},
		{Area: "load-balanced", Behaviour: "map_sync over 50 tasks", Py: "lb_map", Check: is(upTo(50))},
		{Area: "load-balanced", Behaviour: "targets restrict the engine", Py: "lb_apply_targets", Check: func(r *R, got PyResult) {
			var v []int
			got.Into(r, &v)
			if len(v) != 2 || v[0] != v[1] {
				r.Errorf("ran on engine %v, asked for %v", v[:1], v[1:])
			}
		}},
		{Area: "load-balanced", Behaviour: "dependency: after=", Py: "dependency_after", Check: is(2)},
		{Area: "load-balanced", Behaviour: "dependency on an unknown msg_id: InvalidDependency", Py: "dependency_invalid", Check: is("InvalidDependency")},
		{Area: "control", Behaviour: "abort a queued task: TaskAborted", Py: "abort", Check: is("TaskAborted")},
		{Area: "control", Behaviour: "clear the namespace", Py: "clear", Check: is([]string{"NameError", "NameError"})},
		{Area: "hub", Behaviour: "queue_status", Py: "queue_status", Check: is([]string{"0", "1", "unassigned"})},
		{Area: "hub", Behaviour: "result_status (result_request)", Py: "result_status", Check: is([]int{2, 0})},
		{Area: "hub", Behaviour: "hub_history", Py: "hub_history", Check: is(true)},
		{Area: "hub", Behaviour: "purge_results", Py: "purge_results", Check: is("purged")},
		{Area: "broadcast", Behaviour: "broadcast_view apply", Py: "broadcast_apply", Check: is([]int{3, 3})},
		{Area: "broadcast", Behaviour: "broadcast_view execute: stdout", Py: "broadcast_execute", Check: is([]string{"b\n", "b\n"})},
		{Area: "broadcast", Behaviour: "coalescing broadcast apply", Py: "coalescing_apply", Check: is([]int{4, 4})},
		{Area: "broadcast", Behaviour: "broadcast error: CompositeError of the engines' own errors", Py: "broadcast_error", Check: is([]string{"ZeroDivisionError", "ZeroDivisionError"})},
		{Area: "broadcast", Behaviour: "coalescing broadcast error: RemoteError with the engines' own ename (as the Python ipcontroller)", Py: "coalescing_error", Check: is([]string{"RemoteError", "ZeroDivisionError"})},
		// Last: it takes an engine away.
		{Area: "control", Behaviour: "shutdown(targets=[1]): the engine unregisters", Py: "shutdown_engine", Phase: 9, Check: func(r *R, got PyResult) {
			got.Is(r, []int{0})
			r.Fixture().Engines = 1
		}},
	} {
		row.Fixture = fixOurs
		addRow(row)
	}
}
