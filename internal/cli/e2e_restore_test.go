package cli

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/launchers"
)

// TestEndToEndRestore SIGKILLs the controller of a daemonized cluster
// with the built binary, lets `ipcluster list` find it dead (which removes
// its connection files), and restarts it with `ipcluster start
// --restore`: the same engine processes come back with the same ids and
// run code again; a second --restore while it runs is refused, and one
// with -n is refused before anything starts.
func TestEndToEndRestore(t *testing.T) {
	e := newE2E(t)
	e.env = append(e.env, "IPP_CONTROLLER_TIMEOUT=600")
	const id = "rs"
	clusterFile := wire.ClusterFile(e.profile, id)
	e.must(0, "start", "-n", "2", "--daemonize", "--cluster-id", id, "--wait-timeout", "60")
	pids := recordedPIDs(t, clusterFile) // the controller first
	e.pids = append(e.pids, pids...)
	defer e.run("stop", "--cluster-id", id)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	engines := func() map[int]string {
		t.Helper()
		c, err := ipp.ConnectProfile(ctx, e.profile, id)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		infos, err := c.Engines(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := map[int]string{}
		for _, i := range infos {
			m[i.ID] = i.UUID
		}
		return m
	}
	before := engines()

	if _, errOut, code := e.run("start", "--restore", "-n", "1", "--cluster-id", id); code == 0 || !strings.Contains(errOut, "--restore starts only the controller") {
		t.Errorf("start --restore -n 1: exit %d:\n%s", code, errOut)
	}
	syscall.Kill(pids[0], syscall.SIGKILL)
	testutil.Eventually(t, 10*time.Second, func() bool { return !launchers.PIDAlive(pids[0]) }, "controller survived SIGKILL")
	e.listRows() // finds the controller dead and removes its connection files

	_, errOut := e.must(0, "start", "--restore", "--daemonize", "--cluster-id", id, "--wait-timeout", "60")
	t.Logf("start --restore:\n%s", errOut)
	now := recordedPIDs(t, clusterFile)
	e.pids = append(e.pids, now[0])
	if len(now) != 3 || now[0] == pids[0] || !slices.Equal(slices.Sorted(slices.Values(now[1:])), slices.Sorted(slices.Values(pids[1:]))) {
		t.Errorf("pids after the restore %v, before %v: want a new controller and the same engines", now, pids)
	}
	for _, pid := range pids[1:] {
		if !launchers.PIDAlive(pid) {
			t.Errorf("engine %d did not survive the restore", pid)
		}
	}
	var after map[int]string
	testutil.Eventually(t, 90*time.Second, func() bool {
		after = engines()
		return fmt.Sprint(after) == fmt.Sprint(before)
	}, "the engines did not come back with their ids (before %v)", before)
	out, _ := e.must(0, "exec", "--cluster-id", id, "fmt.Println(\"back\")")
	if strings.Count(out, "back") != 2 {
		t.Errorf("exec after the restore:\n%s", out)
	}
	_, errOut = e.must(ExitAlreadyStarted, "start", "--restore", "--daemonize", "--cluster-id", id)
	if !strings.Contains(errOut, "nothing to restore") {
		t.Errorf("restore of a running cluster says:\n%s", errOut)
	}
}

// TestEndToEndAutoRestore: ipcluster start --auto-restore in the
// foreground restarts a controller that was SIGKILLed, over the same
// engine process, which comes back with its id; SIGTERM then stops it all.
func TestEndToEndAutoRestore(t *testing.T) {
	e := newE2E(t)
	e.env = append(e.env, "IPP_CONTROLLER_TIMEOUT=600")
	const id = "ar"
	clusterFile := wire.ClusterFile(e.profile, id)
	if _, errOut, code := e.run("start", "--auto-restore", "1", "--daemonize", "--cluster-id", id); code == 0 || !strings.Contains(errOut, "foreground") {
		t.Errorf("--auto-restore with --daemonize: exit %d:\n%s", code, errOut)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	fg, _, fgErr := e.command(ctx, "start", "-n", "1", "--auto-restore", "2", "--cluster-id", id, "--wait-timeout", "60")
	if err := fg.Start(); err != nil {
		t.Fatal(err)
	}
	fgDone := make(chan error, 1)
	go func() { fgDone <- fg.Wait() }()
	defer func() {
		fg.Process.Kill()
		<-fgDone
	}()
	var pids []int
	testutil.Eventually(t, 90*time.Second, func() bool {
		if _, err := os.Stat(clusterFile); err != nil {
			return false
		}
		f, err := launchers.ReadClusterFile(clusterFile)
		if err != nil || f.Controller == nil || len(f.Engines.Sets) == 0 {
			return false
		}
		pids = recordedPIDs(t, clusterFile)
		return len(pids) == 2
	}, "the foreground cluster did not start")
	e.pids = append(e.pids, pids...)
	testutil.Eventually(t, 90*time.Second, func() bool {
		out, _, code := e.run("exec", "--cluster-id", id, "fmt.Println(\"first\")")
		return code == 0 && strings.Contains(out, "first")
	}, "exec never worked before the kill:\n%s", fgErr)

	syscall.Kill(pids[0], syscall.SIGKILL)
	var now []int
	testutil.Eventually(t, 90*time.Second, func() bool {
		now = recordedPIDs(t, clusterFile)
		return len(now) == 2 && now[0] != pids[0] && launchers.PIDAlive(now[0])
	}, "no new controller after the kill; ipcluster says:\n%s", fgErr)
	e.pids = append(e.pids, now[0])
	if now[1] != pids[1] || !launchers.PIDAlive(pids[1]) {
		t.Errorf("engine pid %v after the restart, want the same %d alive", now[1:], pids[1])
	}
	testutil.Eventually(t, 90*time.Second, func() bool {
		out, _, code := e.run("exec", "--cluster-id", id, "fmt.Println(\"again\")")
		return code == 0 && strings.Contains(out, "again")
	}, "exec never worked after the automatic restart")

	fg.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-fgDone:
		fgDone <- err
		if code := e.exitCode([]string{"start"}, err); code != 0 {
			t.Errorf("foreground ipcluster exit %d after SIGTERM:\n%s", code, fgErr)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("foreground ipcluster did not stop on SIGTERM:\n%s", fgErr)
	}
	for _, pid := range append(now, pids...) {
		if launchers.PIDAlive(pid) {
			t.Errorf("pid %d alive after the cluster stopped", pid)
		}
	}
	if !strings.Contains(fgErr.String(), "auto-restore") {
		t.Errorf("ipcluster did not log the automatic restart:\n%s", fgErr)
	}
}
