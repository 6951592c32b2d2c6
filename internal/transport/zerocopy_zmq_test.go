//go:build cgo && !nolibzmq

package transport

import (
	"bytes"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/testutil"
)

// Large frames leave in place (libzmq reads the caller's memory) and every
// one of them is released again: after delivery, after a ROUTER dropped
// the message for an unknown peer, and after Close discarded a message no
// peer ever took.
func TestZeroCopyFramesAreReleased(t *testing.T) {
	b, _ := Lookup("zmq")
	base := heldInPlace.Load()
	r, err := b.NewSocket(Router, Options{InPlace: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ep, err := r.Bind("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d, err := b.NewSocket(Dealer, Options{Identity: []byte("zc"), InPlace: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Connect(ep); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 5<<20)
	for i := range big {
		big[i] = byte(i % 251)
	}
	for i := range 8 {
		if err := d.Send([][]byte{[]byte("head"), big[:zeroCopyMin+i], big}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 8 {
		select {
		case m := <-r.Messages():
			if len(m) != 4 || string(m[1]) != "head" || !bytes.Equal(m[2], big[:zeroCopyMin+i]) || !bytes.Equal(m[3], big) {
				t.Fatalf("message %d arrived damaged (%d frames)", i, len(m))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d did not arrive", i)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return heldInPlace.Load() == base },
		"frames sent in place still held: %d", heldInPlace.Load()-base)

	// A ROUTER drops messages for peers it does not know.
	if err := r.Send([][]byte{[]byte("nobody"), big}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return heldInPlace.Load() == base },
		"frame to an unknown peer still held")

	// A DEALER with no peer keeps the message until Close drops it.
	lone, err := b.NewSocket(Dealer, Options{InPlace: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := lone.Connect("tcp://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	if err := lone.Send([][]byte{big}); err != nil {
		t.Fatal(err)
	}
	lone.Close()
	testutil.Eventually(t, 5*zmqLinger, func() bool { return heldInPlace.Load() == base },
		"frame queued on a closed socket still held")
}

// Without Options.InPlace a large frame is copied at Send: the caller may
// overwrite its buffer at once and the peer still gets what was sent.
func TestSendCopiesWithoutInPlace(t *testing.T) {
	b, _ := Lookup("zmq")
	base := heldInPlace.Load()
	r, err := b.NewSocket(Router, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ep, err := r.Bind("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d, err := b.NewSocket(Dealer, Options{Identity: []byte("copy")})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Connect(ep); err != nil {
		t.Fatal(err)
	}
	buf := bytes.Repeat([]byte{7}, 4<<20)
	want := bytes.Clone(buf)
	if err := d.Send([][]byte{buf}); err != nil {
		t.Fatal(err)
	}
	if n := heldInPlace.Load() - base; n != 0 {
		t.Errorf("%d frames held in place by a socket without InPlace", n)
	}
	clear(buf)
	select {
	case m := <-r.Messages():
		if len(m) != 2 || !bytes.Equal(m[1], want) {
			t.Fatalf("peer got the overwritten buffer, not what was sent")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("message did not arrive")
	}
}
