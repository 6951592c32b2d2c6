package conformance

// CURVE between our controller and the Python client and engine.

func init() {
	addRow(Row{Area: "security", Behaviour: "CURVE: the client reads curve_serverkey", Fixture: fixCurve, Py: "curve_key",
		Check: func(r *R, got PyResult) { got.Is(r, true) }})
	addRow(Row{Area: "security", Behaviour: "CURVE: execute with stdout", Fixture: fixCurve, Py: "execute_stdout",
		Check: func(r *R, got PyResult) { got.Is(r, []string{"hello 42\n"}) }})
}
