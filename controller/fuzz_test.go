package controller

import (
	"bytes"
	"context"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// fuzzKey is the key of the controller the handlers are fuzzed on; inputs
// asking to be signed get a valid signature with it, so the fuzzer gets
// past verification into every handler.
var fuzzKey = []byte("fuzz-key")

// frameSep separates frames in a fuzz input (see internal/wire's FuzzParse).
const frameSep = 0xff

// askAlive sends a keyed connection_request over a real socket and waits
// for the answer: the controller's loops still serve.
func askAlive(tb testing.TB, c *Controller) {
	tb.Helper()
	s, err := transport.Default().NewSocket(transport.Dealer, transport.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	if err := s.Connect(c.clientInfo.URL(c.clientInfo.Registration)); err != nil {
		tb.Fatal(err)
	}
	sess := wire.NewSession(fuzzKey, "")
	frames, h, err := sess.Build(wire.Out{MsgType: "connection_request", Content: map[string]any{}})
	if err != nil {
		tb.Fatal(err)
	}
	s.Send(frames)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		select {
		case f := <-s.Messages():
			if m, err := sess.Parse(f); err == nil && m.Parent.MsgID == h.MsgID {
				return
			}
		case <-c.Done():
			tb.Fatal("the controller stopped")
		case <-ctx.Done():
			tb.Fatal("the controller does not answer a keyed connection_request")
		}
	}
}

// msgSep separates the messages of one fuzz input: an input is a short
// sequence, so that a bug needing several steps (an engine registers, a
// broadcast waits for it, a forged reply arrives) is one reproducible
// input rather than state left over from earlier ones.
const msgSep = 0xfe

// startFuzzController starts the controller the handlers are fuzzed on.
func startFuzzController(tb testing.TB) *Controller {
	c, err := New(Config{Key: fuzzKey, HeartbeatPeriod: time.Hour, RegistrationTimeout: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.Start(); err != nil {
		tb.Fatal(err)
	}
	return c
}

// deliverSafely runs one handler and returns the panic it raised, if any,
// with its stack.
func deliverSafely(c *Controller, port string, frames [][]byte) (panicked string) {
	defer func() {
		if r := recover(); r != nil {
			panicked = fmt.Sprintf("%v\n%s", r, debug.Stack())
		}
	}()
	if err := c.deliver(port, frames); err != nil {
		return err.Error()
	}
	return ""
}

// FuzzHandlers hands arbitrary messages to the handler of every port,
// signed with the controller's key or not. An input is a sequence of
// messages separated by msgSep; each starts with a byte choosing the port
// (an index into Ports) followed by frames separated by frameSep. No input
// may make a handler panic or stop the controller, and the controller
// must still answer a keyed query over a real socket.
func FuzzHandlers(f *testing.F) {
	// One controller per fuzz process, as starting one binds 15 ports.
	c := startFuzzController(f)
	f.Cleanup(func() {
		askAlive(f, c)
		c.Close()
	})
	sess := wire.NewSession(fuzzKey, "fuzzer")
	var n atomic.Int64
	f.Add([]byte("\x00<IDS|MSG>\xff\xff{\"msg_id\":\"a\",\"msg_type\":\"connection_request\"}\xff{}\xff{}\xff{}"), true)
	f.Add([]byte("\x00<IDS|MSG>\xff\xff{\"msg_id\":\"d\",\"msg_type\":\"db_request\"}\xff{}\xff{}\xff{\"query\":{\"msg_id\":{\"$in\":[\"a\"]},\"header.date\":{\"$gt\":\"2026-01-01T00:00:00Z\"}},\"keys\":[\"buffers\"]}"), true)
	f.Add([]byte("\x00<IDS|MSG>\xff\xff{\"msg_id\":\"r\",\"msg_type\":\"resubmit_request\"}\xff{}\xff{}\xff{\"msg_ids\":[\"a\"]}"), true)
	// A mux fan-out (Ports[2] is mux_in) naming an unknown engine twice.
	f.Add([]byte("\x02cl\xff<IDS|MSG>\xff\xff{\"msg_id\":\"f\",\"msg_type\":\"apply_request\"}\xff{}\xff{\"ipp_fanout_targets\":[\"e\",\"e\"]}\xff{}"), true)
	f.Fuzz(func(t *testing.T, data []byte, sign bool) {
		// Bounded so that one input costs milliseconds: a message of
		// millions of frames would spend seconds in the sockets' send path
		// and stall the fuzzer without finding anything new.
		if len(data) > 1<<20 {
			return
		}
		for _, m := range bytes.Split(data, []byte{msgSep}) {
			if len(m) == 0 {
				continue
			}
			name := Ports[int(m[0])%len(Ports)]
			// A signed shutdown_request to the hub is a legitimate stop.
			if (name == "registration" || name == "client_registration") && bytes.Contains(m, []byte("shutdown_request")) {
				continue
			}
			frames := bytes.Split(m[1:], []byte{frameSep})
			if len(frames) > wire.MaxFrames+16 {
				continue
			}
			if sign {
				for i, fr := range frames {
					if string(fr) == wire.Delimiter && len(frames)-i-1 >= 5 {
						b := frames[i+1:]
						b[0] = sess.Sign(b[1], b[2], b[3], b[4])
						break
					}
				}
			}
			if p := deliverSafely(c, name, frames); p != "" {
				// The handler may have died holding a lock: later inputs
				// get a fresh controller (this one is abandoned, not closed).
				c = startFuzzController(t)
				t.Fatalf("the %s handler panicked on %d frames: %s", name, len(frames), p)
			}
			select {
			case <-c.Done():
				c = startFuzzController(t)
				t.Fatalf("the controller stopped after %d frames to %s", len(frames), name)
			default:
			}
		}
		if n.Add(1)%2000 == 0 {
			askAlive(t, c)
		}
	})
}
