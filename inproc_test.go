package ipp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/engine"
)

// goCluster is a Go controller and Go engines in this test process.
type goCluster struct {
	ctrl    *controller.Controller
	reg     *engine.Registry
	cancels []context.CancelFunc
	wg      sync.WaitGroup
}

// testRegistry holds the functions the in-process engines serve.
func testRegistry(t *testing.T) *engine.Registry {
	r := engine.NewRegistry()
	must := func(name string, fn any) {
		if err := r.Register(name, fn); err != nil {
			t.Fatal(err)
		}
	}
	must("square", func(x int) int { return x * x })
	must("add", func(a, b float64) float64 { return a + b })
	must("fail", func(msg string) error { return errors.New(msg) })
	must("pid", func() int { return os.Getpid() })
	var attempts atomic.Int64
	must("attempt", func() error { return fmt.Errorf("attempt %d", attempts.Add(1)) })
	must("sleep", func(ctx context.Context, ms int) (int, error) {
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			return ms, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})
	must("sum", func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s
	})
	return r
}

func startGoCluster(t *testing.T, n int) (*goCluster, *Client) {
	t.Helper()
	ctrl, err := controller.New(controller.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := ctrl.Start(); err != nil {
		t.Fatal(err)
	}
	gc := &goCluster{ctrl: ctrl, reg: testRegistry(t)}
	t.Cleanup(func() {
		for _, cancel := range gc.cancels {
			cancel()
		}
		gc.wg.Wait()
		ctrl.Close()
	})
	for i := 0; i < n; i++ {
		gc.addEngine(t)
	}
	ctx := ctxT(t, 30*time.Second)
	c, err := ConnectInfo(ctx, ctrl.ClientInfo(), testOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.WaitForEngines(ctx, n, WaitOptions{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	return gc, c
}

// addEngine runs one more engine; its cancel function is returned so a
// test can stop it.
func (gc *goCluster) addEngine(t *testing.T) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	gc.cancels = append(gc.cancels, cancel)
	gc.wg.Add(1)
	go func() {
		defer gc.wg.Done()
		err := engine.Run(ctx, engine.Config{Info: gc.ctrl.EngineInfo(), RequestedID: -1, Functions: gc.reg, Logger: testLogger()})
		if err != nil && ctx.Err() == nil {
			t.Errorf("engine: %v", err)
		}
	}()
	return cancel
}

func TestGoApplyTyped(t *testing.T) {
	_, c := startGoCluster(t, 2)
	ctx := ctxT(t, 20*time.Second)
	ar, err := c.All().Apply(ctx, "add", 1.5, 2)
	if err != nil {
		t.Fatal(err)
	}
	sums, err := GetAll[float64](ctx, ar)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sums, []float64{3.5, 3.5}) {
		t.Errorf("sums %v", sums)
	}
	v, err := ar.Get(ctx)
	if err != nil || len(v.([]any)) != 2 {
		t.Errorf("Get: %v %v", v, err)
	}
	one, err := c.View(c.IDs()[1]).Apply(ctx, "square", 7)
	if err != nil {
		t.Fatal(err)
	}
	sq, err := Get[int](ctx, one)
	if err != nil || sq != 49 {
		t.Errorf("square(7) = %v, %v", sq, err)
	}
	if md := one.Metadata()[0]; md.EngineID != c.IDs()[1] || md.Status != "ok" || !md.OutputComplete {
		t.Errorf("metadata %+v", md)
	}
	// A Go error becomes a RemoteError; on all engines a CompositeError.
	bad, err := c.All().Apply(ctx, "fail", "boom")
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Get(ctx)
	var ce *CompositeError
	if !errors.As(err, &ce) || len(ce.Errors) != 2 || !strings.Contains(ce.Errors[0].EValue, "boom") {
		t.Fatalf("want CompositeError of two, got %v", err)
	}
	if _, err := GetAll[int](ctx, bad); !errors.As(err, &ce) {
		t.Errorf("typed GetAll error %v", err)
	}
	missing, err := c.View(c.IDs()[0]).Apply(ctx, "no-such-function")
	if err != nil {
		t.Fatal(err)
	}
	var re *RemoteError
	if _, err := missing.Get(ctx); !errors.As(err, &re) || re.EName != "NameError" || re.Engine != c.IDs()[0] {
		t.Errorf("unknown function: %v", err)
	}
}

func TestGoPushPullScatterGather(t *testing.T) {
	_, c := startGoCluster(t, 3)
	ctx := ctxT(t, 20*time.Second)
	all := c.All()
	ar, err := all.Push(ctx, map[string]any{"a": 5, "name": "x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.Get(ctx); err != nil {
		t.Fatal(err)
	}
	ar, err = all.Pull(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	as, err := GetAll[int](ctx, ar)
	if err != nil || !slices.Equal(as, []int{5, 5, 5}) {
		t.Errorf("pull a: %v %v", as, err)
	}
	ar, err = c.View(c.IDs()[0]).Pull(ctx, "a", "name")
	if err != nil {
		t.Fatal(err)
	}
	v, err := ar.Get(ctx)
	if err != nil || fmt.Sprint(v) != "[5 x]" {
		t.Errorf("pull a, name: %v %v", v, err)
	}

	xs := make([]float64, 10)
	for i := range xs {
		xs[i] = float64(i) * 1.5
	}
	ar, err = all.Scatter(ctx, "xs", xs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.Get(ctx); err != nil {
		t.Fatal(err)
	}
	// Contiguous parts of 4, 3 and 3.
	ar, err = all.Apply(ctx, "ipp.eval", "len(xs)")
	if err != nil {
		t.Fatal(err)
	}
	lens, err := GetAll[int](ctx, ar)
	if err != nil || !slices.Equal(lens, []int{4, 3, 3}) {
		t.Errorf("part lengths %v %v", lens, err)
	}
	ar, err = all.Gather(ctx, "xs")
	if err != nil {
		t.Fatal(err)
	}
	back, err := ar.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := back.([]float64); !ok || !slices.Equal(got, xs) {
		t.Errorf("gather: %T %v", back, back)
	}
	typed, err := Get[[]float64](ctx, ar)
	if err != nil || !slices.Equal(typed, xs) {
		t.Errorf("typed gather: %v %v", typed, err)
	}
	ints := []int{1, 2, 3, 4, 5}
	if ar, err = all.Scatter(ctx, "ys", ints); err == nil {
		_, err = ar.Get(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	ar, err = all.Gather(ctx, "ys")
	if err != nil {
		t.Fatal(err)
	}
	gotInts, err := GetAll[int](ctx, ar)
	if err != nil || !slices.Equal(gotInts, ints) {
		t.Errorf("gather ints: %v %v", gotInts, err)
	}
	mixed := []any{"a", 1, 2.5, true}
	if ar, err = all.Scatter(ctx, "zs", mixed); err == nil {
		_, err = ar.Get(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	ar, err = all.Gather(ctx, "zs")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := ar.Get(ctx); err != nil || fmt.Sprint(v) != "[a 1 2.5 true]" {
		t.Errorf("gather mixed: %v %v", v, err)
	}
}

func TestGoExecute(t *testing.T) {
	_, c := startGoCluster(t, 2)
	ctx := ctxT(t, 20*time.Second)
	ar, err := c.All().Execute(ctx, "import \"fmt\"\nimport \"os\"\nfmt.Println(\"hi\")\nfmt.Fprintln(os.Stderr, \"err\")")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ar.Stdout(); !slices.Equal(got, []string{"hi\n", "hi\n"}) {
		t.Errorf("stdout %q", got)
	}
	if got := ar.Stderr(); !slices.Equal(got, []string{"err\n", "err\n"}) {
		t.Errorf("stderr %q", got)
	}
	ar, err = c.View(c.IDs()[0]).Execute(ctx, "6*7", Silent(false))
	if err != nil {
		t.Fatal(err)
	}
	v, err := ar.Get(ctx)
	if err != nil || v.(*ExecuteReply).Text() != "42" {
		t.Errorf("6*7: %+v %v", v, err)
	}
	ar, err = c.View(c.IDs()[0]).Execute(ctx, "undefinedThing + 1")
	if err != nil {
		t.Fatal(err)
	}
	var re *RemoteError
	if _, err := ar.Get(ctx); !errors.As(err, &re) {
		t.Errorf("want RemoteError, got %v", err)
	}
	engines, err := c.Engines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	for _, e := range engines {
		if e.PID != os.Getpid() || e.Host == "" || e.UUID == "" {
			t.Errorf("engine info %+v (host %s)", e, host)
		}
	}
}

func TestGoLoadBalancedMap(t *testing.T) {
	_, c := startGoCluster(t, 2)
	ctx := ctxT(t, 30*time.Second)
	in := []int{1, 2, 3, 4, 5, 6, 7}
	want := []int{1, 4, 9, 16, 25, 36, 49}
	lb := c.LoadBalanced()
	ar, err := lb.Map(ctx, "square", in)
	if err != nil {
		t.Fatal(err)
	}
	if ar.Len() != len(in) {
		t.Errorf("%d tasks for %d items with chunk size 1", ar.Len(), len(in))
	}
	got, err := GetAll[int](ctx, ar)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("lb map ordered: %v %v", got, err)
	}
	var items []string
	for v, err := range ar.Iter(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, fmt.Sprint(v))
	}
	if fmt.Sprint(items) != fmt.Sprint(want) {
		t.Errorf("ordered Iter %v", items)
	}
	if engines := ar.EngineIDs(); !slices.Contains(engines, c.IDs()[0]) || !slices.Contains(engines, c.IDs()[1]) {
		t.Errorf("map tasks ran on %v only", engines)
	}
	// Unordered: a slow first item must not hold the others back.
	ar, err = lb.Map(ctx, "sleep", []int{600, 1, 1, 1}, MapOptions{ChunkSize: 1, Unordered: true})
	if err != nil {
		t.Fatal(err)
	}
	var first any
	for v, err := range ar.Iter(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		first = v
		break
	}
	if fmt.Sprint(first) != "1" {
		t.Errorf("unordered map yielded %v first", first)
	}
	all, err := GetAll[int](ctx, ar)
	if err != nil {
		t.Fatal(err)
	}
	if all[len(all)-1] != 600 {
		t.Errorf("unordered Get %v: want the slow one last", all)
	}
	sort.Ints(all)
	if !slices.Equal(all, []int{1, 1, 1, 600}) {
		t.Errorf("unordered results %v", all)
	}
	// A failing item fails only its own result.
	ar, err = lb.Map(ctx, "fail", []string{"x", "y"})
	if err != nil {
		t.Fatal(err)
	}
	var ce *CompositeError
	if _, err := ar.Get(ctx); !errors.As(err, &ce) || len(ce.Errors) != 2 {
		t.Errorf("failing map: %v", err)
	}
	// WaitInteractive draws to a non-terminal only when forced.
	var buf strings.Builder
	ar, err = lb.Map(ctx, "square", in)
	if err != nil {
		t.Fatal(err)
	}
	if err := ar.WaitInteractive(ctx, WaitOptions{Progress: ProgressOn, Output: &buf}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "7/7") {
		t.Errorf("progress bar output %q", buf.String())
	}
}

func TestGoMapChunks(t *testing.T) {
	_, c := startGoCluster(t, 2)
	ctx := ctxT(t, 30*time.Second)
	in := []int{1, 2, 3, 4, 5, 6, 7}
	want := []int{1, 4, 9, 16, 25, 36, 49}
	ar, err := c.All().Map(ctx, "square", in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := GetAll[int](ctx, ar)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("direct map: %v %v", got, err)
	}
	if ar.Len() != 2 {
		t.Errorf("direct map sent %d requests, want one per engine", ar.Len())
	}
	ar, err = c.All().Map(ctx, "add", []float64{1, 2}, []float64{10, 20})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := ar.Get(ctx); err != nil || fmt.Sprint(v) != "[11 22]" {
		t.Errorf("two-sequence map: %v %v", v, err)
	}
	ar, err = c.LoadBalanced().Map(ctx, "square", in, MapOptions{ChunkSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !ar.ordered {
		t.Error("MapOptions{ChunkSize: 3} turned ordering off; only Unordered may")
	}
	if ar.Len() != 3 {
		t.Errorf("chunk 3: %d tasks, want 3", ar.Len())
	}
	got, err = GetAll[int](ctx, ar)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("lb map chunk 3: %v %v", got, err)
	}
	typed, err := Get[[]int](ctx, ar)
	if err != nil || !slices.Equal(typed, want) {
		t.Errorf("typed chunked map: %v %v", typed, err)
	}
}

func TestGoLoadBalanced(t *testing.T) {
	_, c := startGoCluster(t, 2)
	ctx := ctxT(t, 30*time.Second)
	lb := c.LoadBalanced()
	ar, err := lb.Apply(ctx, "square", 12)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := Get[int](ctx, ar); err != nil || v != 144 {
		t.Errorf("lb apply %v %v", v, err)
	}
	if ar.Metadata()[0].EngineID < 0 {
		t.Error("no engine in task metadata")
	}
	// After: the second task starts once the first one finished.
	slow, err := lb.Apply(ctx, "sleep", 200)
	if err != nil {
		t.Fatal(err)
	}
	after, err := lb.WithAfter(slow).Apply(ctx, "square", 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := after.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if s, a := slow.Metadata()[0], after.Metadata()[0]; a.Started.Before(s.Completed) {
		t.Errorf("after-dependent task started %v before its dependency completed %v", a.Started, s.Completed)
	}
	// Follow: runs where the followed task ran.
	where := slow.Metadata()[0].EngineID
	for i := 0; i < 3; i++ {
		f, err := lb.WithFollow(slow).Apply(ctx, "square", i)
		if err != nil {
			t.Fatal(err)
		}
		f.Wait(ctx)
		if got := f.Metadata()[0].EngineID; got != where {
			t.Errorf("follow ran on %d, want %d", got, where)
		}
	}
	// Targets.
	id := c.IDs()[1]
	ar, err = c.LoadBalanced(id).Apply(ctx, "square", 2)
	if err != nil {
		t.Fatal(err)
	}
	ar.Wait(ctx)
	if got := ar.Metadata()[0].EngineID; got != id {
		t.Errorf("targeted task ran on %d, want %d", got, id)
	}
	// A failing task fails after its retries.
	bad, err := lb.WithRetries(1).Apply(ctx, "fail", "nope")
	if err != nil {
		t.Fatal(err)
	}
	var re *RemoteError
	if _, err := bad.Get(ctx); !errors.As(err, &re) || !strings.Contains(re.EValue, "nope") {
		t.Errorf("failing task: %v", err)
	}
	// A dependency that failed makes the task impossible.
	dep, err := lb.WithAfter(bad).Apply(ctx, "square", 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dep.Get(ctx); !errors.As(err, &re) || re.EName != "ImpossibleDependency" {
		t.Errorf("dependent on a failure: %v", err)
	}
	qs, err := c.QueueStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs.Engines) != 2 {
		t.Errorf("queue status %+v", qs)
	}
}

func TestGoEngineDeath(t *testing.T) {
	gc, c := startGoCluster(t, 1)
	ctx := ctxT(t, 30*time.Second)
	cancel := gc.addEngine(t)
	if err := c.WaitForEngines(ctx, 2, WaitOptions{Progress: ProgressOff}); err != nil {
		t.Fatal(err)
	}
	newest := slices.Max(c.IDs())
	ar, err := c.View(newest).Apply(ctx, "sleep", 20000)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := ar.Get(ctx); !IsEngineError(err) {
		t.Fatalf("want EngineError, got %v", err)
	}
}

// A large buffer goes out in place (no copy by libzmq), but from the
// client's own copy: the user may overwrite an array as soon as Push or
// Scatter returns, and the engines still get what was pushed.
func TestPushedArrayMayChangeAfterPush(t *testing.T) {
	_, c := startGoCluster(t, 2)
	ctx := ctxT(t, 30*time.Second)
	xs := make([]float64, 1<<19) // 4 MiB
	for i := range xs {
		xs[i] = float64(i)
	}
	want := slices.Clone(xs)
	push, err := c.All().Push(ctx, map[string]any{"xs": xs})
	if err != nil {
		t.Fatal(err)
	}
	scatter, err := c.All().Scatter(ctx, "part", xs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range xs {
		xs[i] = -1
	}
	if _, err := push.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := scatter.Get(ctx); err != nil {
		t.Fatal(err)
	}
	pull, err := c.All().Pull(ctx, "xs")
	if err != nil {
		t.Fatal(err)
	}
	got, err := GetAll[[]float64](ctx, pull)
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range got {
		if !slices.Equal(g, want) {
			t.Errorf("engine %d holds a changed array", i)
		}
	}
	gather, err := c.All().Gather(ctx, "part")
	if err != nil {
		t.Fatal(err)
	}
	back, err := gather.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b, ok := back.([]float64); !ok || !slices.Equal(b, want) {
		t.Errorf("gathered parts differ from what was scattered")
	}
}
