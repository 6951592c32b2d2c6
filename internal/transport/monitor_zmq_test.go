//go:build cgo && !nolibzmq

package transport

import (
	"net"
	"testing"
	"time"
)

func zmqRouter(t *testing.T, o Options) (Socket, string) {
	t.Helper()
	b, _ := Lookup("zmq")
	r, err := b.NewSocket(Router, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	ep, err := r.Bind("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return r, ep
}

func zmqDealer(t *testing.T, ep, identity string) Socket {
	t.Helper()
	b, _ := Lookup("zmq")
	d, err := b.NewSocket(Dealer, Options{Identity: []byte(identity)})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Connect(ep); err != nil {
		t.Fatal(err)
	}
	return d
}

// nextEvent waits for an event of kind, skipping others.
func nextEvent(t *testing.T, s Socket, kind EventKind) Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-s.(EventSource).Events():
			if ev.Kind == kind {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %v event", kind)
		}
	}
}

// TestEventsOnDisconnect: a peer that connects and goes away shows up as
// accepted and then disconnected, with the open count following.
func TestEventsOnDisconnect(t *testing.T) {
	r, ep := zmqRouter(t, Options{Events: true})
	d := zmqDealer(t, ep, "a")
	if ev := nextEvent(t, r, EventAccepted); ev.Open != 1 {
		t.Fatalf("accepted: %+v", ev)
	}
	d.Close()
	if ev := nextEvent(t, r, EventDisconnected); ev.Open != 0 {
		t.Fatalf("disconnected: %+v", ev)
	}
}

// TestMaxConnections: beyond the cap, new connections are closed at once
// and the ones already there keep working.
func TestMaxConnections(t *testing.T) {
	r, ep := zmqRouter(t, Options{Events: true, MaxConnections: 2})
	first := zmqDealer(t, ep, "first")
	defer first.Close()
	nextEvent(t, r, EventAccepted)
	second := zmqDealer(t, ep, "second")
	defer second.Close()
	nextEvent(t, r, EventAccepted)
	addr := ep[len("tcp://"):]
	var extra []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		extra = append(extra, c)
		defer c.Close()
		nextEvent(t, r, EventRefused)
	}
	// A refused connection is closed by the socket: reading it ends.
	for _, c := range extra {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 256)
		for {
			if _, err := c.Read(buf); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatal("a connection beyond the cap was left open")
				}
				break
			}
		}
	}
	if err := first.Send([][]byte{[]byte("hello")}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-r.Messages():
		if string(m[0]) != "first" || string(m[1]) != "hello" {
			t.Fatalf("got %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a connection under the cap stopped working")
	}
}

// TestExclusiveIdentities: a second peer claiming a connected peer's
// identity gets neither its traffic nor its route.
func TestExclusiveIdentities(t *testing.T) {
	r, ep := zmqRouter(t, Options{Events: true, ExclusiveIdentities: true})
	owner := zmqDealer(t, ep, "engine-1")
	defer owner.Close()
	owner.Send([][]byte{[]byte("hi")})
	select {
	case <-r.Messages():
	case <-time.After(10 * time.Second):
		t.Fatal("owner not connected")
	}
	thief := zmqDealer(t, ep, "engine-1")
	defer thief.Close()
	nextEvent(t, r, EventAccepted)
	thief.Send([][]byte{[]byte("steal")})
	// libzmq keeps the thief's connection but never attaches it: its
	// messages are dropped and nothing is routed to it.
	if err := r.Send([][]byte{[]byte("engine-1"), []byte("for the owner")}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-owner.Messages():
		if string(m[0]) != "for the owner" {
			t.Fatalf("owner got %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the owner lost its route")
	}
	owner.Send([][]byte{[]byte("still me")})
	quiet := time.After(500 * time.Millisecond)
	for {
		select {
		case m := <-r.Messages():
			if string(m[len(m)-1]) == "steal" {
				t.Fatalf("the thief's message was accepted as the owner's: %q", m)
			}
			continue
		case m := <-thief.Messages():
			t.Fatalf("the thief got %q", m)
		case <-quiet:
		}
		break
	}
}
