// Command pi estimates π by Monte Carlo on a running cluster: it defines a
// sampling function on every engine (interpreted Go), then hands batches of
// samples to the load-balancing scheduler with a progress bar, and combines
// the counts.
//
//	bin/ipcluster start -n 4 --daemonize
//	go run ./examples/pi -batches 64 -per-batch 1000000
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

// sampler runs on the engines. Each call draws perTask points (a variable
// the client pushes) in the unit square from its own seeded generator and
// counts those inside the quarter circle.
const sampler = `
import "math/rand"

func sample(seed int) int {
	r := rand.New(rand.NewSource(int64(seed)))
	inside := 0
	for i := 0; i < perTask; i++ {
		x, y := r.Float64(), r.Float64()
		if x*x+y*y <= 1 {
			inside++
		}
	}
	return inside
}
`

func main() {
	profile := flag.String("profile", "default", "profile name")
	clusterID := flag.String("cluster-id", "", "cluster id")
	batches := flag.Int("batches", 32, "tasks to hand to the scheduler")
	perBatch := flag.Int("per-batch", 200000, "samples per task")
	timeout := flag.Duration("timeout", 10*time.Minute, "give up after this long")
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
	// Set perTask and define sample() in every engine's namespace.
	push, err := c.All().Push(ctx, map[string]any{"perTask": *perBatch})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := push.Get(ctx); err != nil {
		log.Fatal(err)
	}
	def, err := c.All().Execute(ctx, sampler)
	if err != nil {
		log.Fatal(err)
	}
	if err := def.Wait(ctx); err != nil {
		log.Fatal(err)
	}
	if _, err := def.Get(ctx); err != nil {
		log.Fatal(err)
	}

	seeds := make([]int, *batches)
	for i := range seeds {
		seeds[i] = i + 1
	}
	t0 := time.Now()
	ar, err := c.LoadBalanced().Map(ctx, "sample", seeds)
	if err != nil {
		log.Fatal(err)
	}
	if err := ar.WaitInteractive(ctx); err != nil {
		log.Fatal(err)
	}
	counts, err := ipp.GetAll[int](ctx, ar)
	if err != nil {
		log.Fatal(err)
	}
	inside := 0
	for _, n := range counts {
		inside += n
	}
	total := *batches * *perBatch
	pi := 4 * float64(inside) / float64(total)
	engines := map[int]int{}
	for _, md := range ar.Metadata() {
		engines[md.EngineID]++
	}
	fmt.Printf("π ≈ %.6f (error %.2e) from %d samples in %v; tasks per engine: %v\n",
		pi, math.Abs(pi-math.Pi), total, time.Since(t0).Round(time.Millisecond), engines)
}
