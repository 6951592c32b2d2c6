package conformance

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"syscall"
	"time"

	"github.com/ipp-hpc/ipp/internal/wire"
)

// A controller killed with SIGKILL and restarted still answers for the
// tasks finished before the crash (issue 9 item 3, the restart and db
// helpers). Runs last on the ipcluster fixture. Expected behaviour; rows
// fail until the feature lands.

var pidField = regexp.MustCompile(`"pid":\s*(\d+)`)

func init() {
	addRow(Row{Area: "restart", Behaviour: "submit 20 load-balanced tasks before the crash", Fixture: fixLaunch, Phase: 5, Py: "restart_submit",
		Check: func(r *R, got PyResult) { got.Is(r, 20) }})
	addRow(Row{Area: "restart", Behaviour: "kill -9 the controller, ipcluster start --restore", Fixture: fixLaunch, Phase: 6, Check: func(r *R, _ PyResult) {
		f := r.Fixture()
		pid, err := controllerPID(f)
		if err != nil {
			r.Fatal(err)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			r.Fatalf("kill -9 %d: %v", pid, err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for syscall.Kill(pid, 0) == nil {
			if time.Now().After(deadline) {
				r.Fatalf("controller %d survived SIGKILL for 10 s", pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Python engines do not re-register with a restarted controller.
		f.Engines = 0
		out, err := f.ipcluster(90*time.Second, "start", "--restore", "-n", "0", "--daemonize",
			"--profile-dir="+f.Values["profile"], "--cluster-id="+f.Values["cluster_id"])
		if err != nil {
			r.Fatalf("ipcluster start --restore: %v: %s", err, firstLines(out, 3))
		}
	}})
	addRow(Row{Area: "restart", Behaviour: "get_result from a new client after the restart", Fixture: fixLaunch, Phase: 7, Py: "restart_get_result",
		Check: func(r *R, got PyResult) { got.Is(r, true) }})
	addRow(Row{Area: "restart", Behaviour: "db_query after the restart", Fixture: fixLaunch, Phase: 7, Py: "restart_db_query",
		Check: func(r *R, got PyResult) { got.Is(r, true) }})
}

// controllerPID reads the controller's pid from the cluster file.
func controllerPID(f *Fixture) (int, error) {
	path := wire.ClusterFile(f.Values["profile"], f.Values["cluster_id"])
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	m := pidField.FindSubmatch(b)
	if m == nil {
		return 0, fmt.Errorf("no controller pid in %s", path)
	}
	return strconv.Atoi(string(m[1]))
}
