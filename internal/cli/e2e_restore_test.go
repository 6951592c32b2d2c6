package cli

import (
	"context"
	"fmt"
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
