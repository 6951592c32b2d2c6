package controller_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// peer is a raw client of one controller port.
type peer struct {
	t    *testing.T
	sock transport.Socket
	sess *wire.Session
}

func dial(t *testing.T, typ transport.Type, url string, key []byte, identity string) *peer {
	t.Helper()
	s, err := transport.Default().NewSocket(typ, transport.Options{Identity: []byte(identity)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Connect(url); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &peer{t: t, sock: s, sess: wire.NewSession(key, identity)}
}

func (p *peer) send(idents [][]byte, msgType string, content any) wire.Header {
	p.t.Helper()
	frames, h, err := p.sess.Build(wire.Out{Idents: idents, MsgType: msgType, Content: content})
	if err != nil {
		p.t.Fatal(err)
	}
	if err := p.sock.Send(frames); err != nil {
		p.t.Fatal(err)
	}
	return h
}

// recv waits for the next message that parses, or fails after timeout.
func (p *peer) recv(timeout time.Duration) *wire.Message {
	p.t.Helper()
	select {
	case frames := <-p.sock.Messages():
		m, err := p.sess.Parse(frames)
		if err != nil {
			p.t.Fatalf("reply does not verify: %v", err)
		}
		return m
	case <-time.After(timeout):
		p.t.Fatalf("no reply within %v", timeout)
	}
	return nil
}

// quiet asserts that nothing arrives for a short while; used only to show
// that a refused message got no answer, never to wait for something.
func (p *peer) quiet(d time.Duration) {
	p.t.Helper()
	select {
	case frames := <-p.sock.Messages():
		p.t.Fatalf("unexpected message: %q", frames)
	case <-time.After(d):
	}
}

func startController(t *testing.T, cfg controller.Config) (*controller.Controller, *testutil.SyncBuffer) {
	t.Helper()
	logs := &testutil.SyncBuffer{}
	cfg.Logger = newLogger(logs)
	c, err := controller.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, logs
}

func TestBadInputOnRegistrationPort(t *testing.T) {
	c, logs := startController(t, controller.Config{})
	ci := c.ClientInfo()
	key := []byte(ci.Key)
	q := dial(t, transport.Dealer, ci.URL(ci.Registration), key, "")

	// Malformed frames: no delimiter, too few frames, garbage JSON.
	q.sock.Send([][]byte{[]byte("hello")})
	q.sock.Send([][]byte{[]byte(wire.Delimiter), []byte("sig")})
	sig := q.sess.Sign([]byte("{not json"), []byte("{}"), []byte("{}"), []byte("{}"))
	q.sock.Send([][]byte{[]byte(wire.Delimiter), sig, []byte("{not json"), []byte("{}"), []byte("{}"), []byte("{}")})

	// A wrong key: refused without an answer (the sender could not verify it).
	bad := dial(t, transport.Dealer, ci.URL(ci.Registration), []byte("wrong-key"), "")
	bad.send(nil, "connection_request", map[string]any{})
	bad.quiet(300 * time.Millisecond)

	// The controller still serves a good request.
	h := q.send(nil, "connection_request", map[string]any{})
	m := q.recv(5 * time.Second)
	if m.Header.MsgType != "connection_reply" || m.Parent.MsgID != h.MsgID {
		t.Fatalf("got %s for %s", m.Header.MsgType, m.Parent.MsgID)
	}

	// An unknown message type gets hub_error, as in ipyparallel.
	q.send(nil, "bogus_request", map[string]any{})
	m = q.recv(5 * time.Second)
	var e struct{ Status, EName, EValue string }
	m.DecodeContent(&e)
	if m.Header.MsgType != "hub_error" || !strings.Contains(string(m.Content), "Bad Message Type") {
		t.Fatalf("unknown type: got %s %s", m.Header.MsgType, m.Content)
	}

	// A replayed (byte-identical) request is refused.
	frames, _, _ := q.sess.Build(wire.Out{MsgType: "connection_request", Content: map[string]any{}})
	q.sock.Send(frames)
	q.recv(5 * time.Second)
	q.sock.Send(frames)
	q.quiet(300 * time.Millisecond)

	// A queue_request naming an engine that does not exist is an error reply.
	q.send(nil, "queue_request", map[string]any{"targets": []int{99}, "verbose": false})
	m = q.recv(5 * time.Second)
	if m.Header.MsgType != "hub_error" || !strings.Contains(string(m.Content), "No Such Engine") {
		t.Fatalf("unknown engine: got %s %s", m.Header.MsgType, m.Content)
	}

	// Registration without a uuid is answered with an error, not silence.
	q.send(nil, "registration_request", map[string]any{})
	m = q.recv(5 * time.Second)
	if !strings.Contains(string(m.Content), `"error"`) {
		t.Fatalf("registration without uuid: %s", m.Content)
	}

	for _, want := range []string{"invalid signature", "duplicate signature", "no <IDS|MSG> delimiter", "fewer than 5 frames", "bad header"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("controller log does not mention %q:\n%s", want, logs.String())
		}
	}
}

func TestDirectRequestToUnknownEngineGetsError(t *testing.T) {
	c, _ := startController(t, controller.Config{})
	ci := c.ClientInfo()
	cl := dial(t, transport.Dealer, ci.URL(ci.Mux), []byte(ci.Key), "")
	h := cl.send([][]byte{[]byte("no-such-engine")}, "execute_request", map[string]any{"code": "1", "silent": false})
	m := cl.recv(5 * time.Second)
	if m.Header.MsgType != "execute_reply" || m.Parent.MsgID != h.MsgID {
		t.Fatalf("got %s for %s", m.Header.MsgType, m.Parent.MsgID)
	}
	var e struct {
		Status string `json:"status"`
		EName  string `json:"ename"`
	}
	json.Unmarshal(m.Content, &e)
	if e.Status != "error" || e.EName != "EngineError" {
		t.Fatalf("content %s", m.Content)
	}
}

func TestShutdownRequestStopsController(t *testing.T) {
	c, _ := startController(t, controller.Config{})
	ci := c.ClientInfo()
	notif := dial(t, transport.Sub, ci.URL(ci.Notification), []byte(ci.Key), "")
	q := dial(t, transport.Dealer, ci.URL(ci.Registration), []byte(ci.Key), "")
	q.send(nil, "shutdown_request", map[string]any{})
	if m := q.recv(5 * time.Second); m.Header.MsgType != "shutdown_reply" {
		t.Fatalf("got %s", m.Header.MsgType)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("controller did not stop after shutdown_request")
	}
	_ = notif
}

func TestOversizedMessages(t *testing.T) {
	c, logs := startController(t, controller.Config{})
	ci := c.ClientInfo()
	q := dial(t, transport.Dealer, ci.URL(ci.Registration), []byte(ci.Key), "")
	// A 20 MiB query gets a clear error instead of being decoded.
	q.send(nil, "connection_request", map[string]any{"pad": strings.Repeat("x", 20<<20)})
	m := q.recv(30 * time.Second)
	if m.Header.MsgType != "hub_error" || !strings.Contains(string(m.Content), "larger than the hub accepts") {
		t.Fatalf("oversized query: %s %.200s", m.Header.MsgType, m.Content)
	}
	// More buffer frames than any message may carry: refused, logged.
	frames, _, _ := q.sess.Build(wire.Out{MsgType: "connection_request", Buffers: make([][]byte, wire.MaxFrames+1)})
	q.sock.Send(frames)
	testutil.Eventually(t, 10*time.Second, func() bool { return strings.Contains(logs.String(), "more than the limit") },
		"the frame-count refusal is logged")
	// The controller still answers.
	q.send(nil, "connection_request", map[string]any{})
	if m := q.recv(5 * time.Second); m.Header.MsgType != "connection_reply" {
		t.Fatalf("after oversized input: %s", m.Header.MsgType)
	}
}
