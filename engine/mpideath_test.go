//go:build ompi || mpich

package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/protocol"
)

// TestMPIRankDeath kills one of two MPI engine ranks while it runs a long
// request: the client's request must fail with an EngineError within a
// deadline, not hang, and the controller must stop listing that engine.
// Open MPI's mpiexec then aborts the whole job (rank 0 dies too) and
// MPICH's may; either is accepted, but rank 1's death must be reported.
func TestMPIRankDeath(t *testing.T) {
	// A short heartbeat so the death is noticed in about a second.
	c, err := controller.New(controller.Config{HeartbeatPeriod: 200 * time.Millisecond, HeartbeatMisses: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv(protocol.EnvEngineIDBase, "")
	ranks := startRanks(t, c, 2, protocol.EnvMPISize+"=2")

	ctx, client, infos := connectRanks(t, c, ranks, 2)
	var victim ipp.EngineInfo
	found := false
	for _, e := range infos {
		if e.MPIRank == 1 {
			victim, found = e, true
		}
	}
	if len(infos) != 2 || !found {
		t.Fatalf("engines %+v, want ranks 0 and 1", infos)
	}
	if victim.PID <= 0 || victim.PID == os.Getpid() || victim.PID == ranks.cmd.Process.Pid {
		t.Fatalf("rank 1 reports pid %d (test %d, mpiexec %d), want its own process", victim.PID, os.Getpid(), ranks.cmd.Process.Pid)
	}
	// The pid must be a rank of this launch: a descendant of mpiexec
	// (Open MPI puts each rank in a process group of its own).
	if !descendsFrom(victim.PID, ranks.cmd.Process.Pid) {
		t.Fatalf("rank 1's pid %d does not descend from mpiexec (pid %d)", victim.PID, ranks.cmd.Process.Pid)
	}

	long, err := client.View(victim.ID).Execute(ctx, `fmt.Println("started"); time.Sleep(30 * time.Second)`)
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the hub has the request outstanding on rank 1, so the
	// kill lands on a request in flight rather than before it was sent.
	for {
		qs, err := client.QueueStatus(ctx, victim.ID)
		if err != nil {
			t.Fatal(err)
		}
		if qs.Engines[victim.ID].Queue > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("request never queued on engine %d: %+v", victim.ID, qs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if long.Ready() {
		t.Fatalf("30 s request finished before the kill")
	}
	killed := time.Now()
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill rank 1 (pid %d): %v", victim.PID, err)
	}

	// The outstanding request fails with an EngineError, well before the
	// 30 s it would have taken had the engine lived.
	getCtx, getCancel := context.WithTimeout(ctx, 20*time.Second)
	defer getCancel()
	_, err = long.Get(getCtx)
	switch {
	case errors.Is(err, context.DeadlineExceeded) && getCtx.Err() != nil:
		t.Fatalf("request to the killed rank still pending after %s; output:\n%s", time.Since(killed).Round(time.Millisecond), ranks.out.String())
	case !ipp.IsEngineError(err):
		t.Fatalf("request to the killed rank: %v (%T), want an EngineError", err, err)
	}
	t.Logf("EngineError %s after the kill: %v", time.Since(killed).Round(time.Millisecond), err)

	// The controller no longer lists rank 1, asked in process (the hub
	// unregisters the engine as it fails its requests; poll in case that
	// trails) and over the wire.
	for {
		listed := false
		for _, e := range c.Engines() {
			if e.ID == victim.ID || e.UUID == victim.UUID {
				listed = true
			}
		}
		if !listed {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("dead engine %d still registered in the controller: %+v", victim.ID, c.Engines())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		now, err := client.Engines(ctx)
		if err != nil {
			t.Fatal(err)
		}
		listed := false
		for _, e := range now {
			if e.ID == victim.ID {
				listed = true
			}
		}
		if !listed {
			t.Logf("after the kill the client lists %d engine(s), the controller %d (mpiexec may take rank 0 down too)",
				len(now), len(c.Engines()))
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("dead engine %d still listed by the controller: %+v", victim.ID, now)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The client's own list follows the controller's unregistration
	// notice; give it the same deadline.
	for containsInt(client.IDs(), victim.ID) {
		if ctx.Err() != nil {
			t.Fatalf("client still lists dead engine %d: %v", victim.ID, client.IDs())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// mpiexec must not outlive the job: with a rank gone, it aborts (or,
	// if rank 0 survived, ends when that engine is shut down).
	if rest, err := client.Engines(ctx); err == nil && len(rest) > 0 {
		if err := client.Shutdown(ctx, false); err != nil {
			t.Logf("shutdown of the surviving engines: %v", err)
		}
	}
	err = ranks.wait(t, 30*time.Second)
	t.Logf("mpiexec exited %s after the kill: %v", time.Since(killed).Round(time.Millisecond), err)
	if err == nil {
		t.Errorf("mpiexec exited 0 although rank 1 was killed; output:\n%s", ranks.out.String())
	}
}

// descendsFrom reports whether pid's chain of parents, read from
// /proc/<pid>/stat, reaches ancestor.
func descendsFrom(pid, ancestor int) bool {
	for range 64 {
		if pid == ancestor {
			return true
		}
		if pid <= 1 {
			return false
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		// Fields after the command name, which sits in parentheses and
		// may itself contain spaces: state, ppid, ...
		rest := string(b[bytes.LastIndexByte(b, ')')+1:])
		var state string
		if _, err := fmt.Sscan(rest, &state, &pid); err != nil {
			return false
		}
	}
	return false
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
