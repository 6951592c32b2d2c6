package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/internal/protocol"
)

func main() {
	ctx := context.Background()
	cl, err := ipp.ConnectProfile(ctx, "", "")
	if err != nil {
		panic(err)
	}
	cl.WaitForEngines(ctx, 2)
	v := cl.View(cl.IDs()[0])
	var tot, toStart, inEng, back, recvd, done []float64
	for i := 0; i < 300; i++ {
		t0 := time.Now()
		ar, _ := v.Apply(ctx, protocol.Noop)
		if _, err := ar.Get(ctx); err != nil {
			panic(err)
		}
		t1 := time.Now()
		md := ar.Metadata()[0]
		tot = append(tot, t1.Sub(t0).Seconds()*1e6)
		toStart = append(toStart, md.Started.Sub(t0).Seconds()*1e6)
		inEng = append(inEng, md.Completed.Sub(md.Started).Seconds()*1e6)
		back = append(back, t1.Sub(md.Completed).Seconds()*1e6)
		recvd = append(recvd, md.Received.Sub(md.Completed).Seconds()*1e6)
		done = append(done, t1.Sub(md.Received).Seconds()*1e6)
	}
	med := func(x []float64) float64 { sort.Float64s(x); return x[len(x)/2] }
	fmt.Fprintf(os.Stdout, "total %.0fus  to-start %.0fus  in-engine %.0fus  back %.0fus (reply arrives %.0fus, then %.0fus to done)\n", med(tot), med(toStart), med(inEng), med(back), med(recvd), med(done))
}
