package conformance

// Scheduling semantics decided against ipyparallel (issue 9 item 2, the
// semantics helper; docs/controller.md).

func init() {
	addRow(Row{Area: "load-balanced", Behaviour: "retries fewer than engines: the engine's own error", Fixture: fixOurs, Py: "retries_exhausted",
		Check: func(r *R, got PyResult) { got.Is(r, "ZeroDivisionError") }})
	addRow(Row{Area: "load-balanced", Behaviour: "retries + timeout, failed on every engine: held, then TaskTimeout", Fixture: fixOurs, Py: "retries_timeout",
		Check: func(r *R, got PyResult) { got.Is(r, map[string]any{"ename": "TaskTimeout", "held": true}) }})
}
