//go:build ompi || mpich

package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/internal/interp"
)

// TestMPIBarrierInterrupt leaves the last rank out of an mpi.Barrier():
// SIGINT (AsyncResult.Interrupt) must make every engine reply at once,
// other collectives must then fail fast saying why, and one Barrier on
// every rank must bring the set back in step without a restart.
func TestMPIBarrierInterrupt(t *testing.T) {
	c := newTestController(t)
	_, n, _ := mpiLauncher()
	ranks := startRanks(t, c, n)
	ctx, client, _ := connectRanks(t, c, ranks, n)

	// Engine id of each rank.
	ar, err := client.All().Execute(ctx, "fmt.Println(mpi.Rank())")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.Get(ctx); err != nil {
		t.Fatal(err)
	}
	rankOf := map[int]int{}
	for i, out := range ar.Stdout() {
		r, err := strconv.Atoi(strings.TrimSpace(out))
		if err != nil {
			t.Fatalf("rank from %q", out)
		}
		rankOf[ar.EngineIDs()[i]] = r
	}
	last := n - 1
	var waiting []int // engines of the ranks that reach the Barrier
	for id, r := range rankOf {
		if r != last {
			waiting = append(waiting, id)
		}
	}

	ar, err = client.All().Execute(ctx, fmt.Sprintf("fmt.Println(\"in\")\nif mpi.Rank() != %d {\nfmt.Println(mpi.Barrier())\n}", last))
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for o := range ar.Outputs(ctx) {
		if strings.Contains(o.Text, "in") {
			seen++
		}
		if seen == n {
			break
		}
	}
	// The ranks in the Barrier are the ones still running.
	running := ar.RunningEngines()
	if len(running) != len(waiting) {
		t.Logf("running %v, waiting %v (the last rank may not have replied yet)", running, waiting)
	}
	start := time.Now()
	ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := ar.Interrupt(ictx); err != nil {
		t.Fatalf("Interrupt: %v", err)
	}
	_, err = ar.GetList(ictx)
	t.Logf("every engine replied %v after the interrupt", time.Since(start))
	// A waiting rank either reports Interrupted or, when its snippet
	// finished first (the Barrier returned its error to the snippet, which
	// printed it), the Barrier's own explanation.
	failed := map[int]*ipp.RemoteError{}
	var ce *ipp.CompositeError
	if errors.As(err, &ce) {
		for _, re := range ce.Errors {
			failed[re.Engine] = re
		}
	} else if err != nil {
		t.Fatalf("interrupted run: %v", err)
	}
	for i, id := range ar.EngineIDs() {
		out := ar.Stdout()[i]
		re := failed[id]
		switch {
		case rankOf[id] == last:
			if re != nil || out != "in\n" {
				t.Errorf("last rank's engine %d: %q, %v", id, out, re)
			}
		case re != nil && re.EName == interp.NameInterrupted:
		case re == nil && strings.Contains(out, "MPI_Barrier interrupted on rank"):
		default:
			t.Errorf("engine %d (rank %d): output %q, error %v", id, rankOf[id], out, re)
		}
	}

	// The interrupted ranks refuse other collectives, at once and saying why.
	ar, err = client.View(waiting...).Execute(ictx, "_, err := mpi.AllreduceInt64(1, mpi.Sum)\nfmt.Println(err)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.GetList(ictx); err != nil {
		t.Fatalf("exec of a refused collective: %v", err)
	}
	for i, out := range ar.Stdout() {
		if !strings.Contains(out, "MPI_Allreduce refused") || !strings.Contains(out, "call mpi.Barrier() on every rank") {
			t.Errorf("engine %d: %q, want the refusal with its reason", ar.EngineIDs()[i], out)
		}
	}
	// Non-MPI code runs as usual.
	ar, err = client.All().Execute(ictx, "6*7", ipp.Silent(false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.GetList(ictx); err != nil {
		t.Fatalf("plain code after the interrupt: %v", err)
	}

	// One Barrier everywhere brings the set back in step.
	ar, err = client.All().Execute(ictx, "fmt.Println(\"sync\", mpi.Barrier())\nv, err := mpi.AllreduceInt64(1, mpi.Sum)\nfmt.Println(\"sum\", v, err)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.GetList(ictx); err != nil {
		t.Fatalf("recovery: %v; engines %v still running; outputs %q", err, ar.RunningEngines(), ar.Stdout())
		t.Log(ranks.out.String())
	}
	want := fmt.Sprintf("sync <nil>\nsum %d <nil>\n", n)
	for i, out := range ar.Stdout() {
		if out != want {
			t.Errorf("engine %d after recovery: %q, want %q", ar.EngineIDs()[i], out, want)
		}
	}
}
