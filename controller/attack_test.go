package controller_test

// The attacker suite of issue 6: peers that know only the port numbers
// (which `ss -ltn` shows every local user) and no key, plus two attacks by
// a key holder, against a controller with two real Go engines and a
// normal Go client. Each attack asserts the behaviour a hardened
// controller must have: it stays up, the client's results are the real
// ones, and no record or registration changes.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/engine"
	"github.com/ipp-hpc/ipp/internal/codec"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// forgedMarker is in every forged payload, so a test can tell whether a
// forged frame reached a client or a record.
const forgedMarker = "FORGED-BY-ATTACKER"

// cluster is a controller, two in-process Go engines and a Go client.
type cluster struct {
	t      *testing.T
	c      *controller.Controller
	logs   *testutil.SyncBuffer
	ci     *wire.ClientInfo
	ei     *wire.EngineInfo
	key    []byte
	client *ipp.Client
	ids    []int
	uuids  map[int]string
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func attackRegistry(t *testing.T) *engine.Registry {
	r := engine.NewRegistry()
	must := func(name string, fn any) {
		if err := r.Register(name, fn); err != nil {
			t.Fatal(err)
		}
	}
	must("sleep", func(ctx context.Context, ms int) (int, error) {
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			return ms, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})
	must("echo", func(x int) int { return x })
	must("echobytes", func(b []byte) []byte { return b })
	return r
}

func startCluster(t *testing.T, cfg controller.Config) *cluster {
	t.Helper()
	c, logs := startController(t, cfg)
	cl := &cluster{t: t, c: c, logs: logs, ci: c.ClientInfo(), ei: c.EngineInfo()}
	cl.key = []byte(cl.ci.Key)
	reg := attackRegistry(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			engine.Run(ctx, engine.Config{Info: c.EngineInfo(), RequestedID: -1, Functions: reg, Logger: discardLogger()})
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ccancel()
	client, err := ipp.ConnectInfo(cctx, c.ClientInfo(), ipp.WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	if err := client.WaitForEngines(cctx, 2, ipp.WaitOptions{Progress: ipp.ProgressOff}); err != nil {
		t.Fatal(err)
	}
	cl.client = client
	cl.ids = client.IDs()
	cl.uuids = cl.engines()
	if len(cl.uuids) != 2 {
		t.Fatalf("hub lists %d engines, want 2", len(cl.uuids))
	}
	return cl
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// alive fails the test if the controller stopped or a loop crashed.
func (cl *cluster) alive() {
	cl.t.Helper()
	select {
	case <-cl.c.Done():
		cl.t.Fatalf("the controller stopped during the attack; its log:\n%s", cl.crashLines())
	default:
	}
	if strings.Contains(cl.logs.String(), "loop crashed") {
		cl.t.Fatalf("a controller loop crashed:\n%s", cl.crashLines())
	}
}

// crashLines picks the log lines that explain a stop.
func (cl *cluster) crashLines() string {
	var out []string
	for _, l := range strings.Split(cl.logs.String(), "\n") {
		if strings.Contains(l, "crash") || strings.Contains(l, "panic") || strings.Contains(l, "shut") || strings.Contains(l, "stopped") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// query sends one keyed hub query and returns its reply.
func (cl *cluster) query(msgType string, content any) *wire.Message {
	cl.t.Helper()
	cl.alive()
	q := dial(cl.t, transport.Dealer, cl.ci.URL(cl.ci.Registration), cl.key, "")
	h := q.send(nil, msgType, content)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		m := cl.recvOrDead(q, time.Until(deadline))
		if m.Parent.MsgID == h.MsgID {
			return m
		}
	}
	cl.t.Fatalf("no %s reply", msgType)
	return nil
}

// recvOrDead is peer.recv that reports a stopped controller as such.
func (cl *cluster) recvOrDead(p *peer, timeout time.Duration) *wire.Message {
	cl.t.Helper()
	select {
	case frames := <-p.sock.Messages():
		m, err := p.sess.Parse(frames)
		if err != nil {
			cl.t.Fatalf("reply does not verify: %v", err)
		}
		return m
	case <-cl.c.Done():
		cl.t.Fatalf("the controller stopped; its log:\n%s", cl.crashLines())
	case <-time.After(timeout):
		cl.alive()
		cl.t.Fatalf("no reply within %v", timeout)
	}
	return nil
}

// engines returns the hub's id -> uuid map.
func (cl *cluster) engines() map[int]string {
	cl.t.Helper()
	var cr struct {
		Engines map[string]string `json:"engines"`
	}
	m := cl.query("connection_request", map[string]any{})
	if err := m.DecodeContent(&cr); err != nil {
		cl.t.Fatal(err)
	}
	out := map[int]string{}
	for k, v := range cr.Engines {
		var id int
		fmt.Sscan(k, &id)
		out[id] = v
	}
	return out
}

// results returns result_request's per-request content and its buffers.
func (cl *cluster) results(msgIDs []string) (map[string]any, [][]byte) {
	cl.t.Helper()
	m := cl.query("result_request", map[string]any{"msg_ids": msgIDs, "status_only": false})
	var content map[string]any
	if err := m.DecodeContent(&content); err != nil {
		cl.t.Fatal(err)
	}
	if content["status"] != "ok" {
		cl.t.Fatalf("result_request: %s", m.Content)
	}
	return content, m.Buffers
}

func (cl *cluster) history() []string {
	cl.t.Helper()
	var h struct {
		History []string `json:"history"`
	}
	if err := cl.query("history_request", map[string]any{}).DecodeContent(&h); err != nil {
		cl.t.Fatal(err)
	}
	return h.History
}

// healthy checks what every attack must leave intact: the controller runs,
// the same two engines are registered, and the client gets correct
// results from each engine through the mux, load balancing and broadcast,
// and the control relay answers.
func (cl *cluster) healthy() {
	cl.t.Helper()
	cl.alive()
	if got := cl.engines(); !reflect.DeepEqual(got, cl.uuids) {
		cl.t.Fatalf("registered engines changed: %v, was %v", got, cl.uuids)
	}
	ctx := ctxFor(cl.t, 60*time.Second)
	for _, id := range cl.ids {
		ar, err := cl.client.View(id).Apply(ctx, "echo", 1000+id)
		if err != nil {
			cl.t.Fatal(err)
		}
		v, err := ipp.Get[int](ctx, ar)
		if err != nil || v != 1000+id {
			cl.t.Fatalf("echo on engine %d: %v, %v", id, v, err)
		}
	}
	items := make([]int, 20)
	for i := range items {
		items[i] = i * 3
	}
	ar, err := cl.client.LoadBalanced().Map(ctx, "echo", items)
	if err != nil {
		cl.t.Fatal(err)
	}
	got, err := ipp.GetAll[int](ctx, ar)
	if err != nil || !slices.Equal(got, items) {
		cl.t.Fatalf("load-balanced echo: %v, %v", got, err)
	}
	// The broadcast and control loops serve too.
	b, err := cl.client.Broadcast().Apply(ctx, "echo", 5)
	if err != nil {
		cl.t.Fatal(err)
	}
	if vs, err := ipp.GetAll[int](ctx, b); err != nil || !slices.Equal(vs, []int{5, 5}) {
		cl.t.Fatalf("broadcast echo: %v, %v", vs, err)
	}
	if err := cl.client.Clear(ctx); err != nil {
		cl.t.Fatalf("control clear_request: %v", err)
	}
	cl.alive()
}

// applyContent is a Go apply_request's content and buffers; quiet false
// makes the engine publish status busy/idle on IOPub.
func applyContent(t *testing.T, fn string, quiet bool, args ...any) (protocol.ApplyContent, [][]byte) {
	t.Helper()
	frames, counts, err := codec.EncodeMany(args...)
	if err != nil {
		t.Fatal(err)
	}
	return protocol.ApplyContent{Go: &protocol.Call{Func: fn, ArgFrames: counts, Quiet: quiet}}, frames
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// forged frames an unsigned message, as a keyless attacker must.
func forged(idents [][]byte, msgType, session string, parent []byte, md, content any, buffers ...[]byte) [][]byte {
	h := wire.Header{MsgID: wire.NewID(), MsgType: msgType, Username: "attacker", Session: session,
		Date: wire.FormatDate(time.Now()), Version: wire.ProtocolVersion}
	if parent == nil {
		parent = []byte("{}")
	}
	out := append([][]byte{}, idents...)
	out = append(out, []byte(wire.Delimiter), []byte{}, mustJSON(h), parent, mustJSON(md), mustJSON(content))
	return append(out, buffers...)
}

// iopubSpy is a keyless subscriber to the client-facing IOPub port: what
// any local user can read.
type iopubSpy struct {
	mu   sync.Mutex
	msgs []*wire.Message
}

func (cl *cluster) spyIOPub() *iopubSpy {
	cl.t.Helper()
	sub := dial(cl.t, transport.Sub, cl.ci.URL(cl.ci.IOPub), nil, "")
	s := &iopubSpy{}
	go func() {
		for frames := range sub.sock.Messages() {
			if m, err := wire.ParseUnchecked(frames); err == nil {
				s.mu.Lock()
				s.msgs = append(s.msgs, m)
				s.mu.Unlock()
			}
		}
	}()
	// Wait until the subscription is live: run code until its status shows.
	ctx := ctxFor(cl.t, 30*time.Second)
	testutil.Eventually(cl.t, 30*time.Second, func() bool {
		ar, err := cl.client.All().Execute(ctx, "1")
		if err != nil {
			cl.t.Fatal(err)
		}
		ar.Wait(ctx)
		return s.find(func(m *wire.Message) bool { return m.Header.MsgType == "status" }) != nil
	}, "the IOPub spy never saw a status message")
	return s
}

func (s *iopubSpy) find(pred func(*wire.Message) bool) *wire.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.msgs {
		if pred(m) {
			return m
		}
	}
	return nil
}

func (s *iopubSpy) waitFor(t *testing.T, what string, pred func(*wire.Message) bool) *wire.Message {
	t.Helper()
	var m *wire.Message
	testutil.Eventually(t, 30*time.Second, func() bool { m = s.find(pred); return m != nil }, "IOPub never showed %s", what)
	return m
}

// sendBurst sends frames n times on s, pacing the sends over d so that a
// connection still handshaking gets them too (PUB drops until then).
func sendBurst(s transport.Socket, n int, d time.Duration, frames func() [][]byte) {
	tick := time.NewTicker(d / time.Duration(n))
	defer tick.Stop()
	for range n {
		s.Send(frames())
		<-tick.C
	}
}

// TestAttackForgedCoalescingReplies: unsigned coalescing broadcast replies
// sent to the engine-facing broadcast leaves, naming a real pending
// broadcast (learnt from IOPub) or a random one, from random identities and
// from the engines' own uuids. Today they are counted and the broadcast
// loop dereferences a missing reply (controller loop crashed).
func TestAttackForgedCoalescingReplies(t *testing.T) {
	cl := startCluster(t, controller.Config{})
	spy := cl.spyIOPub()
	bc := dial(t, transport.Dealer, cl.ci.URL(cl.ci.Broadcast), cl.key, "")
	content, bufs := applyContent(t, "sleep", false, 1500)
	var targets [][]any
	for _, id := range cl.ids {
		targets = append(targets, []any{cl.uuids[id], id})
	}
	md := map[string]any{"targets": targets, "is_broadcast": true, "is_coalescing": true}
	frames, h, err := bc.sess.Build(wire.Out{MsgType: "apply_request", Metadata: md, Content: content, Buffers: bufs})
	if err != nil {
		t.Fatal(err)
	}
	bc.sock.Send(frames)

	// The attacker learns the pending broadcast from an engine's busy status.
	busy := spy.waitFor(t, "the broadcast's busy status", func(m *wire.Message) bool {
		return m.Header.MsgType == "status" && strings.HasPrefix(m.Parent.MsgID, h.MsgID+"_")
	})
	orig := busy.Parent.MsgID[:strings.LastIndex(busy.Parent.MsgID, "_")]
	if orig != h.MsgID {
		t.Fatalf("learnt %q, sent %q", orig, h.MsgID)
	}

	forgedValue, _ := codec.Encode(-666)
	forgedValue = append(forgedValue, []byte(forgedMarker))
	var attackers []*peer
	for leaf, port := range cl.ei.Broadcast {
		idents := []string{fmt.Sprintf("attacker-%d-a", leaf), fmt.Sprintf("attacker-%d-b", leaf)}
		for _, id := range cl.ids {
			idents = append(idents, cl.uuids[id])
		}
		for _, ident := range idents {
			a := dial(t, transport.Dealer, cl.ei.URL(port), nil, ident)
			attackers = append(attackers, a)
			for _, o := range []string{orig, wire.NewID()} {
				for _, id := range cl.ids {
					uuid := cl.uuids[id]
					parent := mustJSON(wire.Header{MsgID: o + "_" + uuid, MsgType: "apply_request", Session: bc.sess.ID()})
					a.sock.Send(forged([][]byte{[]byte("client")}, "apply_reply", uuid, parent,
						map[string]any{"is_coalescing": true, "is_broadcast": true, "original_msg_id": o, "status": "ok", "engine": uuid},
						map[string]any{"status": "ok", "go": map[string]any{"frames": len(forgedValue)}}, forgedValue...))
				}
			}
		}
	}

	// The client still gets the real coalesced reply.
	var reply *wire.Message
	deadline := time.Now().Add(30 * time.Second)
	for reply == nil {
		m := cl.recvOrDead(bc, time.Until(deadline))
		var rmd struct {
			Original string `json:"original_msg_id"`
		}
		m.DecodeMetadata(&rmd)
		if rmd.Original == orig {
			reply = m
		}
	}
	var rc struct {
		Status string `json:"status"`
		Go     struct {
			Frames int `json:"frames"`
		} `json:"go"`
	}
	if err := reply.DecodeContent(&rc); err != nil || rc.Status != "ok" {
		t.Fatalf("coalesced reply: %s (%v)", reply.Content, err)
	}
	n := rc.Go.Frames
	if n == 0 || len(reply.Buffers) != 2*n {
		t.Fatalf("coalesced reply has %d buffers for %d frames per engine", len(reply.Buffers), n)
	}
	for i := range 2 {
		var v int
		if err := codec.DecodeInto(reply.Buffers[i*n:(i+1)*n], &v); err != nil || v != 1500 {
			t.Fatalf("engine %d's part of the coalesced reply: %v, %v", i, v, err)
		}
	}
	for _, a := range attackers {
		select {
		case f := <-a.sock.Messages():
			t.Fatalf("an attacker got a message: %.200q", f)
		default:
		}
	}
	cl.healthy()
}

// TestAttackForgedMuxReplies: unsigned replies on the engine-facing mux
// port for a request in flight (msg_id learnt from IOPub) and for one
// already finished. The client must get the real result, and the hub's
// records (result_request) must hold the real result, never the forgery.
func TestAttackForgedMuxReplies(t *testing.T) {
	cl := startCluster(t, controller.Config{})
	spy := cl.spyIOPub()
	ctx := ctxFor(t, 60*time.Second)
	id0, id1 := cl.ids[0], cl.ids[1]
	atk := dial(t, transport.Dealer, cl.ei.URL(cl.ei.Mux), nil, "attacker-mux")
	forgedValue, _ := codec.Encode(-666)
	forgedValue = append(forgedValue, []byte(forgedMarker))

	forgeExecute := func(parent []byte) {
		atk.sock.Send(forged([][]byte{[]byte("client")}, "execute_reply", cl.uuids[id0], parent,
			map[string]any{"status": "error", "engine": cl.uuids[id0], "dependencies_met": true},
			map[string]any{"status": "error", "ename": "Forged", "evalue": forgedMarker, "traceback": []string{forgedMarker}},
			[]byte(forgedMarker)))
	}
	forgeApply := func(parent []byte) {
		atk.sock.Send(forged([][]byte{[]byte("client")}, "apply_reply", cl.uuids[id1], parent,
			map[string]any{"status": "ok", "engine": cl.uuids[id1], "dependencies_met": true},
			map[string]any{"status": "ok", "go": map[string]any{"frames": len(forgedValue) - 1}}, forgedValue...))
	}

	// An execute on engine 0: its msg_id and header are on IOPub.
	exec, err := cl.client.View(id0).Execute(ctx, "time.Sleep(1500*time.Millisecond)\n6*7")
	if err != nil {
		t.Fatal(err)
	}
	busy := spy.waitFor(t, "the execute's busy status", func(m *wire.Message) bool {
		return m.Header.MsgType == "status" && m.Parent.MsgType == "execute_request" && m.Parent.Session == cl.client.Session() &&
			strings.Contains(string(m.Content), "busy") && m.Parent.MsgID == exec.MsgIDs()[0]
	})
	forgeExecute(busy.RawParent)

	// An apply on engine 1, forged once the hub lists it as pending.
	app, err := cl.client.View(id1).Apply(ctx, "sleep", 1000)
	if err != nil {
		t.Fatal(err)
	}
	appID := app.MsgIDs()[0]
	testutil.Eventually(t, 20*time.Second, func() bool {
		rs, err := cl.client.ResultStatus(ctx, appID)
		return err == nil && slices.Contains(rs.Pending, appID)
	}, "the apply never showed as pending")
	appParent := mustJSON(wire.Header{MsgID: appID, MsgType: "apply_request", Session: cl.client.Session()})
	forgeApply(appParent)

	v, err := exec.Get(ctx)
	if err != nil {
		t.Fatalf("execute: %v", err)
	}
	if r, ok := v.(*ipp.ExecuteReply); !ok || r.Text() != "42" {
		t.Fatalf("execute result %#v", v)
	}
	n, err := ipp.Get[int](ctx, app)
	if err != nil || n != 1000 {
		t.Fatalf("apply result %v, %v", n, err)
	}

	check := func(when string) (map[string]any, [][]byte) {
		t.Helper()
		ids := []string{exec.MsgIDs()[0], appID}
		content, bufs := cl.results(ids)
		for _, id := range ids {
			rec, _ := content[id].(map[string]any)
			if rec == nil {
				t.Fatalf("%s: no record of %s: %v", when, id, content)
			}
			rcontent, _ := json.Marshal(rec["result_content"])
			rmd, _ := json.Marshal(rec["result_metadata"])
			if strings.Contains(string(rcontent), forgedMarker) || strings.Contains(string(rcontent), "Forged") ||
				!strings.Contains(string(rcontent), `"ok"`) {
				t.Fatalf("%s: the record of %s holds %s", when, id, rcontent)
			}
			if !strings.Contains(string(rmd), `"ok"`) {
				t.Fatalf("%s: the record of %s has metadata %s", when, id, rmd)
			}
		}
		for _, b := range bufs {
			if strings.Contains(string(b), forgedMarker) {
				t.Fatalf("%s: result_request hands out the forged buffer", when)
			}
		}
		var got int
		if err := codec.DecodeInto(bufs, &got); err != nil || got != 1000 {
			t.Fatalf("%s: result_request buffers decode to %v, %v", when, got, err)
		}
		return content, bufs
	}
	before, beforeBufs := check("after completion")

	// Forged replies for requests already finished must change nothing.
	forgeExecute(busy.RawParent)
	forgeApply(appParent)
	for range 20 {
		after, afterBufs := check("after forging a finished request")
		if !reflect.DeepEqual(after, before) || !reflect.DeepEqual(afterBufs, beforeBufs) {
			t.Fatalf("a forged reply changed a finished record:\nbefore %v\nafter  %v", before, after)
		}
		time.Sleep(50 * time.Millisecond) // an observation window, not a synchronisation
	}
	select {
	case f := <-atk.sock.Messages():
		t.Fatalf("the attacker got a message: %.200q", f)
	default:
	}
	cl.healthy()
}

// TestAttackUnsignedShutdownReply: an unsigned shutdown_reply on the
// engine-facing IOPub port naming each engine's uuid (which status
// messages on the client IOPub port carry in header.session) must not
// unregister anything.
func TestAttackUnsignedShutdownReply(t *testing.T) {
	cl := startCluster(t, controller.Config{})
	notif := dial(t, transport.Sub, cl.ci.URL(cl.ci.Notification), nil, "")
	spy := cl.spyIOPub()
	var learnt []string
	for _, id := range cl.ids {
		m := spy.waitFor(t, "a status of every engine", func(m *wire.Message) bool {
			return m.Header.MsgType == "status" && m.Header.Session == cl.uuids[id]
		})
		learnt = append(learnt, m.Header.Session)
	}
	pub := dial(t, transport.Pub, cl.ei.URL(cl.ei.IOPub), nil, "")
	i := 0
	sendBurst(pub.sock, 50, time.Second, func() [][]byte {
		i++
		uuid := learnt[i%len(learnt)]
		topic := []byte(fmt.Sprintf("engine.%d.shutdown", i%len(learnt)))
		if i%3 == 0 {
			topic = []byte("shutdown") // a topic the hub reads in full
		}
		return forged([][]byte{topic}, "shutdown_reply", uuid, nil, map[string]any{}, map[string]any{"status": "ok", "restart": false})
	})
	for range 10 {
		select {
		case f := <-notif.sock.Messages():
			if m, err := wire.ParseUnchecked(f); err == nil && m.Header.MsgType == "unregistration_notification" {
				t.Fatalf("an unsigned shutdown_reply unregistered an engine: %s", m.Content)
			}
		case <-time.After(100 * time.Millisecond): // an observation window
		}
	}
	if ids := cl.client.IDs(); !slices.Equal(ids, cl.ids) {
		t.Fatalf("the client now sees engines %v, was %v", ids, cl.ids)
	}
	cl.healthy()
}

// TestAttackKeyedReplay: a key holder replays a task request (byte for
// byte; with the same msg_id and a fresh signature; a mux request's frames
// sent to the task port). Every engine must stay in load balancing: with
// hwm 1, later tasks all complete and run on both engines. Each replay is
// its own subtest on a fresh cluster, so a failure names the replay.
func TestAttackKeyedReplay(t *testing.T) {
	type replay func(t *testing.T, cl *cluster, atk *peer, first [][]byte, h wire.Header, content any, bufs [][]byte)
	for _, tc := range []struct {
		name string
		do   replay
	}{
		{"identical frames", func(t *testing.T, cl *cluster, atk *peer, first [][]byte, _ wire.Header, _ any, _ [][]byte) {
			for range 3 {
				atk.sock.Send(first)
			}
		}},
		{"same msg_id fresh signature", func(t *testing.T, cl *cluster, atk *peer, _ [][]byte, h wire.Header, content any, bufs [][]byte) {
			// Aimed at each engine in turn, twice.
			for i, id := range append(slices.Clone(cl.ids), cl.ids...) {
				hh := h
				hh.Date = wire.FormatDate(time.Now().Add(time.Duration(i+1) * time.Millisecond))
				md := map[string]any{"after": []string{}, "follow": []string{}, "timeout": 0, "targets": []string{cl.uuids[id]}, "retries": 0}
				f, _, err := atk.sess.Build(wire.Out{Header: hh, Metadata: md, Content: content, Buffers: bufs})
				if err != nil {
					t.Fatal(err)
				}
				atk.sock.Send(f)
			}
		}},
		{"mux request to the task port", func(t *testing.T, cl *cluster, atk *peer, _ [][]byte, _ wire.Header, content any, bufs [][]byte) {
			// A direct request, answered, then its frames sent as a task.
			mx := dial(t, transport.Dealer, cl.ci.URL(cl.ci.Mux), cl.key, "")
			for _, id := range cl.ids {
				mf, mh, err := mx.sess.Build(wire.Out{Idents: [][]byte{[]byte(cl.uuids[id])}, MsgType: "apply_request", Content: content, Buffers: bufs})
				if err != nil {
					t.Fatal(err)
				}
				mx.sock.Send(mf)
				if m := cl.recvOrDead(mx, 20*time.Second); m.Parent.MsgID != mh.MsgID {
					t.Fatalf("mux reply to %s, want %s", m.Parent.MsgID, mh.MsgID)
				}
				atk.sock.Send(mf[1:])
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := startCluster(t, controller.Config{HWM: 1, Burst: -1})
			atk := dial(t, transport.Dealer, cl.ci.URL(cl.ci.Task), cl.key, "")
			content, bufs := applyContent(t, "sleep", true, 20)
			md := map[string]any{"after": []string{}, "follow": []string{}, "timeout": 0, "targets": []string{}, "retries": 0}
			frames, h, err := atk.sess.Build(wire.Out{MsgType: "apply_request", Metadata: md, Content: content, Buffers: bufs})
			if err != nil {
				t.Fatal(err)
			}
			atk.sock.Send(frames)
			if m := cl.recvOrDead(atk, 20*time.Second); m.Parent.MsgID != h.MsgID {
				t.Fatalf("reply to %s, want %s", m.Parent.MsgID, h.MsgID)
			}
			before, beforeBufs := cl.results([]string{h.MsgID})
			tc.do(t, cl, atk, frames, h, content, bufs)

			// Every engine still takes load-balanced work.
			ctx := ctxFor(t, 30*time.Second)
			items := make([]int, 20)
			for i := range items {
				items[i] = 100
			}
			ar, err := cl.client.LoadBalanced().Map(ctx, "sleep", items)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ipp.GetAll[int](ctx, ar)
			if err != nil || !slices.Equal(got, items) {
				rs, _ := cl.client.QueueStatus(context.Background())
				t.Fatalf("after the replay, load-balanced tasks gave %v, %v (engines stuck in the scheduler); queue status %+v", got, err, rs)
			}
			used := map[int]bool{}
			for _, id := range ar.EngineIDs() {
				used[id] = true
			}
			if len(used) != 2 {
				t.Fatalf("after the replay, 20 tasks with hwm 1 ran only on engines %v: an engine left load balancing", ar.EngineIDs())
			}
			// The finished task's record is the one the engine answered.
			after, afterBufs := cl.results([]string{h.MsgID})
			if !reflect.DeepEqual(after, before) || !reflect.DeepEqual(afterBufs, beforeBufs) {
				t.Fatalf("the replay changed the record of the task it copied:\nbefore %v\nafter  %v", before, after)
			}
			cl.healthy()
		})
	}
}

// TestAttackKeyedBroadcastDuplicateTarget: a coalescing broadcast naming
// one engine twice must be answered, not stay pending forever.
func TestAttackKeyedBroadcastDuplicateTarget(t *testing.T) {
	cl := startCluster(t, controller.Config{})
	bc := dial(t, transport.Dealer, cl.ci.URL(cl.ci.Broadcast), cl.key, "")
	content, bufs := applyContent(t, "echo", true, 5)
	id := cl.ids[0]
	md := map[string]any{"targets": [][]any{{cl.uuids[id], id}, {cl.uuids[id], id}}, "is_broadcast": true, "is_coalescing": true}
	frames, h, err := bc.sess.Build(wire.Out{MsgType: "apply_request", Metadata: md, Content: content, Buffers: bufs})
	if err != nil {
		t.Fatal(err)
	}
	bc.sock.Send(frames)
	m := cl.recvOrDead(bc, 20*time.Second)
	var rmd struct {
		Original string `json:"original_msg_id"`
	}
	m.DecodeMetadata(&rmd)
	if rmd.Original != h.MsgID && !strings.HasPrefix(m.Parent.MsgID, h.MsgID) {
		t.Fatalf("reply %s %s is not about %s", m.Header.MsgType, m.Metadata, h.MsgID)
	}
	cl.healthy()
}

// TestAttackIdentitySpoofing: keyless peers connect to every engine-facing
// ROUTER with a registered engine's uuid as their identity. Requests must
// still reach the real engines and the spoofers must receive nothing.
func TestAttackIdentitySpoofing(t *testing.T) {
	cl := startCluster(t, controller.Config{})
	ports := []int{cl.ei.Mux, cl.ei.Task, cl.ei.Control, cl.ei.HBPong}
	ports = append(ports, cl.ei.Broadcast...)
	var mu sync.Mutex
	var stolen []string // what the spoofers received
	for _, id := range cl.ids {
		for _, port := range ports {
			s := dial(t, transport.Dealer, cl.ei.URL(port), nil, cl.uuids[id])
			// An unsigned engine_ready and a pong, as the engine would send.
			s.sock.Send(forged(nil, "engine_ready", cl.uuids[id], nil, map[string]any{}, map[string]any{}))
			s.sock.Send([][]byte{[]byte("0")})
			go func() {
				for f := range s.sock.Messages() {
					desc := fmt.Sprintf("port %d got %d frames", port, len(f))
					if m, err := wire.ParseUnchecked(f); err == nil {
						desc += fmt.Sprintf(": %s %s from session %s", m.Header.MsgType, m.Header.MsgID, m.Header.Session)
					}
					mu.Lock()
					stolen = append(stolen, desc)
					mu.Unlock()
				}
			}()
		}
	}
	report := func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("the spoofers received %d messages (client session %s): %v", len(stolen), cl.client.Session(), stolen)
	}
	ctx := ctxFor(t, 60*time.Second)
	for round := range 3 {
		for _, id := range cl.ids {
			actx, cancel := context.WithTimeout(ctx, 15*time.Second)
			ar, err := cl.client.View(id).Apply(actx, "echo", round*10+id)
			if err != nil {
				t.Fatal(err)
			}
			v, err := ipp.Get[int](actx, ar)
			cancel()
			if err != nil || v != round*10+id {
				t.Fatalf("direct echo on engine %d: %v, %v; %s", id, v, err, report())
			}
			if md := ar.Metadata()[0]; md.EngineID != id {
				t.Fatalf("echo for engine %d answered by %d", id, md.EngineID)
			}
		}
		bctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		b, err := cl.client.Broadcast().Apply(bctx, "echo", 77)
		if err != nil {
			t.Fatal(err)
		}
		if vs, err := ipp.GetAll[int](bctx, b); err != nil || !slices.Equal(vs, []int{77, 77}) {
			t.Fatalf("broadcast echo: %v, %v; %s", vs, err, report())
		}
		if err := cl.client.Clear(bctx); err != nil {
			t.Fatalf("control clear_request: %v; %s", err, report())
		}
		cancel()
	}
	cl.healthy()
	mu.Lock()
	n := len(stolen)
	mu.Unlock()
	if n > 0 {
		t.Fatal(report())
	}
}

// TestAttackFloodAndGarbage: raw non-ZMTP bytes, truncated and oversized
// messages, unsigned control messages, hub queries with a wrong key and
// 2,000 idle connections, on every port. Afterwards the controller runs,
// the engines are the same, earlier records are unchanged and a client
// gets correct results from both engines.
func TestAttackFloodAndGarbage(t *testing.T) {
	testutil.RaiseFileLimit(t, 8192)
	cl := startCluster(t, controller.Config{})
	ctx := ctxFor(t, 120*time.Second)

	// Real work whose records must survive.
	lb, err := cl.client.LoadBalanced().Map(ctx, "echo", []int{1, 2, 3, 4, 5, 6, 7, 8})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lb.Get(ctx); err != nil {
		t.Fatal(err)
	}
	direct, err := cl.client.View(cl.ids[1]).Apply(ctx, "echo", 99)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := direct.Get(ctx); err != nil {
		t.Fatal(err)
	}
	earlier := append(lb.MsgIDs(), direct.MsgIDs()...)
	history0 := cl.history()
	records0, buffers0 := cl.results(earlier)

	ci, ei := cl.ci, cl.ei
	routers := []int{ci.Registration, ci.Mux, ci.Control, ci.Task, ci.Broadcast, ei.Mux, ei.Control, ei.Task, ei.HBPong}
	routers = append(routers, ei.Broadcast...)
	pubs := []int{ci.Notification, ci.IOPub, ei.HBPing}
	all := append(append(slices.Clone(routers), pubs...), ei.IOPub)
	addr := func(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

	// 1. Raw bytes that are not ZMTP, and ZMTP greetings that lie.
	rng := mrand.New(mrand.NewPCG(1, 2))
	for _, port := range all {
		for k := range 4 {
			conn, err := net.DialTimeout("tcp", addr(port), 5*time.Second)
			if err != nil {
				t.Fatalf("dial %d: %v", port, err)
			}
			buf := make([]byte, 1+rng.IntN(64<<10))
			rand.Read(buf)
			switch k {
			case 1: // a ZMTP 3 signature announcing an absurd frame
				copy(buf, []byte{0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0})
			case 2: // HTTP
				buf = []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			}
			conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			conn.Write(buf)
			conn.Close()
		}
	}

	// 2. Two thousand idle connections, held while a client works.
	var idle []net.Conn
	t.Cleanup(func() {
		for _, c := range idle {
			c.Close()
		}
	})
	for i := range 2000 {
		conn, err := net.DialTimeout("tcp", addr(all[i%len(all)]), 5*time.Second)
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		idle = append(idle, conn)
	}

	// 3. Truncated, empty, many-frame and oversized messages over ZMTP.
	big := make([]byte, 64<<20)
	rand.Read(big)
	many := make([][]byte, 70_000)
	for i := range many {
		many[i] = []byte{}
	}
	for i, port := range routers {
		d := dial(t, transport.Dealer, ei.URL(port), nil, fmt.Sprintf("garbage-%d", i))
		d.sock.Send([][]byte{{}, {}, {}, {}, {}})
		d.sock.Send([][]byte{[]byte(wire.Delimiter), {}, {}, {}, {}, {}})
		d.sock.Send([][]byte{[]byte(cl.uuids[cl.ids[0]]), []byte(wire.Delimiter)})
		d.sock.Send([][]byte{[]byte(cl.uuids[cl.ids[0]]), []byte(wire.Delimiter), []byte("sig"), []byte("{"), []byte("}"), {}, {}})
		d.sock.Send(append([][]byte{[]byte(cl.uuids[cl.ids[0]]), []byte(wire.Delimiter)}, many...))
		d.sock.Send(many)
		if port == ci.Registration || port == ei.Mux {
			d.sock.Send([][]byte{[]byte(wire.Delimiter), []byte("sig"), big, []byte("{}"), []byte("{}"), []byte("{}")})
		}
	}
	iopubPub := dial(t, transport.Pub, ei.URL(ei.IOPub), nil, "")
	sendBurst(iopubPub.sock, 10, 200*time.Millisecond, func() [][]byte { return [][]byte{{}, {}, {}, {}, {}} })
	sendBurst(iopubPub.sock, 3, 100*time.Millisecond, func() [][]byte { return many })

	// 4. Unsigned control messages: to the engines through control_in, and
	// to the hub on the registration port.
	ctl := dial(t, transport.Dealer, ci.URL(ci.Control), nil, "")
	reg := dial(t, transport.Dealer, ci.URL(ci.Registration), nil, "")
	for _, id := range cl.ids {
		uuid := []byte(cl.uuids[id])
		for _, typ := range []string{"shutdown_request", "abort_request", "clear_request"} {
			ctl.sock.Send(forged([][]byte{uuid}, typ, "attacker", nil, map[string]any{}, map[string]any{"restart": false, "msg_ids": []string{}}))
		}
		reg.sock.Send(forged(nil, "unregistration_request", "attacker", nil, map[string]any{}, map[string]any{"id": id}))
	}
	for _, typ := range []string{"shutdown_request", "abort_request", "clear_request"} {
		reg.sock.Send(forged(nil, typ, "attacker", nil, map[string]any{}, map[string]any{}))
	}
	reg.sock.Send(forged(nil, "purge_request", "attacker", nil, map[string]any{}, map[string]any{"msg_ids": "all", "engine_ids": []int{}}))

	// 5. Hub queries signed with the wrong key.
	wrong := dial(t, transport.Dealer, ci.URL(ci.Registration), []byte("not-the-key"), "")
	wrong.send(nil, "purge_request", map[string]any{"msg_ids": "all", "engine_ids": cl.ids})
	wrong.send(nil, "unregistration_request", map[string]any{"id": cl.ids[0]})
	wrong.send(nil, "shutdown_request", map[string]any{})
	wrongTask := dial(t, transport.Dealer, ci.URL(ci.Task), []byte("not-the-key"), "")
	content, bufs := applyContent(t, "echo", true, 1)
	f, _, _ := wrongTask.sess.Build(wire.Out{MsgType: "apply_request", Content: content, Buffers: bufs})
	wrongTask.sock.Send(f)

	// A normal client works while the idle connections are held.
	cl.healthy()
	if got := cl.history(); len(got) < len(history0) || !slices.Equal(got[:len(history0)], history0) {
		t.Fatalf("history changed: %v, was %v", got, history0)
	}
	records, buffers := cl.results(earlier)
	if !reflect.DeepEqual(records, records0) || !reflect.DeepEqual(buffers, buffers0) {
		t.Fatalf("records of earlier tasks changed:\nbefore %v\nafter  %v", records0, records)
	}
	wrong.quiet(100 * time.Millisecond)
	cl.alive()
}
