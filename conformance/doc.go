// Package conformance holds the Python interoperability suite: `go test
// ./conformance/` starts, as real processes, our controller, engines and
// client beside the real Python ipyparallel 7.1 client, engines and
// ipcontroller (Debian's /usr/bin/python3), checks one behaviour per row
// and prints a table (docs/python-interop.md holds the latest one).
//
// The package has no code outside its tests. Adding a row, from any file
// (name it rows_<area>_test.go so that helpers do not edit the same file):
//
//	func init() {
//		addRow(Row{Area: "hub", Behaviour: "db_query by msg_id", Fixture: fixOurs, Py: "db_query_msg_id",
//			Check: func(r *R, got PyResult) { r.Equal(got.List(r), ...) }})
//	}
//
// A row with Py names a function check_<Py>(ctx) in one of the
// testdata/checks_*.py files, run by the real Python client against the
// fixture's cluster; its return value (JSON) reaches Check. A row without
// Py is Go-side: Check drives the fixture itself (e.g. with our Go client,
// r.Fixture().GoClient(r)). Rows of one fixture share one cluster and run
// in Phase order, then registration order; destructive rows (engine
// shutdown, controller kill) take a later phase.
//
// Python rows state what ipyparallel itself does: IPP_CONFORMANCE_REFERENCE=1
// also runs the Python rows of our controller against Python's own
// ipcontroller and engines (the judge), where each must pass; do that when
// adding or changing one.
//
// Rows check expected behaviour, including behaviour that is not built
// yet: such a row fails (never t.Skip) until the feature lands. SKIP is
// only for a missing peer (no Python here), and CI=true turns that into a
// failure. go test shows the table of a passing run only with -v;
// IPP_CONFORMANCE_TABLE=<file> writes it as Markdown either way.
package conformance
