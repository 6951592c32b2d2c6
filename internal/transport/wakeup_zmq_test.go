//go:build cgo && !nolibzmq

package transport

import (
	"testing"
	"time"
)

// TestNoLostWakeups pipelines messages through a ROUTER that echoes while
// new ones arrive. The reader has no periodic recheck, so a send that
// drains ZMQ_FD without waking the reader would leave a message stranded
// for good, and the test would time out.
func TestNoLostWakeups(t *testing.T) {
	b, _ := Lookup("zmq")
	r, err := b.NewSocket(Router, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ep, err := r.Bind("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for m := range r.Messages() {
			r.Send(m)
		}
	}()
	d, err := b.NewSocket(Dealer, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Connect(ep); err != nil {
		t.Fatal(err)
	}
	const total, window = 5000, 16
	for range window {
		d.Send([][]byte{[]byte("x")})
	}
	for i := 0; i < total; i++ {
		select {
		case <-d.Messages():
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d never arrived: a reader missed its wake-up", i)
		}
		if i+window < total {
			d.Send([][]byte{[]byte("x")})
		}
	}
}
