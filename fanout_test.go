package ipp

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/testutil"
)

// TestFanoutKeepsPerEngineOrder: pushes to every engine go as one fan-out
// each, and whatever follows them without waiting (a fan-out Pull, a
// fan-out Execute, single-engine Pulls) sees the pushed value on every
// engine, round after round. The hub books each engine's part as a direct
// request of its own.
func TestFanoutKeepsPerEngineOrder(t *testing.T) {
	_, c := startGoCluster(t, 2)
	if !c.fanout {
		t.Fatal("our controller did not announce mux fan-out")
	}
	ctx := ctxT(t, 60*time.Second)
	ids := c.IDs()
	uuids := make([]string, len(ids))
	for i, id := range ids {
		uuids[i], _ = c.uuidOf(id)
	}
	const rounds = 60
	type read struct {
		round int
		ar    *AsyncResult
		how   string
	}
	var pushes []*AsyncResult
	var reads []read
	for i := range rounds {
		push, err := c.All().Push(ctx, map[string]any{"x": i})
		if err != nil {
			t.Fatal(err)
		}
		pushes = append(pushes, push)
		switch i % 3 {
		case 0:
			ar, err := c.All().Pull(ctx, "x")
			if err != nil {
				t.Fatal(err)
			}
			reads = append(reads, read{i, ar, "fan-out pull"})
		case 1:
			ar, err := c.All().Execute(ctx, "x", Silent(false))
			if err != nil {
				t.Fatal(err)
			}
			reads = append(reads, read{i, ar, "fan-out execute"})
		default:
			for _, id := range ids {
				ar, err := c.View(id).Pull(ctx, "x")
				if err != nil {
					t.Fatal(err)
				}
				reads = append(reads, read{i, ar, fmt.Sprintf("pull from engine %d alone", id)})
			}
		}
	}
	for _, r := range reads {
		v, err := r.ar.Get(ctx)
		if err != nil {
			t.Fatalf("round %d, %s: %v", r.round, r.how, err)
		}
		var got []string
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				if er, ok := e.(*ExecuteReply); ok {
					got = append(got, er.Text())
				} else {
					got = append(got, fmt.Sprint(e))
				}
			}
		default:
			got = []string{fmt.Sprint(x)}
		}
		for _, g := range got {
			if g != fmt.Sprint(r.round) {
				t.Fatalf("round %d, %s: engines hold %v (a request overtook the push)", r.round, r.how, got)
			}
		}
	}
	for _, p := range pushes {
		if _, err := p.Get(ctx); err != nil {
			t.Fatal(err)
		}
		for i, id := range p.MsgIDs() {
			if !strings.HasSuffix(id, "_"+uuids[i]) {
				t.Fatalf("push part %d has msg_id %s, not <msg_id>_%s", i, id, uuids[i])
			}
		}
	}
	rs, err := c.ResultStatus(ctx, pushes[0].MsgIDs()...)
	if err != nil || len(rs.Completed) != len(ids) {
		t.Fatalf("hub records of the first push: %+v, %v", rs, err)
	}
	reqs := rounds + rounds // every engine: one push and one read per round
	qs, err := c.QueueStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if q := qs.Engines[id]; q.Queue != 0 || q.Completed != reqs {
			t.Errorf("engine %d: queue status %+v, want 0 queued and %d completed", id, q, reqs)
		}
	}
}

// TestFanoutEngineDeath: an engine dying while it runs its part of a
// fan-out fails that part with EngineError; the other engine's part
// completes.
func TestFanoutEngineDeath(t *testing.T) {
	gc, c := startGoCluster(t, 1)
	ctx := ctxT(t, 60*time.Second)
	cancel := gc.addEngine(t)
	if err := c.WaitForEngines(ctx, 2, WaitOptions{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	doomed := slices.Max(c.IDs())
	ar, err := c.All().Apply(ctx, "sleep", 4000)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, func() bool {
		rs, err := c.ResultStatus(ctx, ar.MsgIDs()...)
		return err == nil && len(rs.Pending) == 2
	}, "the hub never had both parts pending")
	cancel()
	for i, err := range ar.Arrivals(ctx) {
		id := ar.EngineIDs()[i]
		switch {
		case id == doomed && !IsEngineError(err):
			t.Errorf("the dead engine's part: want EngineError, got %v", err)
		case id != doomed && err != nil:
			t.Errorf("the live engine's part: %v", err)
		}
	}
	if ar.Progress() != 2 {
		t.Fatalf("%d of 2 parts done", ar.Progress())
	}
}

// TestPythonDirectViewWithoutFanout: ipyparallel's controller announces
// no fan-out, so a request for every engine goes as one message per
// engine, under the client's own msg_ids.
func TestPythonDirectViewWithoutFanout(t *testing.T) {
	c := sharedPython(t)
	if c.fanout {
		t.Fatal("the client believes ipyparallel's controller takes fan-outs")
	}
	ctx := ctxT(t, 30*time.Second)
	ar, err := c.All().Execute(ctx, "fanout_check = 1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.Get(ctx); err != nil {
		t.Fatal(err)
	}
	ids := ar.MsgIDs()
	if len(ids) != 2 || ids[0] == ids[1] {
		t.Fatalf("msg_ids %v", ids)
	}
	for i, id := range ids {
		u, _ := c.uuidOf(ar.EngineIDs()[i])
		if strings.HasSuffix(id, "_"+u) {
			t.Fatalf("msg_id %s is a fan-out copy's", id)
		}
	}
}

// TestFanoutSkipsEngineKnownDead: an engine the client already counts as
// dead (its unregistration handled after the targets were resolved) is
// left out of the fan-out and its part fails at once with EngineError;
// the other engine's part runs, and the dead one's never reaches it.
func TestFanoutSkipsEngineKnownDead(t *testing.T) {
	_, c := startGoCluster(t, 2)
	ctx := ctxT(t, 30*time.Second)
	ids := c.IDs()
	dead, _ := c.uuidOf(ids[1])
	c.mu.Lock()
	c.dead[dead] = true
	c.mu.Unlock()
	ar, err := c.All().Apply(ctx, "square", 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := ar.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	vals, errs, err := ar.collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || fmt.Sprint(vals[0]) != "9" {
		t.Errorf("live engine's part: %v, %v", vals[0], errs[0])
	}
	if !IsEngineError(errs[1]) {
		t.Errorf("dead engine's part: want EngineError, got %v", errs[1])
	}
	qs, err := c.QueueStatus(ctx, ids[1])
	if err != nil {
		t.Fatal(err)
	}
	if q := qs.Engines[ids[1]]; q.Queue != 0 || q.Completed != 0 {
		t.Errorf("the engine counted dead got its part: %+v", q)
	}
}

// TestFanoutPureGoClient: a client on the pure-Go transport (what client
// builds without cgo use) sends fan-outs too, large buffers included.
func TestFanoutPureGoClient(t *testing.T) {
	gc, _ := startGoCluster(t, 2)
	ctx := ctxT(t, 30*time.Second)
	c, err := ConnectInfo(ctx, gc.ctrl.ClientInfo(), WithTransport("gozmq"), WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WaitForEngines(ctx, 2, WaitOptions{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	if !c.fanout {
		t.Fatal("no fan-out announced to the pure-Go client")
	}
	xs := make([]float64, 1<<18) // 2 MiB: over the large-frame size
	for i := range xs {
		xs[i] = float64(i)
	}
	push, err := c.All().Push(ctx, map[string]any{"xs": xs})
	if err != nil {
		t.Fatal(err)
	}
	pull, err := c.All().Pull(ctx, "xs")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := push.Get(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := GetAll[[]float64](ctx, pull)
	if err != nil || len(got) != 2 {
		t.Fatalf("pull: %d parts, %v", len(got), err)
	}
	for i, g := range got {
		if !slices.Equal(g, xs) {
			t.Errorf("engine %d holds %d values, not the %d pushed", i, len(g), len(xs))
		}
	}
}
