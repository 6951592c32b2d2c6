package controller_test

import (
	"fmt"
	"maps"
	"slices"
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

// Mux fan-outs (controller/fanout.go) from peers that hold the key and
// from peers that do not. Each test ends with cl.healthy(): the controller
// still serves the real client on every path.

// fanout builds a keyed fan-out of an echo of x to uuids.
func fanout(t *testing.T, p *peer, h wire.Header, md map[string]any, x int) [][]byte {
	t.Helper()
	content, bufs := applyContent(t, "echo", true, x)
	frames, _, err := p.sess.Build(wire.Out{Header: h, Metadata: md, Content: content, Buffers: bufs})
	if err != nil {
		t.Fatal(err)
	}
	return frames
}

// repliesTo collects n replies on p, by parent msg_id.
func (cl *cluster) repliesTo(p *peer, n int) map[string]*wire.Message {
	cl.t.Helper()
	out := map[string]*wire.Message{}
	for range n {
		m := cl.recvOrDead(p, 20*time.Second)
		if _, dup := out[m.Parent.MsgID]; dup {
			cl.t.Fatalf("two replies to %s", m.Parent.MsgID)
		}
		out[m.Parent.MsgID] = m
	}
	return out
}

// echoed is the value of an ok echo reply, or the reply's error text.
func echoed(m *wire.Message) (int, string) {
	var c protocol.ErrorContent
	m.DecodeContent(&c)
	if c.Status != "ok" {
		return 0, c.EName + ": " + c.EValue
	}
	var v int
	if err := codec.DecodeInto(m.Buffers, &v); err != nil {
		return 0, err.Error()
	}
	return v, ""
}

func TestFanoutAnnounced(t *testing.T) {
	cl := startCluster(t, controller.Config{})
	var cr map[string]any
	if err := cl.query("connection_request", map[string]any{}).DecodeContent(&cr); err != nil {
		t.Fatal(err)
	}
	if cr[protocol.ConnectionFanout] != true {
		t.Fatalf("connection_reply does not announce %s: %v", protocol.ConnectionFanout, cr)
	}
}

// TestFanoutKeyed: a key holder's fan-outs reach every named engine once,
// under "<msg_id>_<uuid>", with the per-engine bookkeeping of single
// requests; bad target lists, unknown engines, duplicates and replays are
// answered (or refused) without disturbing anything else.
func TestFanoutKeyed(t *testing.T) {
	cl := startCluster(t, controller.Config{})
	mx := dial(t, transport.Dealer, cl.ci.URL(cl.ci.Mux), cl.key, "")
	u0, u1 := cl.uuids[cl.ids[0]], cl.uuids[cl.ids[1]]

	// Both engines, and one that does not exist.
	h := mx.sess.NewHeader("apply_request")
	first := fanout(t, mx, h, map[string]any{protocol.MetaFanout: []string{u0, "no-such-engine", u1}}, 7)
	mx.sock.Send(first)
	got := cl.repliesTo(mx, 3)
	for _, u := range []string{u0, u1} {
		m := got[h.MsgID+"_"+u]
		if m == nil {
			t.Fatalf("no reply for engine %s; replies %v", u, slices.Collect(maps.Keys(got)))
		}
		if v, e := echoed(m); e != "" || v != 7 {
			t.Fatalf("engine %s answered %v %q", u, v, e)
		}
	}
	if m := got[h.MsgID+"_no-such-engine"]; m == nil {
		t.Fatal("no answer for the unknown engine")
	} else if _, e := echoed(m); !strings.HasPrefix(e, "EngineError") {
		t.Fatalf("unknown engine answered %q", e)
	}
	// The hub booked one record per engine, with the engine's metadata
	// free of the target list.
	ids := []string{h.MsgID + "_" + u0, h.MsgID + "_" + u1}
	recs, _ := cl.results(ids)
	for _, id := range ids {
		rec, _ := recs[id].(map[string]any)
		if rec == nil {
			t.Fatalf("no record of %s: %v", id, recs)
		}
	}
	hist := cl.history()
	for _, id := range ids {
		if !slices.Contains(hist, id) {
			t.Fatalf("history lacks %s", id)
		}
	}

	// The same frames again: the replay guard refuses them, unanswered.
	mx.sock.Send(first)
	// The same msg_id under a fresh signature: every copy's id is taken.
	h2 := h
	h2.Date = wire.FormatDate(time.Now().Add(time.Millisecond))
	mx.sock.Send(fanout(t, mx, h2, map[string]any{protocol.MetaFanout: []string{u0, u1}}, 8))
	got = cl.repliesTo(mx, 2)
	for _, id := range ids {
		if m := got[id]; m == nil {
			t.Fatalf("no answer for duplicate %s", id)
		} else if _, e := echoed(m); !strings.Contains(e, "duplicate msg_id") {
			t.Fatalf("duplicate %s answered %q", id, e)
		}
	}
	if after, _ := cl.results(ids); fmt.Sprint(after) != fmt.Sprint(recs) {
		t.Fatalf("a duplicate changed the records:\nbefore %v\nafter  %v", recs, after)
	}

	// An engine named twice gets one copy, and the client one reply.
	h3 := mx.sess.NewHeader("apply_request")
	mx.sock.Send(fanout(t, mx, h3, map[string]any{protocol.MetaFanout: []string{u1, u1}}, 9))
	if m := cl.recvOrDead(mx, 20*time.Second); m.Parent.MsgID != h3.MsgID+"_"+u1 {
		t.Fatalf("reply to %s", m.Parent.MsgID)
	} else if v, e := echoed(m); v != 9 {
		t.Fatalf("engine named twice answered %v %q", v, e)
	}

	// Target lists that are not: one error each, about the request as sent.
	many := make([]string, protocol.MaxFanoutTargets+1)
	for i := range many {
		many[i] = fmt.Sprintf("e%d", i)
	}
	huge := make([]string, 20*protocol.MaxFanoutTargets)
	for i := range huge {
		huge[i] = u0
	}
	for _, tc := range []struct {
		md   map[string]any
		want string
	}{
		{map[string]any{}, "without a target engine"},
		{map[string]any{protocol.MetaFanout: []string{}}, "no targets"},
		{map[string]any{protocol.MetaFanout: "all"}, "not a list"},
		{map[string]any{protocol.MetaFanout: []any{1, 2}}, "not a list"},
		{map[string]any{protocol.MetaFanout: []string{""}}, "not an engine uuid"},
		{map[string]any{protocol.MetaFanout: []string{strings.Repeat("x", 300)}}, "not an engine uuid"},
		{map[string]any{protocol.MetaFanout: many}, "at most"},
		{map[string]any{protocol.MetaFanout: huge}, "larger than"},
	} {
		hh := mx.sess.NewHeader("apply_request")
		mx.sock.Send(fanout(t, mx, hh, tc.md, 1))
		m := cl.recvOrDead(mx, 20*time.Second)
		_, e := echoed(m)
		if m.Parent.MsgID != hh.MsgID || !strings.Contains(e, tc.want) {
			t.Fatalf("metadata %.100v: reply to %s %q, want %q", tc.md, m.Parent.MsgID, e, tc.want)
		}
	}
	mx.quiet(200 * time.Millisecond)
	cl.healthy()
}

// TestAttackUnsignedFanout: fan-outs without the key (unsigned, signed
// with another key, with unparseable metadata) are refused for their
// signature before anything in them is read: no engine runs them, no
// record is made, nothing is answered.
func TestAttackUnsignedFanout(t *testing.T) {
	cl := startCluster(t, controller.Config{})
	before := cl.history()
	atk := dial(t, transport.Dealer, cl.ci.URL(cl.ci.Mux), nil, "")
	wrong := dial(t, transport.Dealer, cl.ci.URL(cl.ci.Mux), []byte("not-the-key"), "")
	targets := []string{cl.uuids[cl.ids[0]], cl.uuids[cl.ids[1]]}
	content, bufs := applyContent(t, "echo", true, 666)
	atk.sock.Send(forged(nil, "apply_request", "attacker", nil, map[string]any{protocol.MetaFanout: targets}, content, bufs...))
	wrong.sock.Send(fanout(t, wrong, wrong.sess.NewHeader("apply_request"), map[string]any{protocol.MetaFanout: targets}, 666))
	// Garbage where the target list would be: never parsed, so the
	// refusal names the signature, not the metadata.
	h := mustJSON(wire.Header{MsgID: "x", MsgType: "apply_request", Session: "attacker"})
	atk.sock.Send([][]byte{[]byte(wire.Delimiter), []byte("00"), h, []byte("{}"), []byte(`{"` + protocol.MetaFanout + `": [[[[`), []byte("{}")})
	testutil.Eventually(t, 20*time.Second, func() bool {
		l := cl.logs.String()
		return strings.Count(l, "invalid signature") >= 2 && strings.Contains(l, "unsigned message")
	}, "the three fan-outs were not refused for their signatures:\n%s", cl.logs.String())
	if l := cl.logs.String(); strings.Contains(l, "fan-out") {
		t.Fatalf("an unverified fan-out was read:\n%s", l)
	}
	atk.quiet(200 * time.Millisecond)
	wrong.quiet(10 * time.Millisecond)
	if after := cl.history(); !slices.Equal(after, before) {
		t.Fatalf("records changed: %v, was %v", after, before)
	}
	cl.healthy()
}

// TestFanoutTooBig: a fan-out over --max-message-size gets the usual
// ValueError, once per engine copy, and reaches no engine.
func TestFanoutTooBig(t *testing.T) {
	cl := startCluster(t, controller.Config{MaxMessageSize: 1 << 20})
	mx := dial(t, transport.Dealer, cl.ci.URL(cl.ci.Mux), cl.key, "")
	u0, u1 := cl.uuids[cl.ids[0]], cl.uuids[cl.ids[1]]
	content, _ := applyContent(t, "echo", true, 1)
	// Two frames under the per-frame limit that add up to more.
	half := make([]byte, 600<<10)
	h := mx.sess.NewHeader("apply_request")
	frames, _, err := mx.sess.Build(wire.Out{Header: h, Metadata: map[string]any{protocol.MetaFanout: []string{u0, u1}},
		Content: content, Buffers: [][]byte{half, half}})
	if err != nil {
		t.Fatal(err)
	}
	mx.sock.Send(frames)
	got := cl.repliesTo(mx, 2)
	for _, u := range []string{u0, u1} {
		m := got[h.MsgID+"_"+u]
		if m == nil {
			t.Fatalf("no answer for engine %s", u)
		}
		if _, e := echoed(m); !strings.Contains(e, "larger than this controller accepts") {
			t.Fatalf("engine %s copy answered %q", u, e)
		}
	}
	if hist := cl.history(); slices.Contains(hist, h.MsgID+"_"+u0) || slices.Contains(hist, h.MsgID+"_"+u1) {
		t.Fatalf("an oversized copy was recorded: %v", hist)
	}
	cl.healthy()
}
