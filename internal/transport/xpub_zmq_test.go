//go:build cgo && !nolibzmq

package transport

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// TestXPubReportsEachSubscriber connects two SUBs with the same prefix to
// an XPUB: each subscription must be reported (verbose), a message
// published after a report must reach that subscriber, and the prefix's
// unsubscription is reported once its last subscriber has left.
func TestXPubReportsEachSubscriber(t *testing.T) {
	b, _ := Lookup("zmq")
	x, err := b.NewSocket(XPub, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	ep, err := x.Bind("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	next := func(what string) []byte {
		t.Helper()
		select {
		case m := <-x.Messages():
			if len(m) != 1 {
				t.Fatalf("%s: want one frame, got %d", what, len(m))
			}
			return m[0]
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no subscription message in 10 s", what)
		}
		return nil
	}
	var subs []Socket
	for i := 0; i < 2; i++ {
		s, err := b.NewSocket(Sub, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Connect(ep); err != nil {
			t.Fatal(err)
		}
		if got := next("subscriber"); !bytes.Equal(got, []byte{1}) {
			t.Fatalf("subscription %d: got %q, want \\x01 (everything)", i, got)
		}
		subs = append(subs, s)
	}
	x.Send([][]byte{[]byte("topic"), []byte("body")})
	for i, s := range subs {
		select {
		case m := <-s.Messages():
			if string(m[1]) != "body" {
				t.Fatalf("subscriber %d got %q", i, m)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("subscriber %d: nothing published after its subscription was reported", i)
		}
	}
	subs[0].Close()
	subs[1].Close()
	if got := next("unsubscribe"); !bytes.Equal(got, []byte{0}) {
		t.Fatalf("after the subscribers left: got %q, want \\x00", got)
	}
}

// TestGoZMQRefusesXPub: the pure-Go backend says it cannot, so callers
// fall back to a plain PUB knowingly.
func TestGoZMQRefusesXPub(t *testing.T) {
	b, err := Lookup("gozmq")
	if err != nil {
		t.Skip(err)
	}
	if _, err := b.NewSocket(XPub, Options{}); !errors.Is(err, ErrNoXPub) {
		t.Fatalf("gozmq NewSocket(XPub) = %v, want ErrNoXPub", err)
	}
}
