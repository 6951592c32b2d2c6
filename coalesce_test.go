package ipp

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/engine"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// TestCoalescingBroadcast: a coalescing broadcast (one combined reply from
// the controller) still gives every engine its own result, error and
// metadata, and an engine dying during it fails only its own part.
func TestCoalescingBroadcast(t *testing.T) {
	gc, c := startGoCluster(t, 2)
	ctx := ctxT(t, 30*time.Second)
	cancel := gc.addEngine(t) // the engine that dies, last
	if err := c.WaitForEngines(ctx, 3, WaitOptions{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	ids := c.IDs()
	cv := c.Broadcast().Coalescing()

	ar, err := cv.Apply(ctx, "square", 4)
	if err != nil {
		t.Fatal(err)
	}
	got, err := GetAll[int](ctx, ar)
	if err != nil || !slices.Equal(got, []int{16, 16, 16}) {
		t.Fatalf("all ok: %v, %v", got, err)
	}
	for i, md := range ar.Metadata() {
		if md.EngineID != ids[i] || md.Status != "ok" || md.Started.IsZero() {
			t.Errorf("part %d metadata %+v", i, md)
		}
	}

	// One engine fails: a CompositeError with that engine's own error and
	// the others' results.
	for i, id := range ids {
		push, err := c.View(id).Push(ctx, map[string]any{"d": i})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := push.Get(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ar, err = cv.Apply(ctx, "ipp.eval", "12 / d")
	if err != nil {
		t.Fatal(err)
	}
	vals, err := ar.GetList(ctx)
	var ce *CompositeError
	if !errors.As(err, &ce) || len(ce.Errors) != 1 || ce.Errors[0].Engine != ids[0] {
		t.Fatalf("one engine failing: %v", err)
	}
	if vals[1] != 12 || vals[2] != 6 {
		t.Errorf("the others' results: %v", vals)
	}

	// An engine dies: its part is an EngineError, the others still arrive.
	newest := slices.Max(ids)
	ar, err = cv.Apply(ctx, "sleep", 1000)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	vals, err = ar.GetList(ctx)
	if !errors.As(err, &ce) || len(ce.Errors) != 1 || !IsEngineError(err) || ce.Errors[0].Engine != newest {
		t.Fatalf("engine death: %v", err)
	}
	for i, id := range ids {
		if id != newest && vals[i] != 1000 {
			t.Errorf("engine %d's result after another died: %v", id, vals[i])
		}
	}
	c.mu.Lock()
	left := len(c.coalesced)
	c.mu.Unlock()
	if left != 0 {
		t.Errorf("%d coalescing requests still tracked", left)
	}
}

// TestRetriesEndLikeIPyparallel: a task failing on its only engine is not
// run there again: with a timeout it ends in TaskTimeout, without one in
// its own error; WithRetryFailedEngines runs it there again.
func TestRetriesEndLikeIPyparallel(t *testing.T) {
	_, c := startGoCluster(t, 1)
	ctx := ctxT(t, 30*time.Second)
	lb := c.LoadBalanced().WithRetries(2)
	for _, tc := range []struct {
		name  string
		view  *LoadBalancedView
		ename string
		ran   string // the attempt number in the last error
	}{
		{"timeout", lb.WithTimeout(300 * time.Millisecond), "TaskTimeout", ""},
		{"no timeout", lb, "Error", "attempt 2"},
		{"retry failed engines", lb.WithRetryFailedEngines(true), "Error", "attempt 5"},
	} {
		ar, err := tc.view.Apply(ctx, "attempt")
		if err != nil {
			t.Fatal(err)
		}
		_, err = ar.Get(ctx)
		var re *RemoteError
		if !errors.As(err, &re) || re.EName != tc.ename || (tc.ran != "" && re.EValue != tc.ran) {
			t.Errorf("%s: got %v, want %s %s", tc.name, err, tc.ename, tc.ran)
		}
	}
}

// TestCoalescingUnderPythonController: ipyparallel's own controller sends
// a combined reply without our per-engine parts; the client still splits
// Go results evenly and gives every engine the error.
func TestCoalescingUnderPythonController(t *testing.T) {
	pc := startPyCluster(t, 0)
	info, err := wire.LoadEngineInfo(wire.EngineFile(pc.dir, ""))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	reg := testRegistry(t)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			engine.Run(ctx, engine.Config{Info: info, RequestedID: -1, Functions: reg, Logger: testLogger()})
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	c := pc.client(t, 2)
	tctx := ctxT(t, 60*time.Second)
	cv := c.Broadcast().Coalescing()
	ar, err := cv.Apply(tctx, "square", 3)
	if err != nil {
		t.Fatal(err)
	}
	got, err := GetAll[int](tctx, ar)
	if err != nil || !slices.Equal(got, []int{9, 9}) {
		t.Fatalf("coalesced under the Python controller: %v, %v", got, err)
	}
	ar, err = cv.Apply(tctx, "fail", "nope")
	if err != nil {
		t.Fatal(err)
	}
	var ce *CompositeError
	if _, err := ar.GetList(tctx); !errors.As(err, &ce) || len(ce.Errors) != 2 || ce.Errors[0].EValue != "nope" {
		t.Fatalf("coalesced error under the Python controller: %v", err)
	}
}
