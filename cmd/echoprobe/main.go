package main

import (
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/ipp-hpc/ipp/internal/transport"
)

func main() {
	b, _ := transport.Lookup(os.Args[2])
	if os.Args[1] == "server" {
		r, _ := b.NewSocket(transport.Router, transport.Options{})
		ep, _ := r.Bind("tcp://127.0.0.1:0")
		fmt.Println(ep)
		for m := range r.Messages() {
			r.Send(m)
		}
		return
	}
	d, _ := b.NewSocket(transport.Dealer, transport.Options{})
	d.Connect(os.Args[3])
	msg := [][]byte{[]byte("0123456789"), make([]byte, 500)}
	var lat []float64
	for i := 0; i < 3000; i++ {
		t := time.Now()
		d.Send(msg)
		<-d.Messages()
		lat = append(lat, float64(time.Since(t).Microseconds()))
		if os.Getenv("GAP") != "" {
			time.Sleep(time.Millisecond)
		}
	}
	sort.Float64s(lat)
	fmt.Printf("%s rt median %.0fus p90 %.0fus\n", os.Args[2], lat[len(lat)/2], lat[len(lat)*9/10])
}
