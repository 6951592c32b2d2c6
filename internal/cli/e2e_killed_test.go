package cli

import (
	"context"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/launchers"
)

// TestEndToEndKilledController SIGKILLs the controller of a daemonized
// cluster, leaving its cluster file, connection files and engines behind,
// and checks what every command makes of that with the built binary: an
// exec in flight and a new exec end with 12, list and start agree that the
// cluster is not running, stop and clean --cluster-id clean up (stopping
// the engines left behind), and start replaces the dead cluster.
func TestEndToEndKilledController(t *testing.T) {
	e := newE2E(t)
	// The engines left behind must still be there when stop and clean
	// look for them, however slow this machine is: they would exit after
	// the default --controller-timeout of 30 s.
	e.env = append(e.env, protocol.EnvControllerTimeout+"=600")
	const id = "k"
	clusterFile := wire.ClusterFile(e.profile, id)
	clientFile, engineFile := wire.ClientFile(e.profile, id), wire.EngineFile(e.profile, id)
	// start's default task database, kept over a kill for --restore.
	dbFile := controller.DBFile(e.profile, id)
	start := func(n string) []int {
		t.Helper()
		e.must(0, "start", "-n", n, "--daemonize", "--cluster-id", id, "--wait-timeout", "60")
		pids := recordedPIDs(t, clusterFile) // the controller first
		e.pids = append(e.pids, pids...)
		return pids
	}
	kill := func(pid int) {
		t.Helper()
		syscall.Kill(pid, syscall.SIGKILL)
		testutil.Eventually(t, 10*time.Second, func() bool { return !launchers.PIDAlive(pid) }, "controller %d survived SIGKILL", pid)
	}
	exist := func(want bool, paths ...string) {
		t.Helper()
		for _, p := range paths {
			if _, err := os.Stat(p); (err == nil) != want {
				t.Errorf("%s: exists=%v, want %v", p, err == nil, want)
			}
		}
	}

	pids := start("2")

	// An exec running when the controller dies ends with 12 after a few
	// seconds (the client's keepalive), not when its code would have.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	long, _, longErr := e.command(ctx, "exec", "--cluster-id", id, "time.Sleep(90*time.Second)")
	if err := long.Start(); err != nil {
		t.Fatal(err)
	}
	waitQueued(t, e.profile, id)
	kill(pids[0])
	killed := time.Now()
	code := e.exitCode([]string{"exec"}, long.Wait())
	t.Logf("exec in flight ended %v after the kill: exit %d\n%s", time.Since(killed), code, longErr)
	if code != ExitNoCluster || !strings.Contains(longErr.String(), "stopped answering") {
		t.Errorf("exec in flight: exit %d, want %d with the controller loss\n%s", code, ExitNoCluster, longErr)
	}
	if took := time.Since(killed); took > 30*time.Second {
		t.Errorf("exec in flight took %v to notice the dead controller", took)
	}
	exist(true, clusterFile, clientFile, engineFile)

	// A new exec finds out from the cluster file's pid, without trying
	// to connect (that would wait 10 s and exit 1).
	began := time.Now()
	_, errOut := e.must(ExitNoCluster, "exec", "--cluster-id", id, "fmt.Println(1)")
	t.Logf("exec on the dead cluster: %v\n%s", time.Since(began), errOut)
	if !strings.Contains(errOut, "controller had died") || !strings.Contains(errOut, "ipcluster stop --cluster-id=k") {
		t.Errorf("exec on the dead cluster does not say why and what to do:\n%s", errOut)
	}
	exist(false, clientFile, engineFile)

	// list and start agree: the cluster is not running, its engines are
	// still there to be stopped.
	if rows := e.listRows(); !slices.Equal(rows, []string{"default k False 2 Local -"}) {
		t.Errorf("list after the kill: %q", rows)
	}
	_, errOut = e.must(0, "stop", "--cluster-id", id)
	if !strings.Contains(errOut, "had lost its controller") || !strings.Contains(errOut, "stopped the 2 engine processes") {
		t.Errorf("stop of the dead cluster says:\n%s", errOut)
	}
	for _, pid := range pids {
		if launchers.PIDAlive(pid) {
			t.Errorf("pid %d alive after stop", pid)
		}
	}
	exist(false, clusterFile, clientFile, engineFile)
	e.must(ExitAlreadyStopped, "stop", "--cluster-id", id)

	// start over a killed controller replaces the cluster and stops the
	// engine it left; list then shows the new one running, and start
	// refuses.
	old := start("1")
	kill(old[0])
	cur := start("1")
	if launchers.PIDAlive(old[1]) {
		t.Errorf("engine %d of the dead controller left running by start", old[1])
	}
	if rows := e.listRows(); !slices.Equal(rows, []string{"default k True 1/1 Local -"}) {
		t.Errorf("list after the restart: %q", rows)
	}
	e.must(ExitAlreadyStarted, "start", "-n", "1", "--daemonize", "--cluster-id", id)

	// clean --cluster-id removes the files of a killed cluster (and
	// stops its engine).
	kill(cur[0])
	exist(true, clusterFile, clientFile, engineFile, dbFile)
	if logs, _ := launchers.ClusterLogFiles(e.profile, id); len(logs) == 0 {
		t.Error("no log files of the cluster before clean")
	}
	_, errOut = e.must(0, "clean", "--cluster-id", id)
	t.Logf("clean: %s", errOut)
	if launchers.PIDAlive(cur[1]) {
		t.Errorf("engine %d left running by clean", cur[1])
	}
	exist(false, clusterFile, clusterFile+".lock", clientFile, engineFile, dbFile, dbFile+"-wal", dbFile+".prev")
	if logs, _ := launchers.ClusterLogFiles(e.profile, id); len(logs) != 0 {
		t.Errorf("logs left by clean: %v", logs)
	}
	if rows := e.listRows(); len(rows) != 0 {
		t.Errorf("list after clean: %q", rows)
	}
}

// waitQueued waits until a request is queued or running on an engine of
// the cluster.
func waitQueued(t *testing.T, profileDir, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := ipp.ConnectProfile(ctx, profileDir, id)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	testutil.Eventually(t, time.Minute, func() bool {
		qs, err := c.QueueStatus(ctx)
		if err != nil {
			return false
		}
		for _, q := range qs.Engines {
			if q.Queue > 0 {
				return true
			}
		}
		return false
	}, "the exec request never reached an engine")
}

// TestEndToEndKilledEngine: an engine SIGKILLed while exec runs a long
// snippet everywhere is reported by exec at once, with its EngineError,
// while the other engine is still running; exec then finishes with the
// other's output and exit 1.
func TestEndToEndKilledEngine(t *testing.T) {
	e := newE2E(t)
	const id = "ke"
	e.must(0, "start", "-n", "2", "--daemonize", "--cluster-id", id, "--wait-timeout", "60")
	pids := recordedPIDs(t, wire.ClusterFile(e.profile, id)) // the controller first
	e.pids = append(e.pids, pids...)
	defer e.run("stop", "--cluster-id", id)
	if len(pids) != 3 {
		t.Fatalf("pids %v, want the controller and 2 engines", pids)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	long, _, _ := e.command(ctx, "exec", "--cluster-id", id, "time.Sleep(20*time.Second); fmt.Println(\"survived\")")
	// Read while it runs: the buffers must be safe for that.
	var out, errOut testutil.SyncBuffer
	long.Stdout, long.Stderr = &out, &errOut
	if err := long.Start(); err != nil {
		t.Fatal(err)
	}
	waitQueued(t, e.profile, id)
	victim := pids[1]
	syscall.Kill(victim, syscall.SIGKILL)
	killed := time.Now()
	testutil.Eventually(t, 15*time.Second, func() bool { return strings.Contains(errOut.String(), "EngineError") },
		"exec did not report the killed engine while the other still ran")
	t.Logf("EngineError shown %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
	code := e.exitCode([]string{"exec"}, long.Wait())
	if code != ExitError || !strings.Contains(out.String(), "survived") || strings.Count(errOut.String(), "EngineError") != 1 {
		t.Errorf("exec: exit %d, want %d; stdout:\n%s\nstderr:\n%s", code, ExitError, out.String(), errOut.String())
	}
}
