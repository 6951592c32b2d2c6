// Command hello connects to a running cluster (started with `ipcluster
// start`, ours or Python's), waits for its engines, runs a snippet on all
// of them and shows what each printed.
//
//	go run ./examples/hello -n 2
//	go run ./examples/hello -profile default -cluster-id "" -code 'print("hi")'  # Python engines
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/ipp-hpc/ipp"
)

func main() {
	profile := flag.String("profile", "default", "profile name or directory")
	clusterID := flag.String("cluster-id", "", "cluster id")
	n := flag.Int("n", 1, "engines to wait for")
	code := flag.String("code", `fmt.Println("Hello, World")`, "code to execute on every engine")
	timeout := flag.Duration("timeout", time.Minute, "give up after this long")
	flag.Parse()

	// Ctrl-C cancels every blocking call through the context.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	c, err := ipp.ConnectProfile(ctx, *profile, *clusterID)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.WaitForEngines(ctx, *n); err != nil {
		log.Fatal(err)
	}
	engines, err := c.Engines(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range engines {
		fmt.Printf("engine %d: uuid %s host %q pid %d\n", e.ID, e.UUID, e.Host, e.PID)
	}
	ar, err := c.All().Execute(ctx, *code)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := ar.Get(ctx); err != nil {
		log.Fatal(err)
	}
	for i, md := range ar.Metadata() {
		fmt.Printf("[%d] %s", md.EngineID, ar.Stdout()[i])
		fmt.Printf("    took %v on the engine\n", md.Completed.Sub(md.Started))
	}
}
