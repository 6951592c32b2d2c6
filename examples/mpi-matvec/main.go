// Command mpi-matvec computes y = A·x for an N×N matrix with MPI engines:
// the client sends each rank a contiguous block of rows of A and all of x,
// each rank multiplies its block with gonum, and mpi.Allgather assembles
// the whole y on every rank. The client pulls y from rank 0 and compares
// it with the product computed locally.
//
//	bin/ipcluster start --engines mpiexec -n 4 --daemonize
//	go run ./examples/mpi-matvec -n 2000
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"os/signal"
	"time"

	"github.com/ipp-hpc/ipp"
	"gonum.org/v1/gonum/mat"
)

// matvec runs on every rank. mvBlock holds mvRows×mvN values of A (row
// major), mvX the N values of x. Every rank has the same number of rows
// (the last ones padded with zero rows when N is not a multiple of the
// world size), as Allgather needs equal parts; mvY keeps the first N.
const matvec = `
import "gonum.org/v1/gonum/mat"

mvA := mat.NewDense(mvRows, mvN, mvBlock)
var mvPart mat.VecDense
mvPart.MulVec(mvA, mat.NewVecDense(mvN, mvX))
mvAll := make([]float64, mvRows*mpi.Size())
if err := mpi.Allgather(mvPart.RawVector().Data, mvAll); err != nil {
	panic(err)
}
mvY := mvAll[:mvN]
mvLo, mvHi := mpi.Rank()*mvRows, mpi.Rank()*mvRows+mvRows
if mvHi > mvN {
	mvHi = mvN
}
if mvLo >= mvHi {
	fmt.Printf("rank %d: padding only, |y| = %.6g\n", mpi.Rank(), mat.Norm(mat.NewVecDense(mvN, mvY), 2))
} else {
	fmt.Printf("rank %d: rows %d..%d, |y| = %.6g\n", mpi.Rank(), mvLo, mvHi-1, mat.Norm(mat.NewVecDense(mvN, mvY), 2))
}
`

func main() {
	profile := flag.String("profile", "default", "profile name or directory")
	clusterID := flag.String("cluster-id", "", "cluster id")
	n := flag.Int("n", 1000, "matrix order N")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	flag.Parse()
	if *n < 1 {
		log.Fatal("-n must be at least 1")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	c, err := ipp.ConnectProfile(ctx, *profile, *clusterID)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.WaitForEngines(ctx, 1); err != nil {
		log.Fatal(err)
	}
	engines, err := c.MPIWorld(ctx)
	if err != nil {
		log.Fatal(err)
	}
	// MPIWorld orders the engines by rank: block r of rows goes to rank r,
	// whatever the engine ids are.
	size := len(engines)

	// Deterministic A and x.
	N := *n
	a := make([]float64, N*N)
	for i := 0; i < N; i++ {
		for j := 0; j < N; j++ {
			a[i*N+j] = math.Sin(float64(i+1)) * math.Cos(float64(j)/7)
		}
	}
	x := make([]float64, N)
	for j := range x {
		x[j] = 1 / float64(j+1)
	}

	t0 := time.Now()
	rows := (N + size - 1) / size
	var pushes []*ipp.AsyncResult
	for r, e := range engines {
		block := make([]float64, rows*N) // zero rows past N
		lo, hi := min(r*rows, N), min((r+1)*rows, N)
		copy(block, a[lo*N:hi*N])
		ar, err := c.View(e.ID).Push(ctx, map[string]any{"mvBlock": block, "mvRows": rows, "mvN": N})
		if err != nil {
			log.Fatal(err)
		}
		pushes = append(pushes, ar)
	}
	ar, err := c.All().Push(ctx, map[string]any{"mvX": x})
	if err != nil {
		log.Fatal(err)
	}
	pushes = append(pushes, ar)
	for _, p := range pushes {
		if _, err := p.Get(ctx); err != nil {
			log.Fatal(err)
		}
	}
	tPush := time.Since(t0)

	run, err := c.All().Execute(ctx, matvec)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := run.Get(ctx); err != nil {
		log.Fatal(err)
	}
	for _, out := range run.Stdout() {
		fmt.Print(out)
	}
	pull, err := c.View(engines[0].ID).Pull(ctx, "mvY")
	if err != nil {
		log.Fatal(err)
	}
	y, err := ipp.Get[[]float64](ctx, pull)
	if err != nil {
		log.Fatal(err)
	}
	tAll := time.Since(t0)

	var want mat.VecDense
	want.MulVec(mat.NewDense(N, N, a), mat.NewVecDense(N, x))
	if len(y) != N {
		log.Fatalf("rank 0 returned %d values, want %d", len(y), N)
	}
	maxDiff := 0.0
	for i, v := range y {
		maxDiff = math.Max(maxDiff, math.Abs(v-want.AtVec(i)))
	}
	fmt.Printf("y = A·x for N=%d on %d ranks (blocks of %d rows): max |y - y_local| = %.3g; push %v, total %v\n",
		N, size, rows, maxDiff, tPush.Round(time.Millisecond), tAll.Round(time.Millisecond))
	if maxDiff > 1e-9*float64(N) {
		log.Fatal("the distributed product differs from the local one")
	}
}
