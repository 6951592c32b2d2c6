package ipp

import (
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/testutil"
)

// TestGoControllerPythonEngines runs the Go controller in this process with
// real Python engines: the client must not care whose controller it talks
// to.
func TestGoControllerPythonEngines(t *testing.T) {
	testutil.NeedPython(t, "ipyparallel", "zmq")
	root := t.TempDir()
	pc := &pyCluster{root: root, dir: root + "/profile_goctl"}
	pc.env = append(os.Environ(), "IPYTHONDIR="+root+"/ipython", protocol.EnvNonInteractive+"=1")
	ctrl, err := controller.New(controller.Config{ProfileDir: pc.dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := ctrl.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctrl.Close() })
	t.Cleanup(pc.stop)
	for i := 0; i < 2; i++ {
		if _, err := pc.addEngine(); err != nil {
			t.Fatal(err)
		}
	}
	c := pc.client(t, 2)
	ctx := ctxT(t, 60*time.Second)

	ar, err := c.All().Execute(ctx, "import os\nprint(os.getpid())")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.Get(ctx); err != nil {
		t.Fatal(err)
	}
	pids := map[int]int{}
	for i, out := range ar.Stdout() {
		pid, err := strconv.Atoi(strings.TrimSpace(out))
		if err != nil {
			t.Fatalf("stdout %q", out)
		}
		pids[pid] = ar.EngineIDs()[i]
	}
	lb, err := c.LoadBalanced().Execute(ctx, "1/0")
	if err != nil {
		t.Fatal(err)
	}
	var re *RemoteError
	if _, err := lb.Get(ctx); !errors.As(err, &re) || re.EName != "ZeroDivisionError" || re.Engine < 0 {
		t.Errorf("lb error: %v", err)
	}
	engines, err := c.Engines(ctx)
	if err != nil || len(engines) != 2 {
		t.Fatalf("engines %v %v", engines, err)
	}
	qs, err := c.QueueStatus(ctx)
	if err != nil || len(qs.Engines) != 2 {
		t.Errorf("queue status %+v %v", qs, err)
	}
	bc, err := c.Broadcast().Execute(ctx, "print('b')")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bc.Get(ctx); err != nil || !slices.Equal(bc.Stdout(), []string{"b\n", "b\n"}) {
		t.Errorf("broadcast %q %v", bc.Stdout(), err)
	}

	// SIGKILL one engine during a direct request.
	victim := pc.engines[0]
	vid := pids[victim.Process.Pid]
	long, err := c.View(vid).Execute(ctx, "import time; time.sleep(60)")
	if err != nil {
		t.Fatal(err)
	}
	victim.Process.Signal(syscall.SIGKILL)
	if _, err := long.Get(ctx); !IsEngineError(err) {
		t.Fatalf("want EngineError, got %v", err)
	}
	if slices.Contains(c.IDs(), vid) {
		t.Errorf("dead engine %d still listed", vid)
	}
}
