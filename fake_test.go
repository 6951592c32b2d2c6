package ipp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/codec"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// fakeHub plays the controller's client-facing sockets by hand, so tests
// can script exactly which replies and IOPub messages arrive, and when.
type fakeHub struct {
	t       *testing.T
	s       *wire.Session
	info    *wire.ClientInfo
	reg     transport.Socket
	mux     transport.Socket
	control transport.Socket
	task    transport.Socket
	notif   transport.Socket
	iopub   transport.Socket

	mu      sync.Mutex
	engines map[string]string // id -> uuid, as in connection_reply
	queries []string
	// mute drops every query unanswered, as a dead hub would.
	mute bool
	// engineInfo answers engine_info_request as our controller does;
	// without it the fake answers hub_error, as Python's hub does.
	engineInfo bool
	muxIn      chan *wire.Message
	ctlIn      chan *wire.Message
	taskIn     chan *wire.Message
}

const fakeKey = "fake-hub-key"

func newFakeHub(t *testing.T, engines map[int]string) *fakeHub {
	t.Helper()
	h := &fakeHub{
		t: t, s: wire.NewSession([]byte(fakeKey), ""), engines: map[string]string{},
		muxIn: make(chan *wire.Message, 100), ctlIn: make(chan *wire.Message, 100), taskIn: make(chan *wire.Message, 100),
	}
	for id, u := range engines {
		h.engines[strconv.Itoa(id)] = u
	}
	b := transport.Default()
	bind := func(typ transport.Type) (transport.Socket, int) {
		s, err := b.NewSocket(typ, transport.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		ep, err := s.Bind("tcp://127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port, err := strconv.Atoi(ep[strings.LastIndexByte(ep, ':')+1:])
		if err != nil {
			t.Fatal(err)
		}
		return s, port
	}
	ci := &wire.ClientInfo{TaskScheme: "leastload"}
	ci.Interface = "tcp://127.0.0.1"
	ci.Key = fakeKey
	ci.Defaults()
	h.reg, ci.Registration = bind(transport.Router)
	h.mux, ci.Mux = bind(transport.Router)
	h.control, ci.Control = bind(transport.Router)
	h.task, ci.Task = bind(transport.Router)
	h.notif, ci.Notification = bind(transport.Pub)
	h.iopub, ci.IOPub = bind(transport.Pub)
	h.info = ci
	go h.serveQueries()
	go h.collect(h.mux, h.muxIn)
	go h.collect(h.control, h.ctlIn)
	go h.collect(h.task, h.taskIn)
	return h
}

func (h *fakeHub) serveQueries() {
	for frames := range h.reg.Messages() {
		m, err := h.s.Parse(frames)
		if err != nil {
			continue
		}
		h.mu.Lock()
		h.queries = append(h.queries, m.Header.MsgType)
		engines := map[string]string{}
		for k, v := range h.engines {
			engines[k] = v
		}
		mute, engineInfo := h.mute, h.engineInfo
		h.mu.Unlock()
		if mute {
			continue
		}
		switch m.Header.MsgType {
		case "connection_request":
			h.send(h.reg, m.Idents, "connection_reply", m, nil, map[string]any{"status": "ok", "engines": engines})
		case "engine_info_request":
			if !engineInfo {
				h.send(h.reg, m.Idents, "hub_error", m, nil, map[string]any{
					"status": "error", "ename": "KeyError", "evalue": "Bad Message Type: 'engine_info_request'",
					"traceback": []string{}, "engine_info": map[string]any{},
				})
				break
			}
			infos := map[string]any{}
			for k, u := range engines {
				id, _ := strconv.Atoi(k)
				infos[k] = map[string]any{"id": id, "uuid": u, "host": "fakehost", "pid": 100 + id, "language": "go"}
			}
			h.send(h.reg, m.Idents, "engine_info_reply", m, nil, map[string]any{"status": "ok", "engines": infos})
		case "shutdown_request":
			h.send(h.reg, m.Idents, "shutdown_reply", m, nil, map[string]any{"status": "ok"})
			h.send(h.notif, nil, "shutdown_notification", m, nil, map[string]any{"status": "ok"})
		default:
			// As the Python hub does for unknown types.
			h.send(h.reg, m.Idents, "hub_error", m, nil, map[string]any{
				"status": "error", "ename": "KeyError", "evalue": "Bad Message Type: '" + m.Header.MsgType + "'",
				"traceback": []string{}, "engine_info": map[string]any{},
			})
		}
	}
}

func (h *fakeHub) collect(s transport.Socket, ch chan *wire.Message) {
	for frames := range s.Messages() {
		m, err := h.s.Parse(frames)
		if err != nil {
			h.t.Errorf("fake hub: bad message: %v", err)
			continue
		}
		ch <- m
	}
}

func (h *fakeHub) send(s transport.Socket, idents [][]byte, msgType string, parent *wire.Message, md, content any) {
	var p []byte
	if parent != nil {
		p = parent.RawHeader
	}
	frames, _, err := h.s.Build(wire.Out{Idents: idents, MsgType: msgType, Parent: p, Metadata: md, Content: content})
	if err != nil {
		h.t.Error(err)
		return
	}
	s.Send(frames)
}

// next returns the next request that reached ch.
func (h *fakeHub) next(ch chan *wire.Message) *wire.Message {
	h.t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		h.t.Fatal("fake hub: no request arrived")
		return nil
	}
}

// replyMux answers a mux request as the relay would deliver an engine's
// reply: [client, engine uuid, DELIM, ...].
func (h *fakeHub) replyMux(req *wire.Message, uuid, msgType string, content map[string]any) {
	md := map[string]any{"started": wire.FormatDate(time.Now()), "engine": uuid, "status": content["status"],
		"dependencies_met": true, "is_broadcast": false, "is_coalescing": false, "original_msg_id": ""}
	h.send(h.mux, [][]byte{req.Idents[0], []byte(uuid)}, msgType, req, md, content)
}

// pub publishes an engine's IOPub message about req.
func (h *fakeHub) pub(req *wire.Message, uuid, msgType string, content map[string]any) {
	h.send(h.iopub, [][]byte{[]byte("engine.0." + msgType)}, msgType, req, map[string]any{"engine": uuid}, content)
}

// settle waits until the client's notification subscription is live
// (PUB/SUB drops what is published before it), by announcing a dummy
// engine until the client lists it and then withdrawing it.
func (h *fakeHub) settle(c *Client) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(c.IDs(), 999) {
		if time.Now().After(deadline) {
			h.t.Fatal("client never saw a notification")
		}
		h.send(h.notif, nil, "registration_notification", nil, nil, map[string]any{"id": 999, "uuid": "settle-uuid"})
		time.Sleep(20 * time.Millisecond)
	}
	h.send(h.notif, nil, "unregistration_notification", nil, nil, map[string]any{"id": 999, "uuid": "settle-uuid"})
	testutil.Eventually(h.t, 10*time.Second, func() bool { return !slices.Contains(c.IDs(), 999) }, "dummy engine not removed")
}

func fakeClient(t *testing.T, h *fakeHub, opts ...Option) *Client {
	t.Helper()
	c, err := ConnectInfo(ctxT(t, 10*time.Second), h.info, append(testOptions(), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h.settle(c)
	return c
}

const (
	uuidA = "aaaaaaaa-000000000000000000000001"
	uuidB = "bbbbbbbb-000000000000000000000002"
)

func TestFakeRoutingAndOutput(t *testing.T) {
	h := newFakeHub(t, map[int]string{0: uuidA, 1: uuidB})
	c := fakeClient(t, h)
	ctx := ctxT(t, 10*time.Second)
	if got := c.IDs(); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("IDs = %v", got)
	}
	ar, err := c.View(1).Execute(ctx, "print(1)")
	if err != nil {
		t.Fatal(err)
	}
	req := h.next(h.muxIn)
	// The DEALER has no identity: the ROUTER sees [client id, target uuid].
	if len(req.Idents) != 2 || string(req.Idents[1]) != uuidB {
		t.Fatalf("mux idents %q", req.Idents)
	}
	var content map[string]any
	req.DecodeContent(&content)
	if content["code"] != "print(1)" || content["silent"] != true {
		t.Errorf("execute content %v", content)
	}
	if string(req.Metadata) != "{}" {
		t.Errorf("direct metadata %s, want {}", req.Metadata)
	}
	// IOPub from another session is ignored even if the msg_id matched.
	other := *req
	other.RawHeader = []byte(strings.Replace(string(req.RawHeader), req.Header.Session, "someone-else", 1))
	h.pub(&other, uuidB, "stream", map[string]any{"name": "stdout", "text": "NOT MINE\n"})
	h.pub(req, uuidB, "status", map[string]any{"execution_state": "busy"})
	h.pub(req, uuidB, "stream", map[string]any{"name": "stdout", "text": "1\n"})
	h.replyMux(req, uuidB, "execute_reply", map[string]any{"status": "ok", "execution_count": 3, "user_expressions": map[string]any{}, "payload": []any{}})
	// The reply alone does not complete the request: output may follow.
	time.Sleep(50 * time.Millisecond)
	if ar.Ready() {
		t.Fatal("ready before IOPub idle")
	}
	h.pub(req, uuidB, "stream", map[string]any{"name": "stderr", "text": "late\n"})
	h.pub(req, uuidB, "status", map[string]any{"execution_state": "idle"})
	v, err := ar.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	er := v.(*ExecuteReply)
	if er.Stdout != "1\n" || er.Stderr != "late\n" || er.Engine != 1 || er.ExecutionCount != 3 {
		t.Errorf("reply %+v", er)
	}
	md := ar.Metadata()[0]
	if md.EngineUUID != uuidB || md.Status != "ok" || !md.OutputComplete || md.Started.IsZero() {
		t.Errorf("metadata %+v", md)
	}
}

func TestFakeIdleBeforeReply(t *testing.T) {
	h := newFakeHub(t, map[int]string{0: uuidA})
	c := fakeClient(t, h)
	ctx := ctxT(t, 10*time.Second)
	ar, err := c.View(0).Execute(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	req := h.next(h.muxIn)
	h.pub(req, uuidA, "status", map[string]any{"execution_state": "idle"})
	time.Sleep(50 * time.Millisecond)
	if ar.Ready() {
		t.Fatal("ready before the reply")
	}
	h.replyMux(req, uuidA, "execute_reply", map[string]any{
		"status": "error", "ename": "NameError", "evalue": "name 'x' is not defined", "traceback": []string{"tb1", "tb2"},
		"engine_info": map[string]any{"engine_uuid": uuidA, "engine_id": -1, "method": "execute"},
	})
	_, err = ar.Get(ctx)
	var re *RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("want RemoteError, got %v", err)
	}
	// 7.1 engines say engine_id -1; the client fixes it from the uuid.
	if re.Engine != 0 || re.EName != "NameError" || re.Method != "execute" || re.TracebackText() != "tb1\ntb2" {
		t.Errorf("%+v", re)
	}
	if re.Error() != "[0:execute] NameError: name 'x' is not defined" {
		t.Errorf("Error() = %q", re.Error())
	}
}

func TestFakeOutputGrace(t *testing.T) {
	h := newFakeHub(t, map[int]string{0: uuidA})
	c := fakeClient(t, h, WithOutputGrace(100*time.Millisecond))
	ctx := ctxT(t, 10*time.Second)
	ar, err := c.View(0).Execute(ctx, "pass")
	if err != nil {
		t.Fatal(err)
	}
	req := h.next(h.muxIn)
	h.replyMux(req, uuidA, "execute_reply", map[string]any{"status": "ok", "execution_count": 1})
	// No idle ever comes (lost IOPub): the grace period completes it.
	if _, err := ar.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if ar.Metadata()[0].OutputComplete {
		t.Error("OutputComplete without an idle")
	}
}

// TestFakeOutputGraceWithoutKeepalive: a client without keepalive probes
// hears nothing from an idle controller, so the grace alone decides: a
// lost idle completes after one grace, not after the cap of twelve.
func TestFakeOutputGraceWithoutKeepalive(t *testing.T) {
	h := newFakeHub(t, map[int]string{0: uuidA})
	const grace = time.Second
	c := fakeClient(t, h, WithOutputGrace(grace), WithKeepalive(0, 0))
	ctx := ctxT(t, 30*time.Second)
	ar, err := c.View(0).Execute(ctx, "pass")
	if err != nil {
		t.Fatal(err)
	}
	h.replyMux(h.next(h.muxIn), uuidA, "execute_reply", map[string]any{"status": "ok", "execution_count": 1})
	start := time.Now()
	if _, err := ar.Get(ctx); err != nil {
		t.Fatal(err)
	}
	// Half the cap: far above one grace, far below twelve.
	if took := time.Since(start); took > outputGraceCap*grace/2 {
		t.Errorf("a lost idle took %v to complete without keepalive (grace %v, cap %v)", took, grace, outputGraceCap*grace)
	}
}

// TestFakeOutputGraceCountsSilence: the output grace runs from the last
// IOPub message about our requests, not from the reply. A's idle comes
// long after A's reply, behind a stream of B's output (a controller
// behind under load, many engines printing): A must wait for it and
// report complete output rather than give up one grace after its reply.
func TestFakeOutputGraceCountsSilence(t *testing.T) {
	h := newFakeHub(t, map[int]string{0: uuidA, 1: uuidB})
	const grace = 2 * time.Second
	c := fakeClient(t, h, WithOutputGrace(grace))
	ctx := ctxT(t, 30*time.Second)
	a, err := c.View(0).Execute(ctx, "print(1)")
	if err != nil {
		t.Fatal(err)
	}
	reqA := h.next(h.muxIn)
	b, err := c.View(1).Execute(ctx, "print(2)")
	if err != nil {
		t.Fatal(err)
	}
	reqB := h.next(h.muxIn)
	h.replyMux(reqA, uuidA, "execute_reply", map[string]any{"status": "ok", "execution_count": 1})
	// B's output flows for more than twice the grace; the pacing is the
	// scenario, and only a gap longer than the grace could end A early.
	for end := time.Now().Add(9 * grace / 4); time.Now().Before(end); {
		h.pub(reqB, uuidB, "stream", map[string]any{"name": "stdout", "text": "."})
		time.Sleep(50 * time.Millisecond)
	}
	if a.Progress() != 0 {
		t.Fatal("A completed without its idle while output for this client was still arriving")
	}
	h.pub(reqA, uuidA, "stream", map[string]any{"name": "stdout", "text": "1\n"})
	h.pub(reqA, uuidA, "status", map[string]any{"execution_state": "idle"})
	if _, err := a.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if md := a.Metadata()[0]; !md.OutputComplete || md.Stdout != "1\n" {
		t.Errorf("A: OutputComplete %v, stdout %q", md.OutputComplete, md.Stdout)
	}
	h.replyMux(reqB, uuidB, "execute_reply", map[string]any{"status": "ok", "execution_count": 1})
	h.pub(reqB, uuidB, "status", map[string]any{"execution_state": "idle"})
	if _, err := b.Get(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestFakeOutputGraceWaitsForStalledController: a controller that stalls
// after forwarding replies (starved of CPU) sends nothing at all, keepalive
// answers included. That silence must not complete the requests: their
// output is in its backlog. Once it answers again, the output that comes
// is complete, and a request whose idle is really lost completes one grace
// after that.
func TestFakeOutputGraceWaitsForStalledController(t *testing.T) {
	h := newFakeHub(t, map[int]string{0: uuidA, 1: uuidB})
	const grace = 300 * time.Millisecond
	c := fakeClient(t, h, WithOutputGrace(grace), WithKeepalive(100*time.Millisecond, 100))
	ctx := ctxT(t, 30*time.Second)
	a, err := c.View(0).Execute(ctx, "print(1)")
	if err != nil {
		t.Fatal(err)
	}
	reqA := h.next(h.muxIn)
	b, err := c.View(1).Execute(ctx, "pass")
	if err != nil {
		t.Fatal(err)
	}
	reqB := h.next(h.muxIn)
	h.replyMux(reqA, uuidA, "execute_reply", map[string]any{"status": "ok", "execution_count": 1})
	h.replyMux(reqB, uuidB, "execute_reply", map[string]any{"status": "ok", "execution_count": 1})
	testutil.Eventually(t, 10*time.Second, func() bool {
		return !a.Metadata()[0].Received.IsZero() && !b.Metadata()[0].Received.IsZero()
	}, "replies not received")
	h.mu.Lock()
	h.mute = true
	h.mu.Unlock()
	// Five graces of total silence: the stall, not a loss.
	stallEnd := time.Now().Add(5 * grace)
	for time.Now().Before(stallEnd) {
		if a.Progress() != 0 || b.Progress() != 0 {
			t.Fatal("a request completed without its idle while the controller was silent")
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.mu.Lock()
	h.mute = false
	h.mu.Unlock()
	h.pub(reqA, uuidA, "stream", map[string]any{"name": "stdout", "text": "1\n"})
	h.pub(reqA, uuidA, "status", map[string]any{"execution_state": "idle"})
	if _, err := a.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if md := a.Metadata()[0]; !md.OutputComplete || md.Stdout != "1\n" {
		t.Errorf("A after the stall: OutputComplete %v, stdout %q", md.OutputComplete, md.Stdout)
	}
	// B's idle never comes: the controller answers again, so the grace
	// runs out.
	if _, err := b.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if b.Metadata()[0].OutputComplete {
		t.Error("B: OutputComplete without an idle")
	}
}

func TestFakeEngineDeathFailsDirectRequests(t *testing.T) {
	h := newFakeHub(t, map[int]string{0: uuidA, 1: uuidB})
	c := fakeClient(t, h)
	ctx := ctxT(t, 10*time.Second)
	ar, err := c.All().Execute(ctx, "long()")
	if err != nil {
		t.Fatal(err)
	}
	reqs := map[string]*wire.Message{}
	for i := 0; i < 2; i++ {
		m := h.next(h.muxIn)
		reqs[string(m.Idents[1])] = m
	}
	lb, err := c.LoadBalanced().Execute(ctx, "task()")
	if err != nil {
		t.Fatal(err)
	}
	h.next(h.taskIn)
	// Engine 0 answers; engine 1 dies.
	h.replyMux(reqs[uuidA], uuidA, "execute_reply", map[string]any{"status": "ok", "execution_count": 1})
	h.pub(reqs[uuidA], uuidA, "status", map[string]any{"execution_state": "idle"})
	h.send(h.notif, nil, "unregistration_notification", nil, nil, map[string]any{"id": 1, "uuid": uuidB})
	v, err := ar.Get(ctx)
	var ce *CompositeError
	if !errors.As(err, &ce) || len(ce.Errors) != 1 {
		t.Fatalf("want one failure in a CompositeError, got %v", err)
	}
	if !IsEngineError(err) || ce.Errors[0].Engine != 1 {
		t.Errorf("failure %+v", ce.Errors[0])
	}
	if list := v.([]any); list[0] == nil || list[1] != nil {
		t.Errorf("partial results %v", list)
	}
	if got := c.IDs(); !slices.Equal(got, []int{0}) {
		t.Errorf("IDs after unregistration: %v", got)
	}
	// The load-balanced task is the scheduler's business: still pending.
	if lb.Ready() {
		t.Error("task failed by the client")
	}
	// A late real reply does not change the synthesized failure.
	h.replyMux(reqs[uuidB], uuidB, "execute_reply", map[string]any{"status": "ok", "execution_count": 1})
	time.Sleep(50 * time.Millisecond)
	if _, err := ar.Get(ctx); !IsEngineError(err) {
		t.Errorf("stale reply replaced the failure: %v", err)
	}
	// New requests to the dead engine are refused.
	if _, err := c.View(1).Execute(ctx, "x"); err == nil {
		t.Error("request to an unregistered engine accepted")
	}
}

func TestFakeTaskMetadataAndSchedulerError(t *testing.T) {
	h := newFakeHub(t, map[int]string{0: uuidA, 1: uuidB})
	c := fakeClient(t, h)
	ctx := ctxT(t, 10*time.Second)
	first, err := c.LoadBalanced().Execute(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	h.next(h.taskIn)
	lb := c.LoadBalanced(1).WithRetries(2).WithTimeout(1500*time.Millisecond).WithAfter(first).WithFollow("m1", "m2")
	ar, err := lb.Execute(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	req := h.next(h.taskIn)
	if len(req.Idents) != 1 {
		t.Errorf("task request idents %q: want only the client's", req.Idents)
	}
	want := `{"after":["` + first.MsgIDs()[0] + `"],"follow":["m1","m2"],"retries":2,"targets":["` + uuidB + `"],"timeout":1.5}`
	if string(req.Metadata) != want {
		t.Errorf("task metadata\n got %s\nwant %s", req.Metadata, want)
	}
	// A scheduler failure: apply_reply, no engine frame, no engine_info,
	// and no IOPub will follow — it completes at once.
	h.send(h.task, [][]byte{req.Idents[0]}, "apply_reply", req, map[string]any{}, map[string]any{
		"status": "error", "ename": "TaskTimeout", "evalue": "", "traceback": []string{"x"}, "engine_info": map[string]any{},
	})
	_, err = ar.Get(ctx)
	var re *RemoteError
	if !errors.As(err, &re) || re.EName != "TaskTimeout" || re.Engine != -1 {
		t.Fatalf("want TaskTimeout from the scheduler, got %v", err)
	}
	// Dependency flags other than the default use the dict form.
	d := Dependency{MsgIDs: []string{"x"}, All: false, Success: true, Failure: true}
	b, _ := d.MarshalJSON()
	if string(b) != `{"all":false,"dependencies":["x"],"failure":true,"success":true}` {
		t.Errorf("dependency JSON %s", b)
	}
}

// TestEnginesRepairsMissedNotification: an engine registered while this
// client's notification SUB was not listening (no notification arrives)
// is listed by Engines, which asks the hub, whichever kind of hub it is;
// and the client knows it from then on.
func TestEnginesRepairsMissedNotification(t *testing.T) {
	for _, goHub := range []bool{false, true} {
		t.Run(fmt.Sprintf("engine_info=%v", goHub), func(t *testing.T) {
			h := newFakeHub(t, map[int]string{0: uuidA})
			h.mu.Lock()
			h.engineInfo = goHub
			h.mu.Unlock()
			c := fakeClient(t, h)
			ctx := ctxT(t, 10*time.Second)
			if ids := c.IDs(); len(ids) != 1 {
				t.Fatalf("ids after connecting: %v", ids)
			}
			// The hub registers engine 1; its notification is lost.
			h.mu.Lock()
			h.engines["1"] = uuidB
			h.mu.Unlock()
			engines, err := c.Engines(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(engines) != 2 || engines[1].ID != 1 || engines[1].UUID != uuidB {
				t.Fatalf("engines %+v, want ids 0 and 1", engines)
			}
			if goHub && (engines[1].Host != "fakehost" || engines[1].PID != 101) {
				t.Errorf("engine 1 has no details: %+v", engines[1])
			}
			if ids := c.IDs(); len(ids) != 2 {
				t.Errorf("the client still knows ids %v only", ids)
			}
		})
	}
}

func TestFakeControlAndHub(t *testing.T) {
	h := newFakeHub(t, map[int]string{0: uuidA, 1: uuidB})
	c := fakeClient(t, h)
	ctx := ctxT(t, 10*time.Second)
	// Engines falls back to ids and uuids when the hub does not know
	// engine_info_request (Python's answers hub_error).
	engines, err := c.Engines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(engines) != 2 || engines[1].UUID != uuidB || engines[1].Host != "" {
		t.Errorf("engines %+v", engines)
	}
	errc := make(chan error, 1)
	go func() { errc <- c.Clear(ctx) }()
	for i := 0; i < 2; i++ {
		req := h.next(h.ctlIn)
		if req.Header.MsgType != "clear_request" {
			t.Fatalf("control got %s", req.Header.MsgType)
		}
		// Replies are matched by msg_id only (the nanny's signal reply
		// is typed "_request").
		h.send(h.control, [][]byte{req.Idents[0], req.Idents[1]}, "_request", req, nil, map[string]any{"status": "ok"})
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// A control request to an engine that dies fails instead of hanging.
	go func() { errc <- c.Abort(ctx, []string{"m"}, 0) }()
	h.next(h.ctlIn)
	h.send(h.notif, nil, "unregistration_notification", nil, nil, map[string]any{"id": 0, "uuid": uuidA})
	if err := <-errc; !IsEngineError(err) {
		t.Fatalf("abort to a dead engine: %v", err)
	}
	// Hub shutdown closes the client and fails what is outstanding.
	ar, err := c.View(1).Execute(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	h.next(h.muxIn)
	go func() { errc <- c.Shutdown(ctx, true, 1) }()
	req := h.next(h.ctlIn)
	if req.Header.MsgType != "shutdown_request" || string(req.Idents[1]) != uuidB {
		t.Fatalf("control got %s for %q", req.Header.MsgType, req.Idents[1])
	}
	h.send(h.control, [][]byte{req.Idents[0], req.Idents[1]}, "shutdown_reply", req, nil, map[string]any{"status": "ok", "restart": false})
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("client not closed after hub shutdown")
	}
	if _, err := ar.Get(ctx); !errors.Is(err, ErrHubShutdown) {
		t.Errorf("outstanding request: %v", err)
	}
	if _, err := c.View(1).Execute(ctx, "x"); err == nil {
		t.Error("closed client accepted a request")
	}
}

func TestFakeWaitForEngines(t *testing.T) {
	h := newFakeHub(t, map[int]string{0: uuidA})
	c := fakeClient(t, h)
	ctx := ctxT(t, 10*time.Second)
	if err := c.WaitForEngines(ctx, 1, WaitOptions{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- c.WaitForEngines(ctx, 3, WaitOptions{Progress: ProgressOff}) }()
	h.send(h.notif, nil, "registration_notification", nil, nil, map[string]any{"id": 1, "uuid": uuidB})
	testutil.Eventually(t, 5*time.Second, func() bool { return len(c.IDs()) == 2 }, "engine 1 not added")
	h.send(h.notif, nil, "unregistration_notification", nil, nil, map[string]any{"id": 0, "uuid": uuidA})
	if err := <-errc; !IsEngineError(err) {
		t.Fatalf("want EngineError when an engine leaves while waiting, got %v", err)
	}
	// A lost registration notification is repaired by asking the hub.
	h.mu.Lock()
	h.engines["2"] = "cccccccc-000000000000000000000003"
	h.mu.Unlock()
	if err := c.WaitForEngines(ctx, 2, WaitOptions{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(c.IDs(), 2) || slices.Contains(c.IDs(), 0) {
		t.Errorf("IDs %v: want 2 added and dead 0 not resurrected", c.IDs())
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := c.WaitForEngines(short, 10, WaitOptions{Progress: ProgressOff}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("want deadline, got %v", err)
	}
}

func TestConnectWrongKeyTimesOut(t *testing.T) {
	h := newFakeHub(t, nil)
	info := *h.info
	info.Key = "wrong"
	start := time.Now()
	_, err := ConnectInfo(context.Background(), &info, WithConnectTimeout(300*time.Millisecond))
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("want a timeout, got %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Error("connect timeout not honoured")
	}
}

// TestFakeMapChunkRequests checks what DirectView.Map and a chunked
// LoadBalancedView.Map send (one builtinMap call per part) and how the
// parts' results are joined, independently of any engine.
func TestFakeMapChunkRequests(t *testing.T) {
	h := newFakeHub(t, map[int]string{0: uuidA, 1: uuidB})
	c := fakeClient(t, h)
	ctx := ctxT(t, 10*time.Second)
	ar, err := c.All().Map(ctx, "f", []float64{1, 2, 3}, []string{"a", "b", "c"})
	if err != nil {
		t.Fatal(err)
	}
	answer := func(req *wire.Message, uuid string, result any) {
		frames, err := codec.Encode(result)
		if err != nil {
			t.Fatal(err)
		}
		md := map[string]any{"engine": uuid, "status": "ok", "started": wire.FormatDate(time.Now())}
		out, _, _ := h.s.Build(wire.Out{Idents: [][]byte{req.Idents[0], []byte(uuid)}, MsgType: "apply_reply", Parent: req.RawHeader,
			Metadata: md, Content: map[string]any{"status": "ok", "go": map[string]int{"frames": len(frames)}}, Buffers: frames})
		h.mux.Send(out)
		h.pub(req, uuid, "status", map[string]any{"execution_state": "idle"})
	}
	for i := 0; i < 2; i++ {
		req := h.next(h.muxIn)
		var content struct {
			Go struct {
				Func      string `json:"func"`
				ArgFrames []int  `json:"arg_frames"`
			} `json:"go"`
		}
		req.DecodeContent(&content)
		args, err := codec.DecodeMany(req.Buffers, content.Go.ArgFrames)
		if err != nil {
			t.Fatal(err)
		}
		uuid := string(req.Idents[1])
		want := "[f [1 2] [a b]]" // engine 0 gets the larger first part
		if uuid == uuidB {
			want = "[f [3] [c]]"
		}
		if content.Go.Func != builtinMap || fmt.Sprint(args) != want {
			t.Errorf("%s got %s%v, want %s", uuid, content.Go.Func, args, want)
		}
		if _, ok := args[1].([]float64); !ok {
			t.Errorf("part type %T, want []float64", args[1])
		}
		if uuid == uuidA {
			answer(req, uuid, []any{"1a", "2b"})
		} else {
			answer(req, uuid, []any{"3c"})
		}
	}
	got, err := GetAll[string](ctx, ar)
	if err != nil || fmt.Sprint(got) != "[1a 2b 3c]" {
		t.Errorf("joined %v %v", got, err)
	}
	lb, err := c.LoadBalanced().Map(ctx, "g", []int{1, 2, 3, 4, 5}, MapOptions{ChunkSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for i := 0; i < 3; i++ {
		req := h.next(h.taskIn)
		var content struct {
			Go struct {
				ArgFrames []int `json:"arg_frames"`
			} `json:"go"`
		}
		req.DecodeContent(&content)
		args, err := codec.DecodeMany(req.Buffers, content.Go.ArgFrames)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, fmt.Sprint(args))
	}
	if fmt.Sprint(parts) != "[[g [1 2]] [g [3 4]] [g [5]]]" || lb.Len() != 3 {
		t.Errorf("chunks %v", parts)
	}
}
