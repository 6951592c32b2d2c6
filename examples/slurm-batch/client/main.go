// Command client is the program the slurm-batch example scripts run
// against a cluster they started: it connects by profile and cluster id,
// waits for the engines, and checks three kinds of work — a direct-view
// computation, an MPI collective among the engines, and a load-balanced
// map — printing each result. Any failure, including a wrong answer, ends
// it with a non-zero status, so a job script can trust its exit code.
//
//	ipcluster start --launcher slurm -n 4 --daemonize
//	go run ./examples/slurm-batch/client -n 4
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"maps"
	"os"
	"os/signal"
	"slices"
	"time"

	"github.com/ipp-hpc/ipp"
)

// square is defined in every engine's namespace for the load-balanced map.
const square = `func square(x int) int { return x * x }`

// partSum runs on every engine over its scattered part.
const partSum = `
partSum := 0
for _, v := range part {
	partSum += v
}
`

func main() {
	log.SetFlags(0)
	log.SetPrefix("client: ")
	profile := flag.String("profile", "default", "profile name, or a profile directory (a path)")
	clusterID := flag.String("cluster-id", "", "cluster id")
	n := flag.Int("n", 1, "engines to wait for")
	items := flag.Int("items", 100, "numbers summed by the direct view and squared by the map")
	mpi := flag.Bool("mpi", true, "check an MPI collective (needs MPI engines: srun or the slurm launcher)")
	timeout := flag.Duration("timeout", 3*time.Minute, "give up after this long")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := run(ctx, *profile, *clusterID, *n, *items, *mpi); err != nil {
		log.Printf("FAILED: %v", err)
		os.Exit(1)
	}
	fmt.Println("client: all checks passed")
}

func run(ctx context.Context, profile, clusterID string, n, items int, withMPI bool) error {
	if n < 1 || items < 1 {
		return fmt.Errorf("-n and -items must be at least 1 (got %d, %d)", n, items)
	}
	c, err := ipp.ConnectProfile(ctx, profile, clusterID)
	if err != nil {
		return fmt.Errorf("connecting to profile %q cluster %q: %w", profile, clusterID, err)
	}
	defer c.Close()
	if err := c.WaitForEngines(ctx, n); err != nil {
		return fmt.Errorf("waiting for %d engines: %w", n, err)
	}
	ids, err := c.All().Targets()
	if err != nil {
		return err
	}
	fmt.Printf("client: %d engines registered: %v\n", len(ids), ids)

	numbers := make([]int, items)
	want := 0
	for i := range numbers {
		numbers[i] = i + 1
		want += i + 1
	}
	if err := direct(ctx, c, numbers, want); err != nil {
		return fmt.Errorf("direct view: %w", err)
	}
	if withMPI {
		if err := collective(ctx, c, want); err != nil {
			return fmt.Errorf("MPI: %w", err)
		}
	}
	if err := balanced(ctx, c, numbers); err != nil {
		return fmt.Errorf("load-balanced map: %w", err)
	}
	return nil
}

// direct scatters the numbers over the engines, sums each part where it
// lies, and adds the partial sums pulled back.
func direct(ctx context.Context, c *ipp.Client, numbers []int, want int) error {
	all := c.All()
	sc, err := all.Scatter(ctx, "part", numbers)
	if err != nil {
		return err
	}
	if _, err := sc.Get(ctx); err != nil {
		return err
	}
	ex, err := all.Execute(ctx, partSum)
	if err != nil {
		return err
	}
	if _, err := ex.Get(ctx); err != nil {
		return err
	}
	pull, err := all.Pull(ctx, "partSum")
	if err != nil {
		return err
	}
	parts, err := ipp.GetAll[int](ctx, pull)
	if err != nil {
		return err
	}
	got := 0
	for _, p := range parts {
		got += p
	}
	fmt.Printf("client: direct view: sum of 1..%d in %d parts %v = %d\n", len(numbers), len(parts), parts, got)
	if got != want {
		return fmt.Errorf("sum is %d, want %d", got, want)
	}
	return nil
}

// collective adds the engines' partial sums with MPI_Allreduce among the
// engines themselves, then checks every rank holds the total.
func collective(ctx context.Context, c *ipp.Client, want int) error {
	world, err := c.MPIWorld(ctx)
	if err != nil {
		return err
	}
	ids := make([]int, len(world))
	for i, e := range world {
		ids[i] = e.ID
	}
	ranks := c.View(ids...)
	if len(ids) == 1 {
		// A one-engine view answers with single values; keep the list shape.
		ranks = c.All()
	}
	ar, err := ranks.MPIAllreduce(ctx, "partSum", "total", "sum")
	if err != nil {
		return err
	}
	if _, err := ar.Get(ctx); err != nil {
		return err
	}
	pull, err := ranks.Pull(ctx, "total")
	if err != nil {
		return err
	}
	totals, err := ipp.GetAll[int](ctx, pull)
	if err != nil {
		return err
	}
	fmt.Printf("client: MPI allreduce over %d ranks (%s): totals %v\n", len(world), world[0].MPIFlavor, totals)
	if len(totals) != len(world) {
		return fmt.Errorf("%d answers from %d ranks", len(totals), len(world))
	}
	for i, t := range totals {
		if t != want {
			return fmt.Errorf("rank %d holds %d, want %d", i, t, want)
		}
	}
	return nil
}

// balanced squares the numbers as load-balanced tasks.
func balanced(ctx context.Context, c *ipp.Client, numbers []int) error {
	def, err := c.All().Execute(ctx, square)
	if err != nil {
		return err
	}
	if _, err := def.Get(ctx); err != nil {
		return err
	}
	ar, err := c.LoadBalanced().Map(ctx, "square", numbers)
	if err != nil {
		return err
	}
	got, err := ipp.GetAll[int](ctx, ar)
	if err != nil {
		return err
	}
	if len(got) != len(numbers) {
		return fmt.Errorf("%d results for %d items", len(got), len(numbers))
	}
	sum := 0
	for i, v := range got {
		if v != numbers[i]*numbers[i] {
			return fmt.Errorf("square(%d) = %d", numbers[i], v)
		}
		sum += v
	}
	perEngine := map[int]int{}
	for _, md := range ar.Metadata() {
		perEngine[md.EngineID]++
	}
	engines := slices.Sorted(maps.Keys(perEngine))
	if len(engines) == 0 {
		return errors.New("no task reported its engine")
	}
	fmt.Printf("client: load-balanced map: sum of squares of 1..%d = %d, tasks per engine %v\n", len(numbers), sum, perEngine)
	return nil
}
