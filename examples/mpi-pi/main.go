// Command mpi-pi estimates π by Monte Carlo on MPI engines: every rank
// draws its share of the samples from its own seeded generator, and
// mpi.AllreduceInt64 sums the hits over the world communicator, so every
// rank ends up with the same estimate. The client only starts the work and
// checks that all ranks agree; the data never travels through the
// controller.
//
//	bin/ipcluster start --engines mpiexec -n 4 --daemonize
//	go run ./examples/mpi-pi -samples 2000000
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
)

// estimate runs on every rank (interpreted Go; mpi, fmt and time need no
// import on MPI engines). It reads piSamples and piSeed, which the client
// pushes, and leaves pi, piHits and piSecs in the rank's namespace.
const estimate = `
import "math/rand"

piT0 := time.Now()
piShare := piSamples / mpi.Size()
if mpi.Rank() < piSamples%mpi.Size() {
	piShare++
}
piRng := rand.New(rand.NewSource(piSeed + int64(mpi.Rank())))
var piLocal int64
for i := 0; i < piShare; i++ {
	x, y := piRng.Float64(), piRng.Float64()
	if x*x+y*y <= 1 {
		piLocal++
	}
}
piHits, err := mpi.AllreduceInt64(piLocal, mpi.Sum)
if err != nil {
	panic(err)
}
// The slowest rank's sampling time, as a float64 reduction.
piSecs, err := mpi.AllreduceFloat64(time.Since(piT0).Seconds(), mpi.Max)
if err != nil {
	panic(err)
}
pi := 4 * float64(piHits) / float64(piSamples)
fmt.Printf("rank %d of %d: %d of %d samples inside, pi ~ %.8f\n", mpi.Rank(), mpi.Size(), piLocal, piShare, pi)
`

func main() {
	profile := flag.String("profile", "default", "profile name or directory")
	clusterID := flag.String("cluster-id", "", "cluster id")
	samples := flag.Int("samples", 2_000_000, "samples in total, shared among the ranks")
	seed := flag.Int64("seed", 1, "rank r seeds its generator with seed+r")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	flag.Parse()

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
	fmt.Printf("%d MPI ranks (%s)\n", len(engines), engines[0].MPIFlavor)

	all := c.All()
	push, err := all.Push(ctx, map[string]any{"piSamples": *samples, "piSeed": *seed})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := push.Get(ctx); err != nil {
		log.Fatal(err)
	}

	t0 := time.Now()
	run, err := all.Execute(ctx, estimate)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := run.Get(ctx); err != nil {
		log.Fatal(err)
	}
	elapsed := time.Since(t0)
	for _, out := range run.Stdout() {
		fmt.Print(out)
	}

	// Every rank holds the reduced value: read it back and check they agree.
	ev, err := all.Apply(ctx, "ipp.eval", "pi")
	if err != nil {
		log.Fatal(err)
	}
	pis, err := ipp.GetAll[float64](ctx, ev)
	if err != nil {
		log.Fatal(err)
	}
	for i, v := range pis {
		if v != pis[0] {
			log.Fatalf("ranks disagree: engine %d has %v, engine %d has %v", engines[0].ID, pis[0], engines[i].ID, v)
		}
	}
	secs, err := all.Apply(ctx, "ipp.eval", "piSecs")
	if err != nil {
		log.Fatal(err)
	}
	slowest, err := ipp.GetAll[float64](ctx, secs)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("π ≈ %.8f (error %.2e) from %d samples on %d ranks, all ranks agree; %v (slowest rank sampled for %.3fs)\n",
		pis[0], math.Abs(pis[0]-math.Pi), *samples, len(pis), elapsed.Round(time.Millisecond), slowest[0])
}
