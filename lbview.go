package ipp

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"time"

	json "github.com/goccy/go-json"

	"github.com/ipp-hpc/ipp/internal/protocol"
)

// Dependency is a set of earlier requests a task depends on, with
// ipyparallel's flags: with All every request must have finished
// (else any one), Success accepts successful ones, Failure failed ones. Deps
// builds the usual form (all must succeed).
type Dependency struct {
	// MsgIDs are the requests depended on.
	MsgIDs []string
	// All requires every request to qualify; false: at least one.
	All bool
	// Success accepts requests that succeeded.
	Success bool
	// Failure accepts requests that failed.
	Failure bool
}

// Deps makes a Dependency that is met when every listed request has
// succeeded. Items may be msg_id strings, []string, *AsyncResult (all of its
// requests) or Dependency values (merged, keeping the last one's flags).
func Deps(items ...any) (Dependency, error) {
	d := Dependency{All: true, Success: true}
	for _, it := range items {
		switch x := it.(type) {
		case string:
			d.MsgIDs = append(d.MsgIDs, x)
		case []string:
			d.MsgIDs = append(d.MsgIDs, x...)
		case *AsyncResult:
			d.MsgIDs = append(d.MsgIDs, x.MsgIDs()...)
		case Dependency:
			d.MsgIDs = append(d.MsgIDs, x.MsgIDs...)
			d.All, d.Success, d.Failure = x.All, x.Success, x.Failure
		default:
			return Dependency{}, fmt.Errorf("ipp: cannot depend on a %T (want a msg_id, []string, *AsyncResult or Dependency)", it)
		}
	}
	return d, nil
}

// MarshalJSON writes the list form when the flags are the defaults (what
// the Python client sends) and the dict form otherwise.
func (d Dependency) MarshalJSON() ([]byte, error) {
	ids := d.MsgIDs
	if ids == nil {
		ids = []string{}
	}
	if d.All && d.Success && !d.Failure || len(ids) == 0 {
		return json.Marshal(ids)
	}
	return json.Marshal(map[string]any{"dependencies": ids, "all": d.All, "success": d.Success, "failure": d.Failure})
}

// TaskFlags are the scheduling options a LoadBalancedView sends as task
// metadata (ipyparallel's after, follow, retries, timeout, targets).
type TaskFlags struct {
	// Retries is how many times a failed task is resubmitted (to another
	// engine) before its failure is reported. As in ipyparallel, an engine
	// the task failed on is not used for it again: with every engine
	// failed, the task waits for a new one until Timeout (then
	// TaskTimeout), or without a Timeout ends with its last error.
	Retries int
	// RetryFailedEngines lets a retry run again on an engine the task
	// already failed on, once every engine it may use has failed it: for
	// transient errors on a small cluster. Our controller only; the
	// Python controller ignores it.
	RetryFailedEngines bool
	// After: the task starts only after these requests finished (anywhere).
	After Dependency
	// Follow: the task runs on the engine where these requests ran.
	Follow Dependency
	// Timeout fails the task with TaskTimeout if its dependencies keep it
	// waiting in the scheduler longer than this; zero means never.
	Timeout time.Duration
}

// LoadBalancedView submits tasks to the controller's task scheduler, which
// picks an engine for each (ipyparallel's rc.load_balanced_view()). Views
// are immutable: the With methods return modified copies.
type LoadBalancedView struct {
	c       *Client
	targets []int // restrict to these engines; nil: any
	flags   TaskFlags
}

// LoadBalanced returns a LoadBalancedView over the given engines (any
// engine when none are given).
func (c *Client) LoadBalanced(targets ...int) *LoadBalancedView {
	return &LoadBalancedView{c: c, targets: slices.Clone(targets)}
}

// Flags returns the view's task flags.
func (v *LoadBalancedView) Flags() TaskFlags { return v.flags }

// WithFlags returns a copy of the view using flags.
func (v *LoadBalancedView) WithFlags(flags TaskFlags) *LoadBalancedView {
	w := *v
	w.flags = flags
	return &w
}

// WithRetries returns a copy of the view that retries failed tasks n times.
func (v *LoadBalancedView) WithRetries(n int) *LoadBalancedView {
	w := *v
	w.flags.Retries = n
	return &w
}

// WithRetryFailedEngines returns a copy of the view whose retries may run
// again on engines the task already failed on (see
// TaskFlags.RetryFailedEngines).
func (v *LoadBalancedView) WithRetryFailedEngines(on bool) *LoadBalancedView {
	w := *v
	w.flags.RetryFailedEngines = on
	return &w
}

// WithTimeout returns a copy of the view whose tasks fail with TaskTimeout
// when still waiting for their dependencies after d.
func (v *LoadBalancedView) WithTimeout(d time.Duration) *LoadBalancedView {
	w := *v
	w.flags.Timeout = d
	return &w
}

// WithAfter returns a copy of the view whose tasks wait for deps (see Deps
// for what they may be). It panics on an item of a wrong type, a
// programming error.
func (v *LoadBalancedView) WithAfter(deps ...any) *LoadBalancedView {
	d, err := Deps(deps...)
	if err != nil {
		panic(err)
	}
	w := *v
	w.flags.After = d
	return &w
}

// WithFollow returns a copy of the view whose tasks run where deps ran.
// It panics on an item of a wrong type, a programming error.
func (v *LoadBalancedView) WithFollow(deps ...any) *LoadBalancedView {
	d, err := Deps(deps...)
	if err != nil {
		panic(err)
	}
	w := *v
	w.flags.Follow = d
	return &w
}

// metadata builds the task metadata; targets are uuids.
func (v *LoadBalancedView) metadata() (map[string]any, error) {
	if v.c.task == nil {
		return nil, ErrNoTaskScheduler
	}
	uuids := []string{}
	for _, id := range v.targets {
		u, err := v.c.uuidOf(id)
		if err != nil {
			return nil, err
		}
		uuids = append(uuids, u)
	}
	f := v.flags
	if v.c.info.TaskScheme == "pure" && (f.Retries != 0 || len(f.After.MsgIDs) > 0 || len(f.Follow.MsgIDs) > 0 || f.Timeout != 0 || len(uuids) > 0) {
		// A pure ZMQ queue cannot honour any of these.
		return nil, fmt.Errorf("ipp: the controller's task scheme is pure: targets, retries, dependencies and timeouts are not supported")
	}
	md := map[string]any{
		"after":   f.After,
		"follow":  f.Follow,
		"timeout": f.Timeout.Seconds(),
		"targets": uuids,
		"retries": f.Retries,
	}
	if f.RetryFailedEngines {
		md[protocol.MetaRetryFailedEngines] = true
	}
	return md, nil
}

// submit sends n tasks, each with its own content and buffers.
func (v *LoadBalancedView) submit(ctx context.Context, n int, msgType, method string, kind resultKind, ordered bool,
	build func(i int) (any, [][]byte, error)) (*AsyncResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	md, err := v.metadata()
	if err != nil {
		return nil, err
	}
	mdJSON, err := json.Marshal(md)
	if err != nil {
		return nil, err
	}
	ar := &AsyncResult{c: v.c, kind: kind, method: method, ordered: ordered}
	for i := 0; i < n; i++ {
		content, bufs, err := build(i)
		if err != nil {
			return nil, err
		}
		f := v.c.newFuture(msgType, method, "", -1)
		if !ordered {
			// Watch before sending so a fast reply is recorded in order.
			ar.watchArrival(f)
		}
		// Task requests carry no routing frame: the scheduler picks.
		if err := v.c.sendRequest(v.c.task, nil, msgType, json.RawMessage(mdJSON), content, bufs, f, nil); err != nil {
			return nil, err
		}
		ar.futures = append(ar.futures, f)
	}
	return ar, nil
}

// Apply submits one task calling the registered function fn. Get returns
// its value.
func (v *LoadBalancedView) Apply(ctx context.Context, fn string, args ...any) (*AsyncResult, error) {
	content, bufs, err := encodeCall(fn, args)
	if err != nil {
		return nil, err
	}
	ar, err := v.submit(ctx, 1, "apply_request", fn, kindApply, true, func(int) (any, [][]byte, error) {
		return content, bufs, nil
	})
	if ar != nil {
		ar.single = true
	}
	return ar, err
}

// Execute submits code as one task. Get returns its *ExecuteReply.
func (v *LoadBalancedView) Execute(ctx context.Context, code string, opts ...ExecOption) (*AsyncResult, error) {
	content := executeContent(code, opts)
	ar, err := v.submit(ctx, 1, "execute_request", "execute", kindExecute, true, func(int) (any, [][]byte, error) {
		return content, nil, nil
	})
	if ar != nil {
		ar.single = true
	}
	return ar, err
}

// MapOptions tune LoadBalancedView.Map. The zero value is what Map does
// without options, as in ipyparallel: one item per task, results in item
// order. Ordering is opt-out (Unordered) rather than opt-in, so that
// setting only ChunkSize never silently reorders results.
type MapOptions struct {
	// ChunkSize is how many items go into one task; values below 1 mean 1.
	ChunkSize int
	// Unordered makes Get and Iter report results in the order tasks
	// complete instead of item order (ipyparallel's ordered=False).
	Unordered bool
}

// Map calls the registered function fn on each element of items (a slice)
// with load balancing. Each chunk of ChunkSize consecutive items is one
// task; a chunk of one item is a plain apply of fn, a larger chunk runs on
// its engine as one request. Get returns every item's result; Iter yields
// them as they arrive.
func (v *LoadBalancedView) Map(ctx context.Context, fn string, items any, opts ...MapOptions) (*AsyncResult, error) {
	var o MapOptions
	if len(opts) > 0 {
		o = opts[len(opts)-1]
	}
	if o.ChunkSize < 1 {
		o.ChunkSize = 1
	}
	rv := reflect.ValueOf(items)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return nil, fmt.Errorf("ipp: Map needs a slice, not %T", items)
	}
	n := rv.Len()
	chunks := (n + o.ChunkSize - 1) / o.ChunkSize
	if o.ChunkSize == 1 {
		return v.submit(ctx, n, "apply_request", fn, kindApply, !o.Unordered, func(i int) (any, [][]byte, error) {
			return encodeCall(fn, []any{rv.Index(i).Interface()})
		})
	}
	return v.submit(ctx, chunks, "apply_request", fn, kindFlatten, !o.Unordered, func(i int) (any, [][]byte, error) {
		lo := i * o.ChunkSize
		hi := min(lo+o.ChunkSize, n)
		return encodeCall(builtinMap, chunkArgs(fn, []reflect.Value{rv}, lo, hi))
	})
}
