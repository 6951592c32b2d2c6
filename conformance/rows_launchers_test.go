package conformance

// Python engines started by our ipcluster (local launcher, --engine-cmd)
// in a named cluster (issue 9 item 4).

func init() {
	is := func(want any) func(r *R, got PyResult) { return func(r *R, got PyResult) { got.Is(r, want) } }
	for _, row := range []Row{
		{Area: "launchers", Behaviour: "ipcluster start --cluster-id --engine-cmd 'python3 -m ipyparallel.engine': engines register", Py: "ids", Check: is([]int{0, 1})},
		{Area: "launchers", Behaviour: "execute on launcher-started Python engines", Py: "execute_stdout", Check: is([]string{"hello 42\n", "hello 42\n"})},
	} {
		row.Fixture = fixLaunch
		addRow(row)
	}
}
