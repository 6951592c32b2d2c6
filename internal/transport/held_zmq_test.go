//go:build cgo && !nolibzmq

package transport

import (
	"bytes"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// pattern is n bytes that differ from any shifted copy of themselves.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i%251)
	}
	return b
}

// recvOne takes one message from s or fails the test.
func recvOne(t *testing.T, s Socket, what string) [][]byte {
	t.Helper()
	select {
	case m := <-s.Messages():
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not arrive", what)
		return nil
	}
}

// zsocket makes a libzmq socket that the test's end closes (Close may
// come earlier too).
func zsocket(t *testing.T, typ Type, o Options) Socket {
	t.Helper()
	b, _ := Lookup("zmq")
	s, err := b.NewSocket(typ, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// boundSocket is zsocket bound to a free loopback port, and that port.
func boundSocket(t *testing.T, typ Type, o Options) (Socket, string) {
	t.Helper()
	s := zsocket(t, typ, o)
	ep, err := s.Bind("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return s, ep
}

// dialedSocket is zsocket connected to ep.
func dialedSocket(t *testing.T, typ Type, o Options, ep string) Socket {
	t.Helper()
	s := zsocket(t, typ, o)
	if err := s.Connect(ep); err != nil {
		t.Fatal(err)
	}
	return s
}

// A socket with HoldBuffers delivers large buffer frames in libzmq's
// memory and nothing else; such a frame forwarded on another socket
// arrives whole, also when it waited for a peer after its receiver let go
// of it, and every hold ends.
func TestHeldFramesForwardedAndReleased(t *testing.T) {
	if n := HeldCount(); n != 0 {
		t.Fatalf("%d frames held before the test", n)
	}
	relay, ep := boundSocket(t, Router, Options{HoldBuffers: true, InPlace: true})
	client := dialedSocket(t, Dealer, Options{Identity: []byte("client")}, ep)
	bigBefore := pattern(2<<20, 1)  // before the delimiter: routing, never held
	bigContent := pattern(2<<20, 2) // a fixed frame: parsed and kept by handlers
	buf := pattern(3<<20, 3)        // a buffer: held
	small := pattern(HoldMin-1, 4)  // a buffer under HoldMin: copied
	sent := [][]byte{bigBefore, []byte(delimiter), []byte("sig"), []byte("{}"), []byte("{}"), []byte("{}"), bigContent, buf, small}
	if err := client.Send(sent); err != nil {
		t.Fatal(err)
	}
	got := recvOne(t, relay, "the message")
	if len(got) != len(sent)+1 {
		t.Fatalf("%d frames, want %d", len(got), len(sent)+1)
	}
	held := HeldIn(got)
	if len(held) != 1 || !sameSlice(held[0], got[8]) || HeldCount() != 1 {
		t.Fatalf("held %d frames (%d in all), want the buffer alone", len(held), HeldCount())
	}
	for i, f := range got {
		if !bytes.Equal(f, append([][]byte{[]byte("client")}, sent...)[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
	owned := Owned(got[8])
	if sameSlice(owned, got[8]) || !bytes.Equal(owned, buf) {
		t.Fatal("Owned of a held frame is not a copy of it")
	}
	if o := Owned(got[7]); !sameSlice(o, got[7]) {
		t.Fatal("Owned copied a frame that is not held")
	}
	all := OwnAll(got[7:])
	if len(all) != 3 || !sameSlice(all[0], got[7]) || sameSlice(all[1], got[8]) || !bytes.Equal(all[1], buf) || !sameSlice(all[2], got[9]) {
		t.Fatal("OwnAll did not copy exactly the held frame")
	}

	// Forwarded to a DEALER with no peer yet: libzmq refuses, the socket
	// queues it and keeps its own hold past the receiver's Release.
	out := zsocket(t, Dealer, Options{InPlace: true})
	if err := out.Send(got[2:]); err != nil {
		t.Fatal(err)
	}
	Release(held)
	if n := HeldCount(); n != 1 {
		t.Fatalf("%d frames held while a queued message needs one", n)
	}
	if !bytes.Equal(owned, buf) {
		t.Fatal("the owned copy changed when the frame was released")
	}
	sink, sep := boundSocket(t, Router, Options{})
	if err := out.Connect(sep); err != nil {
		t.Fatal(err)
	}
	fwd := recvOne(t, sink, "the forwarded message")
	if len(fwd) != 9 || !bytes.Equal(fwd[7], buf) || !bytes.Equal(fwd[8], small) || !bytes.Equal(fwd[6], bigContent) {
		t.Fatalf("forwarded message damaged (%d frames)", len(fwd))
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return HeldCount() == 0 },
		"%d frames still held after the forward", HeldCount())
}

// A held frame sent straight on (the common case: the peer is there) and
// released at once reaches the peer whole, many times over: the receiver's
// Release must not free memory libzmq is still writing.
func TestHeldFrameReleasedWhileSending(t *testing.T) {
	relay, ep := boundSocket(t, Router, Options{HoldBuffers: true})
	client := dialedSocket(t, Dealer, Options{Identity: []byte("c")}, ep)
	engine := dialedSocket(t, Dealer, Options{Identity: []byte("e")}, ep)
	// The engine introduces itself so the ROUTER can route to it.
	if err := engine.Send([][]byte{[]byte("hello")}); err != nil {
		t.Fatal(err)
	}
	recvOne(t, relay, "the engine's hello")
	const rounds = 20
	for i := range rounds {
		buf := pattern(HoldMin+i*4096, byte(i))
		if err := client.Send([][]byte{[]byte(delimiter), {}, {}, {}, {}, {}, buf}); err != nil {
			t.Fatal(err)
		}
		m := recvOne(t, relay, "a request")
		h := HeldIn(m)
		if len(h) != 1 {
			t.Fatalf("round %d: %d frames held", i, len(h))
		}
		m[0] = []byte("e")
		if err := relay.Send(m); err != nil {
			t.Fatal(err)
		}
		Release(h)
		f := recvOne(t, engine, "the forward")
		if len(f) != 7 || !bytes.Equal(f[6], buf) {
			t.Fatalf("round %d: forward damaged", i)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return HeldCount() == 0 },
		"%d frames still held", HeldCount())
}

// Close releases held frames of messages nobody took from Messages, and
// of messages still queued for a peer that never came.
func TestHeldFramesReleasedByClose(t *testing.T) {
	relay, ep := boundSocket(t, Router, Options{HoldBuffers: true})
	client := dialedSocket(t, Dealer, Options{Identity: []byte("c")}, ep)
	buf := pattern(HoldMin, 9)
	if err := client.Send([][]byte{[]byte(delimiter), {}, {}, {}, {}, {}, buf}); err != nil {
		t.Fatal(err)
	}
	m := recvOne(t, relay, "the request")
	lone := zsocket(t, Dealer, Options{})
	if err := lone.Send(m[1:]); err != nil {
		t.Fatal(err)
	}
	Release(HeldIn(m))
	if n := HeldCount(); n != 1 {
		t.Fatalf("%d frames held, want the queued one", n)
	}
	lone.Close()
	if n := HeldCount(); n != 0 {
		t.Fatalf("%d frames held after the queue's socket closed", n)
	}
	// A message left in the channel: Close's reader drops it; the
	// channel's consumer (none here) would have released it.
	for range 3 {
		if err := client.Send([][]byte{[]byte(delimiter), {}, {}, {}, {}, {}, buf}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return HeldCount() == 3 },
		"%d frames held, want 3 waiting in the channel", HeldCount())
	relay.Close()
	for m := range relay.Messages() {
		Release(HeldIn(m))
	}
	if n := HeldCount(); n != 0 {
		t.Fatalf("%d frames held after Close and draining", n)
	}
}

// The receiver finds a message's buffers after wire's delimiter.
func TestDelimiterIsWires(t *testing.T) {
	if delimiter != wire.Delimiter {
		t.Fatalf("delimiter %q, wire's %q", delimiter, wire.Delimiter)
	}
}
