package conformance

import (
	"os"
	"slices"
)

// With IPP_CONFORMANCE_REFERENCE=1 the rows of our controller with Python
// engines also run against Python's own ipcontroller and engines: a
// Python row that fails there expects something ipyparallel does not do,
// and the Go client's rows show it works with Python's controller too. Off
// by default (it adds a cluster and half a minute); run it when adding
// or changing a Python row.
const envReference = "IPP_CONFORMANCE_REFERENCE"

func init() {
	if os.Getenv(envReference) != "1" {
		return
	}
	addFixture(&Fixture{Name: fixReference, PyDirection: "Python client → Python ipcontroller → Python engines (reference)",
		GoDirection: "Go client → Python ipcontroller → Python engines (reference)",
		NeedPython:  []string{"ipyparallel", "zmq"}, Start: startReference})
	// Once every file's rows are registered.
	beforeRun = append(beforeRun, func() {
		// Requests Python's controller answers differently on purpose
		// (it runs dask itself) are not judged here.
		ours := []string{"become_dask", "stop_distributed"}
		for _, row := range slices.Clone(rows) {
			if row.Fixture == fixOurs && !slices.Contains(ours, row.Py) {
				row.Fixture = fixReference
				row.Area = "reference: " + row.Area
				addRow(row)
			}
		}
	})
}
