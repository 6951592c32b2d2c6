package conformance

import (
	"database/sql"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"syscall"
	"time"

	_ "modernc.org/sqlite"

	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// A controller killed with SIGKILL and restarted still answers for the
// tasks finished before the crash (issue 9 item 3). Runs last on the
// ipcluster fixture. The task database is written behind the hub (at most
// 20 ms plus one transaction behind; docs/controller.md): the kill waits
// until the finished tasks are on disk, as a crash that comes later than
// that window would find them. Inside the window, a Go engine's held reply
// completes the task after the restore; a Python engine's cannot.

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
		if err := waitWritten(controller.DBFile(f.Values["profile"], f.Values["cluster_id"]), 20, 15*time.Second); err != nil {
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
		// Python engines do not register again, but they keep answering
		// heartbeats and their sockets reconnect to the same ports: the
		// restored controller takes them back with their ids.
		out, err := f.ipcluster(90*time.Second, "start", "--restore", "--daemonize",
			"--profile-dir="+f.Values["profile"], "--cluster-id="+f.Values["cluster_id"])
		if err != nil {
			r.Fatalf("ipcluster start --restore: %v: %s", err, firstLines(out, 3))
		}
	}})
	addRow(Row{Area: "restart", Behaviour: "get_result from a new client after the restart", Fixture: fixLaunch, Phase: 7, Py: "restart_get_result",
		Check: func(r *R, got PyResult) { got.Is(r, true) }})
	addRow(Row{Area: "restart", Behaviour: "Python engines taken back with their ids; they run new work", Fixture: fixLaunch, Phase: 7, Py: "restart_engines_back",
		Check: func(r *R, got PyResult) { got.Is(r, []bool{true, true}) }})
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

// waitWritten polls the task database file until it holds at least n
// records and none without a result.
func waitWritten(path string, n int, timeout time.Duration) error {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	var total, open int
	deadline := time.Now().Add(timeout)
	for {
		err = db.QueryRow(`SELECT count(*), count(*) FILTER (WHERE done = 0) FROM tasks`).Scan(&total, &open)
		if err == nil && total >= n && open == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("task database %s: %d records, %d without a result after %v (err %v)", path, total, open, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
