package conformance

import (
	"time"

	"github.com/ipp-hpc/ipp/internal/testutil"
)

// Python engines started by our ipcluster (local launcher, --engine-cmd)
// in a named cluster (issue 9 item 4).

func init() {
	addRow(Row{Area: "launchers", Behaviour: "ipcluster engines -n 1 --engine-cmd 'python3 -m ipyparallel.engine' adds one", Fixture: fixLaunch, Phase: 1,
		Check: func(r *R, _ PyResult) {
			f := r.Fixture()
			out, err := f.ipcluster(90*time.Second, "engines", "-n", "1", "--engine-cmd", testutil.Python+" -m ipyparallel.engine",
				"--profile-dir="+f.Values["profile"], "--cluster-id="+f.Values["cluster_id"])
			if err != nil {
				r.Fatalf("ipcluster engines: %v: %s", err, firstLines(out, 3))
			}
			f.Engines = 3
		}})
	addRow(Row{Area: "launchers", Behaviour: "the added Python engine registers", Fixture: fixLaunch, Phase: 2, Py: "ids",
		Check: func(r *R, got PyResult) { got.Is(r, []int{0, 1, 2}) }})
	is := func(want any) func(r *R, got PyResult) { return func(r *R, got PyResult) { got.Is(r, want) } }
	for _, row := range []Row{
		{Area: "launchers", Behaviour: "ipcluster start --cluster-id --engine-cmd 'python3 -m ipyparallel.engine': engines register", Py: "ids", Check: is([]int{0, 1})},
		{Area: "launchers", Behaviour: "execute on launcher-started Python engines", Py: "execute_stdout", Check: is([]string{"hello 42\n", "hello 42\n"})},
	} {
		row.Fixture = fixLaunch
		addRow(row)
	}
}
