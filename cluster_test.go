package ipp

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/testutil"
)

// TestClusterPython drives Cluster with the local launchers, the
// processes being Python's controller and engines (7.1 reads its profile
// and cluster id from argv, not the environment).
func TestClusterPython(t *testing.T) {
	py := testutil.NeedPython(t, "ipyparallel", "zmq")
	root := t.TempDir()
	t.Setenv("IPYTHONDIR", filepath.Join(root, "ipython"))
	prof := filepath.Join(root, "profile_cluster")
	const cid = "gotest"
	where := []string{"--profile-dir=" + prof, "--cluster-id=" + cid}
	cl, err := NewCluster(ClusterOptions{
		N: 2, ProfileDir: prof, ClusterID: cid, ControllerIP: "127.0.0.1",
		ControllerCmd: append([]string{py, "-m", "ipyparallel.controller"}, where...),
		EngineCmd:     append([]string{py, "-m", "ipyparallel.engine"}, where...),
		ClientOptions: testOptions(),
		Logger:        testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 90*time.Second)
	t.Cleanup(func() { cl.Stop(ctxT(t, 30*time.Second)) })
	c, err := cl.StartAndConnect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Python engines fork a nanny into a session of its own, out of reach
	// of the launcher's process-group sweep; stop those by pid.
	var nannies []int
	for _, pid := range cl.lc.PIDs() {
		nannies = append(nannies, childPIDs(pid)...)
	}
	t.Cleanup(func() {
		for _, pid := range nannies {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	if got := len(c.IDs()); got != 2 {
		t.Fatalf("%d engines", got)
	}
	ar, err := c.All().Execute(ctx, "print('up')")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cl.String(), cid) {
		t.Errorf("String() = %s", cl.String())
	}
	if _, err := os.Stat(cl.File()); err != nil {
		t.Fatalf("no cluster file: %v", err)
	}

	// Another "process" takes the cluster over from its file and stops it.
	other, err := ClusterFromFile(ctx, cl.File())
	if err != nil {
		t.Fatal(err)
	}
	if !other.Running() || other.ClusterID() != cid || other.ProfileDir() != prof {
		t.Fatalf("from file: running=%v id=%q dir=%q", other.Running(), other.ClusterID(), other.ProfileDir())
	}
	if err := other.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if other.Running() || cl.Running() {
		t.Error("still running after Stop")
	}
	if _, err := os.Stat(cl.File()); !os.IsNotExist(err) {
		t.Errorf("cluster file left behind: %v", err)
	}
}

// TestClusterEnginesExitEarly: StartAndConnect gives up as soon as every
// engine process has exited instead of waiting out EngineTimeout.
func TestClusterEnginesExitEarly(t *testing.T) {
	py := testutil.NeedPython(t, "ipyparallel", "zmq")
	root := t.TempDir()
	t.Setenv("IPYTHONDIR", filepath.Join(root, "ipython"))
	prof := filepath.Join(root, "profile_early")
	const cid = "early"
	cl, err := NewCluster(ClusterOptions{
		N: 2, ProfileDir: prof, ClusterID: cid, ControllerIP: "127.0.0.1",
		ControllerCmd: []string{py, "-m", "ipyparallel.controller", "--profile-dir=" + prof, "--cluster-id=" + cid},
		EngineCmd:     []string{"/bin/sh", "-c", "echo engine failing >&2; exit 3"},
		EngineTimeout: 50 * time.Second,
		ClientOptions: testOptions(),
		Logger:        testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Stop(ctxT(t, 30*time.Second)) })
	start := time.Now()
	_, err = cl.StartAndConnect(ctxT(t, 60*time.Second))
	if !errors.Is(err, errEngineSetEnded) {
		t.Fatalf("want errEngineSetEnded, got %v", err)
	}
	if !strings.Contains(err.Error(), "exit code 3") {
		t.Errorf("error does not say how the engines ended: %v", err)
	}
	t.Logf("error: %v", err)
	if time.Since(start) > 30*time.Second {
		t.Errorf("took %v: did not fail early", time.Since(start))
	}
}
