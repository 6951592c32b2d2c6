package controller_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// TestClientRefusesTooLargeRequest: the Go client learns the controller's
// --max-message-size from connection_reply and refuses a larger request
// at once, naming both sizes, on every kind of view; it keeps working.
func TestClientRefusesTooLargeRequest(t *testing.T) {
	const limit = 1 << 20
	c, _ := startController(t, controller.Config{MaxMessageSize: limit})
	cl := curveCluster(t, c, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	big := make([]byte, 2<<20)
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ipp.ErrMessageTooLarge) {
			t.Fatalf("%s of 2 MiB: %v, want ErrMessageTooLarge", what, err)
		}
		if !strings.Contains(err.Error(), strconv.Itoa(limit)) || !strings.Contains(err.Error(), "at most") {
			t.Fatalf("%s: the error does not name the limit: %v", what, err)
		}
	}
	start := time.Now()
	_, err := cl.View(0).Push(ctx, map[string]any{"x": big})
	check("push", err)
	_, err = cl.LoadBalanced().Apply(ctx, "square", big)
	check("load-balanced apply", err)
	_, err = cl.Broadcast(0).Apply(ctx, "square", big)
	check("broadcast apply", err)
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("refusals took %v: they must not wait for the controller", d)
	}
	// The client and the controller keep working.
	ar, err := cl.View(0).Push(ctx, map[string]any{"x": big[:1000]})
	if err != nil {
		t.Fatal(err)
	}
	if err := ar.Wait(ctx); err != nil {
		t.Fatalf("a small push after the refusals: %v", err)
	}
	ar, err = cl.LoadBalanced().Apply(ctx, "square", 7)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := ar.Get(ctx); err != nil || v != int64(49) && v != 49 {
		t.Fatalf("square(7) after the refusals: %v %v", v, err)
	}
}

// TestManyFramesOverTheLimit: a keyed peer that bypasses the client's
// check with two frames, each under --max-message-size but together over
// it, gets a ValueError reply naming the limit from the mux, task and
// broadcast ports, and nothing reaches the engine.
func TestManyFramesOverTheLimit(t *testing.T) {
	const limit = 1 << 20
	c, logs := startController(t, controller.Config{MaxMessageSize: limit})
	cl := curveCluster(t, c, 1)
	uuid := c.Engines()[0].UUID
	ci := c.ClientInfo()
	half := make([]byte, limit/2+1000)
	for _, port := range []struct {
		name   string
		port   int
		idents [][]byte
		md     map[string]any
	}{
		{"mux", ci.Mux, [][]byte{[]byte(uuid)}, nil},
		{"task", ci.Task, nil, nil},
		{"broadcast", ci.Broadcast, nil, map[string]any{"targets": [][]any{{uuid, 0}}, "is_broadcast": true}},
	} {
		p := dial(t, transport.Dealer, ci.URL(port.port), []byte(ci.Key), "")
		frames, h, err := p.sess.Build(wire.Out{Idents: port.idents, MsgType: "apply_request", Metadata: port.md,
			Content: map[string]any{}, Buffers: [][]byte{half, half}})
		if err != nil {
			t.Fatal(err)
		}
		p.sock.Send(frames)
		m := p.recv(30 * time.Second)
		var e struct{ EName, EValue string }
		m.DecodeContent(&struct {
			EName  *string `json:"ename"`
			EValue *string `json:"evalue"`
		}{&e.EName, &e.EValue})
		if m.Parent.MsgID != h.MsgID || e.EName != "ValueError" || !strings.Contains(e.EValue, strconv.Itoa(limit)) ||
			!strings.Contains(e.EValue, "--max-message-size") {
			t.Fatalf("%s: reply to %s: parent %s, %s: %s", port.name, h.MsgID, m.Parent.MsgID, e.EName, e.EValue)
		}
	}
	// The engine got none of them: its queue is empty and it still works.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ar, err := cl.View(0).Apply(ctx, "square", 3)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := ar.Get(ctx); err != nil || v != int64(9) && v != 9 {
		t.Fatalf("square(3) after the refusals: %v %v\n%s", v, err, logs)
	}
}

// TestQueueLimits: submissions beyond --max-queued-tasks or
// --max-queued-bytes get an immediate QueueFull reply and are not queued;
// a task that finishes (here by timing out, with no engine to run it)
// frees its place.
func TestQueueLimits(t *testing.T) {
	c, _ := startController(t, controller.Config{MaxQueuedTasks: 3, MaxQueuedBytes: 1 << 20})
	ci := c.ClientInfo()
	p := dial(t, transport.Dealer, ci.URL(ci.Task), []byte(ci.Key), "")
	submit := func(size int, timeout float64) wire.Header {
		t.Helper()
		md := map[string]any{}
		if timeout > 0 {
			md["timeout"] = timeout
		}
		frames, h, err := p.sess.Build(wire.Out{MsgType: "apply_request", Metadata: md, Content: map[string]any{},
			Buffers: [][]byte{make([]byte, size)}})
		if err != nil {
			t.Fatal(err)
		}
		p.sock.Send(frames)
		return h
	}
	type reply struct{ parent, ename, evalue string }
	next := func() reply {
		t.Helper()
		m := p.recv(30 * time.Second)
		var r reply
		var content struct {
			EName  string `json:"ename"`
			EValue string `json:"evalue"`
		}
		m.DecodeContent(&content)
		r.parent, r.ename, r.evalue = m.Parent.MsgID, content.EName, content.EValue
		return r
	}
	q := dial(t, transport.Dealer, ci.URL(ci.Registration), []byte(ci.Key), "")
	unassigned := func() int {
		t.Helper()
		q.send(nil, "queue_request", map[string]any{"targets": nil, "verbose": false})
		m := q.recv(10 * time.Second)
		var content struct {
			Unassigned int `json:"unassigned"`
		}
		if err := m.DecodeContent(&content); err != nil {
			t.Fatalf("queue_reply %s: %v", m.Content, err)
		}
		return content.Unassigned
	}

	// No engines: tasks wait. Three fit, the fourth is refused at once.
	for range 3 {
		submit(10, 0)
	}
	h := submit(10, 0)
	r := next()
	if r.parent != h.MsgID || r.ename != controller.QueueFull || !strings.Contains(r.evalue, "--max-queued-tasks") {
		t.Fatalf("fourth task: %+v", r)
	}
	if n := unassigned(); n != 3 {
		t.Fatalf("%d tasks queued, want 3 (the refused one must not be)", n)
	}

	// Bytes: a fresh controller with room for many tasks but 1 MiB.
	c, _ = startController(t, controller.Config{MaxQueuedTasks: 100, MaxQueuedBytes: 1 << 20})
	ci = c.ClientInfo()
	p = dial(t, transport.Dealer, ci.URL(ci.Task), []byte(ci.Key), "")
	q = dial(t, transport.Dealer, ci.URL(ci.Registration), []byte(ci.Key), "")
	first := submit(600<<10, 0.2) // times out soon: nothing can run it
	h = submit(600<<10, 0)
	r = next()
	if r.parent != h.MsgID || r.ename != controller.QueueFull || !strings.Contains(r.evalue, "--max-queued-bytes") ||
		!strings.Contains(r.evalue, strconv.Itoa(1<<20)) {
		t.Fatalf("second 600 KiB task: %+v", r)
	}
	if r = next(); r.parent != first.MsgID || r.ename != "TaskTimeout" {
		t.Fatalf("first task: %+v, want its TaskTimeout", r)
	}
	// Its bytes are free again: the same submission now waits (the
	// task and hub ports are served apart, so poll).
	submit(600<<10, 0)
	testutil.Eventually(t, 10*time.Second, func() bool { return unassigned() == 1 },
		"the task submitted after the timeout is not queued")
	select {
	case frames := <-p.sock.Messages():
		t.Fatalf("the task submitted after the timeout was answered: %q", frames)
	default:
	}
}
