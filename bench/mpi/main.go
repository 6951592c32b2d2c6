//go:build ompi || mpich

// Command mpi is the Go side of the MPI benchmark: it times
// Allreduce(SUM) of one float64 (8 B) and of 1,048,576 float64 (8 MiB)
// through package mpi, the same work allreduce.c does in C, and prints on
// rank 0 one JSON object with mean µs per call:
//
//	go_8B_us, go_8MiB_us          plain API calls (each hands off to the MPI goroutine)
//	go_run_8B_us, go_run_8MiB_us  the same loops inside mpi.Run (no hand-off)
//	go_f64_8B_us                  AllreduceFloat64, plain API calls
//
// Build with -tags ompi or -tags mpich and start it with the matching
// mpiexec; run.sh does both beside the C program.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/ipp-hpc/ipp/mpi"
)

const big = 1 << 20

func main() {
	small := flag.Int("small", 10000, "iterations of the 8 B Allreduce")
	large := flag.Int("large", 20, "iterations of the 8 MiB Allreduce")
	flag.Parse()
	if err := run(*small, *large); err != nil {
		fmt.Fprintln(os.Stderr, "bench/mpi:", err)
		os.Exit(1)
	}
}

// timeit runs call warm times, waits at a barrier, then returns the mean
// µs of iters further calls. The barrier uses bar so that inside mpi.Run
// no hand-off is needed.
func timeit(call func() error, bar func() error, warm, iters int) (float64, error) {
	for range warm {
		if err := call(); err != nil {
			return 0, err
		}
	}
	if err := bar(); err != nil {
		return 0, err
	}
	t0 := time.Now()
	for range iters {
		if err := call(); err != nil {
			return 0, err
		}
	}
	return float64(time.Since(t0).Nanoseconds()) / 1e3 / float64(iters), nil
}

func run(small, large int) error {
	if err := mpi.Init(); err != nil {
		return err
	}
	defer mpi.Finalize()
	rank, size := mpi.Rank(), mpi.Size()

	x, y := []float64{float64(rank + 1)}, []float64{0}
	a, b := make([]float64, big), make([]float64, big)
	for i := range a {
		a[i] = float64(rank) + float64(i)*1e-6
	}
	one := func() error { return mpi.Allreduce(x, y, mpi.Sum) }
	all := func() error { return mpi.Allreduce(a, b, mpi.Sum) }
	var f64 float64
	scalar := func() (err error) { f64, err = mpi.AllreduceFloat64(float64(rank+1), mpi.Sum); return }

	res := map[string]any{"ranks": size}
	var err error
	measure := func(key string, call func() error, warm, iters int) {
		if err != nil {
			return
		}
		var us float64
		us, err = timeit(call, mpi.Barrier, warm, iters)
		res[key] = us
	}
	// (a) plain API calls.
	measure("go_8B_us", one, small/10+1, small)
	measure("go_8MiB_us", all, 2, large)
	// (c) AllreduceFloat64.
	measure("go_f64_8B_us", scalar, small/10+1, small)
	// (b) inside mpi.Run: the calls in f go straight to MPI.
	if err == nil {
		if rerr := mpi.Run(func() {
			measure("go_run_8B_us", one, small/10+1, small)
			measure("go_run_8MiB_us", all, 2, large)
		}); rerr != nil {
			return rerr
		}
	}
	if err != nil {
		return err
	}
	want := float64(size*(size+1)) / 2
	if y[0] != want || f64 != want {
		return fmt.Errorf("rank %d: 8 B sums %g and %g, want %g", rank, y[0], f64, want)
	}
	if rank == 0 {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	return nil
}
