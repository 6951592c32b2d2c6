//go:build ompi || mpich

package engine

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/testutil"
)

// TestMPIBridge drives collectives from the client over two mpiexec
// ranks: values pushed per rank are reduced, broadcast, gathered and
// scattered by the engines, and the results pulled back match values
// computed here; a view on one rank is refused without reaching any engine.
func TestMPIBridge(t *testing.T) {
	c := newTestController(t)
	t.Setenv(protocol.EnvEngineIDBase, "")
	ranks := startRanks(t, c, 2, protocol.EnvMPISize+"=2")
	ctx, client, infos := connectRanks(t, c, ranks, 2)
	idOf := map[int]int{} // rank → engine id
	for _, e := range infos {
		idOf[e.MPIRank] = e.ID
	}
	if len(infos) != 2 || len(idOf) != 2 {
		t.Fatalf("engines %+v, want ranks 0 and 1", infos)
	}
	// The world id is rank 0's uuid, on both.
	rank0 := infos[0]
	if infos[1].MPIRank == 0 {
		rank0 = infos[1]
	}
	for _, e := range infos {
		if e.MPIWorld == "" || e.MPIWorld != rank0.UUID {
			t.Errorf("engine %d reports world %q, want rank 0's uuid %q", e.ID, e.MPIWorld, rank0.UUID)
		}
	}

	wait := func(what string, ar *ipp.AsyncResult, err error) any {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		v, err := ar.Get(ctx)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	pull := func(rank int, name string) string {
		t.Helper()
		ar, err := client.View(idOf[rank]).Apply(ctx, protocol.PullOne, name)
		return fmt.Sprint(wait("pull "+name, ar, err))
	}
	for r := range 2 {
		ns := map[string]any{
			"x": 1.5 * float64(r+1),
			"v": []float64{float64(r), float64(10 * r)},
			"n": r + 2,
			"w": make([]int32, r+1), // lengths differ between ranks
		}
		if r == 1 {
			ns["b"] = []int64{7, 8, 9}
		}
		if r == 0 {
			ns["s"] = []float64{1, 2, 3, 4}
		}
		ar, err := client.View(idOf[r]).Push(ctx, ns)
		wait("push", ar, err)
	}
	all := client.View(idOf[0], idOf[1])

	ar, err := all.MPIAllreduce(ctx, "x", "y", "sum")
	if got := wait("allreduce", ar, err); got != nil && fmt.Sprint(got) != "[<nil> <nil>]" {
		t.Errorf("allreduce Get = %v, want nothing", got)
	}
	ar, err = all.MPIAllreduce(ctx, "v", "vmax", "max")
	wait("allreduce max", ar, err)
	for r := range 2 {
		if got, want := pull(r, "y"), fmt.Sprint(1.5*1+1.5*2); got != want {
			t.Errorf("y on rank %d = %s, want %s", r, got, want)
		}
		if got, want := pull(r, "vmax"), fmt.Sprint([]float64{1, 10}); got != want {
			t.Errorf("vmax on rank %d = %s, want %s", r, got, want)
		}
	}

	ar, err = all.MPIBcast(ctx, "b", 1)
	wait("bcast", ar, err)
	if got := pull(0, "b"); got != "[7 8 9]" {
		t.Errorf("b on rank 0 after bcast from rank 1 = %s, want [7 8 9]", got)
	}

	ar, err = all.MPIReduce(ctx, "x", "z", "sum", 0)
	if got := wait("reduce", ar, err); fmt.Sprint(got) != fmt.Sprint(4.5) {
		t.Errorf("reduce to rank 0 returned %v (%T), want 4.5", got, got)
	}
	ar, err = all.MPIReduce(ctx, "n", "nprod", "prod", 1)
	if got := wait("reduce prod", ar, err); fmt.Sprint(got) != "6" {
		t.Errorf("prod reduce to rank 1 returned %v, want 2*3 = 6", got)
	}
	ar, err = all.MPIGather(ctx, "v", "g", 1)
	if got := wait("gather", ar, err); fmt.Sprint(got) != "[0 0 1 10]" {
		t.Errorf("gather to rank 1 returned %v, want [0 0 1 10]", got)
	}
	ar, err = all.MPIScatter(ctx, "s", "part", 0)
	wait("scatter", ar, err)
	if got0, got1 := pull(0, "part"), pull(1, "part"); got0 != "[1 2]" || got1 != "[3 4]" {
		t.Errorf("scatter parts %s and %s, want [1 2] and [3 4]", got0, got1)
	}
	ar, err = all.MPIBarrier(ctx)
	wait("barrier", ar, err)

	// Lengths that differ between ranks fail on every rank, not deadlock.
	ar, err = all.MPIAllreduce(ctx, "w", "wsum", "sum")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.GetList(ctx); err == nil || !strings.Contains(err.Error(), "elements on rank") {
		t.Errorf("allreduce over unequal lengths: %v, want a length error from the engines", err)
	}

	// A partial view is refused before anything is sent. Take the
	// baseline once nothing is queued, so the comparison below sees only
	// what the refused call could have added.
	var before *ipp.QueueStatus
	testutil.Eventually(t, 20*time.Second, func() bool {
		qs, err := client.QueueStatus(ctx)
		if err != nil {
			return false
		}
		for _, q := range qs.Engines {
			if q.Queue != 0 {
				return false
			}
		}
		before = qs
		return true
	}, "no request still queued before the refused collective")
	if _, err := client.View(idOf[1]).MPIAllreduce(ctx, "x", "y", "sum"); err == nil ||
		!strings.Contains(err.Error(), "MPI collective refused") || !strings.Contains(err.Error(), "deadlock") {
		t.Errorf("allreduce on one of two ranks: %v, want a refusal", err)
	}
	after, err := client.QueueStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(before.Engines, after.Engines) {
		t.Errorf("queue status changed by a refused collective: %+v → %+v", before.Engines, after.Engines)
	}
	// The engines still serve collectives afterwards, and the barrier is
	// the only request each of them completed since: had the refused
	// allreduce reached rank 1, it would be stuck there instead.
	ar, err = all.MPIBarrier(ctx)
	wait("barrier after refusal", ar, err)
	for {
		qs, err := client.QueueStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		done := true
		for id, q := range qs.Engines {
			want := before.Engines[id]
			want.Completed++
			if q != want {
				done = false
			}
		}
		if done {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("queue status %+v, want one more completed request than %+v", qs.Engines, before.Engines)
		}
		// The hub counts a completion when it relays the reply, which
		// may be after the client has it: poll until the deadline.
		time.Sleep(10 * time.Millisecond)
	}

	if err := client.Shutdown(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := ranks.wait(t, 30*time.Second); err != nil {
		t.Errorf("mpiexec after shutdown: %v; output:\n%s", err, ranks.out.String())
	}
}

// connectRanks connects a Go client to c, waits for the n engines that
// ranks started and returns a context bounded for the test, the client
// and the engines' info.
func connectRanks(t *testing.T, c *controller.Controller, ranks *mpiRanks, n int) (context.Context, *ipp.Client, []ipp.EngineInfo) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	client, err := ipp.ConnectInfo(ctx, c.ClientInfo())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	if err := client.WaitForEngines(ctx, n); err != nil {
		t.Fatalf("engines did not register: %v; output:\n%s", err, ranks.out.String())
	}
	infos, err := client.Engines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, client, infos
}
