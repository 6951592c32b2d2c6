package controller_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/codec"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// TestLargeBuffersThroughMux: buffers of transport.HoldMin bytes or more
// cross the mux relay in libzmq's memory (relay.go). Both ways they
// arrive whole; results the records keep were copied before libzmq's
// memory went (reading them back would otherwise read freed memory);
// larger ones are not kept and result_request says so; and no frame stays
// held.
func TestLargeBuffersThroughMux(t *testing.T) {
	for _, tc := range []struct {
		name string
		// cache is --result-cache; a quarter of it is kept per task.
		cache int64
		kept  bool
	}{
		{"kept", 64 << 20, true},
		{"over the cap", 4 << 20, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := startCluster(t, controller.Config{ResultCacheBytes: tc.cache})
			mx := dial(t, transport.Dealer, cl.ci.URL(cl.ci.Mux), cl.key, "")
			u0, u1 := cl.uuids[cl.ids[0]], cl.uuids[cl.ids[1]]
			big := make([]byte, 3<<20)
			for i := range big {
				big[i] = byte(i % 251)
			}
			h := mx.sess.NewHeader("apply_request")
			content, bufs := applyContent(t, "echobytes", false, big)
			frames, _, err := mx.sess.Build(wire.Out{Header: h, Content: content, Buffers: bufs,
				Metadata: map[string]any{protocol.MetaFanout: []string{u0, u1}}})
			if err != nil {
				t.Fatal(err)
			}
			mx.sock.Send(frames)
			ids := []string{h.MsgID + "_" + u0, h.MsgID + "_" + u1}
			got := cl.repliesTo(mx, 2)
			for _, id := range ids {
				m := got[id]
				if m == nil {
					t.Fatalf("no reply to %s", id)
				}
				var back []byte
				if err := codec.DecodeInto(m.Buffers, &back); err != nil || !bytes.Equal(back, big) {
					t.Fatalf("reply to %s: %v, %d bytes, equal %v", id, err, len(back), bytes.Equal(back, big))
				}
			}
			testutil.Eventually(t, 10*time.Second, func() bool { return transport.HeldCount() == 0 },
				"%d frames still held", transport.HeldCount())
			r := cl.query("result_request", map[string]any{"msg_ids": ids, "status_only": false})
			var rc map[string]any
			if err := r.DecodeContent(&rc); err != nil {
				t.Fatal(err)
			}
			if !tc.kept {
				if rc["status"] == "ok" || !strings.Contains(string(r.Content), "not kept") {
					t.Fatalf("result_request of results over the cap: %s", r.Content)
				}
				cl.healthy()
				return
			}
			if rc["status"] != "ok" {
				t.Fatalf("result_request: %s", r.Content)
			}
			// Each result is its reply's buffers; the echo's bytes are
			// the large one.
			n := 0
			for _, b := range r.Buffers {
				if len(b) == len(big) {
					if !bytes.Equal(b, big) {
						t.Fatal("a kept result changed after libzmq's memory was released")
					}
					n++
				}
			}
			if n != 2 {
				t.Fatalf("%d large result buffers came back, want 2", n)
			}
			cl.healthy()
		})
	}
}

// TestAttackHeldFrames: what a hostile peer can do to the mux relay's held
// frames. Large frames without the key, a routing identity that looks
// like the delimiter (so that the receiver counts a large content frame as
// a buffer and holds it), and a key holder's message whose buffers fill
// the records' cap: each is refused or answered, every hold ends, and the
// controller still serves.
func TestAttackHeldFrames(t *testing.T) {
	cl := startCluster(t, controller.Config{ResultCacheBytes: 4 << 20})
	before := cl.history()
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i % 251)
	}
	u0 := cl.uuids[cl.ids[0]]
	h := mustJSON(wire.Header{MsgID: "held-attack", MsgType: "apply_request", Session: "attacker"})

	// No key: large buffers after a forged signature.
	atk := dial(t, transport.Dealer, cl.ci.URL(cl.ci.Mux), nil, "")
	atk.sock.Send([][]byte{[]byte(u0), []byte(wire.Delimiter), []byte("00"), h, []byte("{}"), []byte("{}"), []byte("{}"), big, big})
	// An identity equal to the delimiter: the real delimiter comes one
	// frame later, so the receiver holds the large content frame too.
	odd := dial(t, transport.Dealer, cl.ci.URL(cl.ci.Mux), cl.key, wire.Delimiter)
	odd.sock.Send([][]byte{[]byte(u0), []byte(wire.Delimiter), []byte("00"), h, []byte("{}"), []byte("{}"), big, big})
	testutil.Eventually(t, 20*time.Second, func() bool {
		return strings.Count(cl.logs.String(), `msg="refused message" port=mux_in`) >= 2 && transport.HeldCount() == 0
	}, "the forged messages were not refused, or %d frames stay held:\n%s", transport.HeldCount(), cl.logs.String())

	// A key holder's request over the records' cap is forwarded and
	// answered, and its buffers are not kept.
	mx := dial(t, transport.Dealer, cl.ci.URL(cl.ci.Mux), cl.key, "")
	hdr := mx.sess.NewHeader("apply_request")
	content, bufs := applyContent(t, "echobytes", false, big)
	frames, _, err := mx.sess.Build(wire.Out{Idents: [][]byte{[]byte(u0)}, Header: hdr, Content: content, Buffers: bufs})
	if err != nil {
		t.Fatal(err)
	}
	mx.sock.Send(frames)
	m := cl.recvOrDead(mx, 20*time.Second)
	var back []byte
	if err := codec.DecodeInto(m.Buffers, &back); err != nil || !bytes.Equal(back, big) {
		t.Fatalf("the echo of a request over the cap: %v, %d bytes", err, len(back))
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return transport.HeldCount() == 0 },
		"%d frames still held", transport.HeldCount())
	atk.quiet(100 * time.Millisecond)
	odd.quiet(100 * time.Millisecond)
	if after := cl.history(); len(after) != len(before)+1 {
		t.Fatalf("records: %v, was %v (want one more: the key holder's)", after, before)
	}
	cl.healthy()
}
