package ipp

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"syscall"

	"github.com/ipp-hpc/ipp/internal/protocol"
)

// builtinMap is the engine built-in that runs one map chunk: its arguments
// are the function name followed by one slice per sequence, and it returns
// an []any with fn(seq0[i], seq1[i], ...) for each i. It lets a whole chunk
// travel as a single request (DirectView.Map, LoadBalancedView.Map with a
// ChunkSize above 1).
const builtinMap = protocol.Map

// DirectView sends requests to explicit engines through the controller's
// mux (ipyparallel's rc[targets]). Views are cheap values; make as many as
// needed. A call whose request is the same for every engine (Push,
// Execute, Apply, Pull, Gather) travels to our controller as one mux
// fan-out, which the controller copies to each engine: the data leave the
// client once however many engines there are (fanout.go).
type DirectView struct {
	c *Client
	// targets are fixed engine ids; nil means every engine registered at
	// the time of each call.
	targets []int
	single  bool
}

// View returns a DirectView on the given engines. With exactly one id the
// view's results are single values (like rc[0]); with none it is All().
func (c *Client) View(targets ...int) *DirectView {
	if len(targets) == 0 {
		return c.All()
	}
	return &DirectView{c: c, targets: slices.Clone(targets), single: len(targets) == 1}
}

// All returns a DirectView on every engine registered when each call is
// made (rc.direct_view("all")); its results are always lists.
func (c *Client) All() *DirectView { return &DirectView{c: c} }

// Targets returns the engine ids the next call would go to.
func (v *DirectView) Targets() ([]int, error) { return v.c.resolveTargets(v.targets) }

// target is one resolved engine.
type target struct {
	id   int
	uuid string
}

func (v *DirectView) resolve() ([]target, error) {
	ids, err := v.c.resolveTargets(v.targets)
	if err != nil {
		return nil, err
	}
	out := make([]target, len(ids))
	for i, id := range ids {
		u, err := v.c.uuidOf(id)
		if err != nil {
			return nil, err
		}
		out[i] = target{id, u}
	}
	return out, nil
}

// encodeCall encodes a Go apply_request's arguments into buffers and its
// content (spec: internal/protocol).
func encodeCall(fn string, args []any) (protocol.ApplyContent, [][]byte, error) {
	// Quiet: the client reads iopub_idle from the reply instead of waiting
	// for status idle, which halves the messages of a task.
	call := &protocol.Call{Func: fn, ArgFrames: make([]int, len(args)), Quiet: true}
	var bufs [][]byte
	for i, a := range args {
		frames, err := encodeValue(a)
		if err != nil {
			return protocol.ApplyContent{}, nil, fmt.Errorf("ipp: encoding argument %d of %s: %w", i, fn, err)
		}
		call.ArgFrames[i] = len(frames)
		bufs = append(bufs, frames...)
	}
	return protocol.ApplyContent{Go: call}, bufs, nil
}

// submitDirect sends one request per target through the mux and returns
// their AsyncResult. build makes each target's content and buffers; calls
// whose content is the same for every target use submitSame (fanout.go).
func (v *DirectView) submitDirect(ctx context.Context, ts []target, msgType, method string, kind resultKind,
	build func(i int) (any, [][]byte, error)) (*AsyncResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ar := &AsyncResult{c: v.c, kind: kind, single: v.single, method: method, ordered: true}
	own := ownCopies{}
	for i, t := range ts {
		content, bufs, err := build(i)
		if err != nil {
			return nil, err
		}
		f := v.c.newFuture(msgType, method, t.uuid, t.id)
		// ipyparallel 7.1 DirectView requests carry empty metadata.
		if err := v.c.sendRequest(v.c.mux, [][]byte{[]byte(t.uuid)}, msgType, map[string]any{}, content, bufs, f, own); err != nil {
			return nil, err
		}
		ar.futures = append(ar.futures, f)
	}
	return ar, nil
}

// Apply calls the function registered as fn on every engine of the view
// with the same arguments (Go engines only: the arguments and result travel
// with internal/codec). Get returns one value per engine, or the value
// itself on a single-engine view.
func (v *DirectView) Apply(ctx context.Context, fn string, args ...any) (*AsyncResult, error) {
	ts, err := v.resolve()
	if err != nil {
		return nil, err
	}
	content, bufs, err := encodeCall(fn, args)
	if err != nil {
		return nil, err
	}
	return v.submitSame(ctx, ts, "apply_request", fn, kindApply, content, bufs)
}

// ExecOption modifies an Execute call.
type ExecOption func(*execConfig)

type execConfig struct{ silent bool }

// Silent sets the silent flag of execute_request. Like ipyparallel's
// View.execute the default is true: no execute_input or execute_result is
// published, and an error does not abort the engine's queue. With
// Silent(false) the value of a trailing expression comes back in
// ExecuteReply.Result.
func Silent(silent bool) ExecOption { return func(c *execConfig) { c.silent = silent } }

func executeContent(code string, opts []ExecOption) map[string]any {
	cfg := execConfig{silent: true}
	for _, o := range opts {
		o(&cfg)
	}
	return map[string]any{"code": code, "silent": cfg.silent, "user_expressions": map[string]any{}, "allow_stdin": false}
}

// Execute runs code on every engine of the view (Python code on Python
// engines, Go source on Go engines). Get yields an *ExecuteReply per engine
// with what it printed; Stdout and Stderr give the same per engine.
func (v *DirectView) Execute(ctx context.Context, code string, opts ...ExecOption) (*AsyncResult, error) {
	ts, err := v.resolve()
	if err != nil {
		return nil, err
	}
	content := executeContent(code, opts)
	return v.submitSame(ctx, ts, "execute_request", "execute", kindExecute, content, nil)
}

// Push sets variables in every engine's namespace (Go engines).
func (v *DirectView) Push(ctx context.Context, ns map[string]any) (*AsyncResult, error) {
	ts, err := v.resolve()
	if err != nil {
		return nil, err
	}
	content, bufs, err := encodePush(ns)
	if err != nil {
		return nil, err
	}
	return v.submitSame(ctx, ts, "apply_request", "push", kindNone, content, bufs)
}

// encodePush makes the protocol.Push call: the sorted names, then one value
// per name.
func encodePush(ns map[string]any) (protocol.ApplyContent, [][]byte, error) {
	names := make([]string, 0, len(ns))
	for k := range ns {
		names = append(names, k)
	}
	sort.Strings(names)
	args := []any{names}
	for _, n := range names {
		args = append(args, ns[n])
	}
	return encodeCall(protocol.Push, args)
}

// Pull reads variables from every engine's namespace (Go engines). With
// one name each engine's result is that value; with several it is an []any
// of them in the order asked.
func (v *DirectView) Pull(ctx context.Context, names ...string) (*AsyncResult, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("ipp: Pull needs at least one name")
	}
	ts, err := v.resolve()
	if err != nil {
		return nil, err
	}
	var content protocol.ApplyContent
	var bufs [][]byte
	if len(names) == 1 {
		content, bufs, err = encodeCall(protocol.PullOne, []any{names[0]})
	} else {
		content, bufs, err = encodeCall(protocol.Pull, []any{names})
	}
	if err != nil {
		return nil, err
	}
	return v.submitSame(ctx, ts, "apply_request", "pull", kindApply, content, bufs)
}

// Scatter splits seq (any slice, e.g. []float64, []int or []any) into
// contiguous parts, as even as possible, and pushes part i under name to
// the view's i-th engine. The parts keep seq's type.
func (v *DirectView) Scatter(ctx context.Context, name string, seq any) (*AsyncResult, error) {
	rv := reflect.ValueOf(seq)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return nil, fmt.Errorf("ipp: Scatter needs a slice, not %T", seq)
	}
	ts, err := v.resolve()
	if err != nil {
		return nil, err
	}
	ar, err := v.submitDirect(ctx, ts, "apply_request", "scatter", kindNone, func(i int) (any, [][]byte, error) {
		lo, hi := partition(rv.Len(), i, len(ts))
		c, b, err := encodePush(map[string]any{name: rv.Slice(lo, hi).Interface()})
		return c, b, err
	})
	if ar != nil {
		ar.single = false
	}
	return ar, err
}

// Gather pulls name from every engine of the view and concatenates the
// parts in engine order (the inverse of Scatter). Get returns a slice of
// the parts' common type, e.g. []float64, or []any if they differ.
func (v *DirectView) Gather(ctx context.Context, name string) (*AsyncResult, error) {
	ts, err := v.resolve()
	if err != nil {
		return nil, err
	}
	content, bufs, err := encodeCall(protocol.PullOne, []any{name})
	if err != nil {
		return nil, err
	}
	ar, err := v.submitSame(ctx, ts, "apply_request", "gather", kindFlatten, content, bufs)
	if ar != nil {
		ar.single = false
	}
	return ar, err
}

// Map applies the registered function fn element-wise over seqs (slices of
// equal length; fn takes one argument per sequence), scatter-style: each
// engine of the view receives one contiguous part of the sequences as a
// single request and maps over it locally. Get returns the results in
// sequence order.
func (v *DirectView) Map(ctx context.Context, fn string, seqs ...any) (*AsyncResult, error) {
	n, vals, err := checkSeqs(seqs)
	if err != nil {
		return nil, err
	}
	ts, err := v.resolve()
	if err != nil {
		return nil, err
	}
	if len(ts) > n && n > 0 {
		ts = ts[:n] // no engine gets an empty part
	}
	ar, err := v.submitDirect(ctx, ts, "apply_request", fn, kindFlatten, func(i int) (any, [][]byte, error) {
		lo, hi := partition(n, i, len(ts))
		return encodeCall(builtinMap, chunkArgs(fn, vals, lo, hi))
	})
	if ar != nil {
		ar.single = false
	}
	return ar, err
}

// checkSeqs validates Map's sequences and returns their common length.
func checkSeqs(seqs []any) (int, []reflect.Value, error) {
	if len(seqs) == 0 {
		return 0, nil, fmt.Errorf("ipp: Map needs at least one sequence")
	}
	vals := make([]reflect.Value, len(seqs))
	n := -1
	for i, s := range seqs {
		rv := reflect.ValueOf(s)
		if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
			return 0, nil, fmt.Errorf("ipp: Map sequence %d is %T, not a slice", i, s)
		}
		if n >= 0 && rv.Len() != n {
			return 0, nil, fmt.Errorf("ipp: Map sequences differ in length (%d and %d)", n, rv.Len())
		}
		n = rv.Len()
		vals[i] = rv
	}
	return n, vals, nil
}

// chunkArgs builds the builtinMap arguments for elements [lo, hi).
func chunkArgs(fn string, seqs []reflect.Value, lo, hi int) []any {
	args := []any{fn}
	for _, s := range seqs {
		args = append(args, s.Slice(lo, hi).Interface())
	}
	return args
}

// partition returns the bounds of part i of n items split into parts
// pieces: contiguous, sizes differing by at most one, larger ones first
// (the same split as ipyparallel's scatter).
func partition(n, i, parts int) (lo, hi int) {
	base, extra := n/parts, n%parts
	lo = i*base + min(i, extra)
	hi = lo + base
	if i < extra {
		hi++
	}
	return lo, hi
}

// Abort aborts the given requests (all of this client's outstanding ones
// when msgIDs is empty) on the view's engines.
func (v *DirectView) Abort(ctx context.Context, msgIDs ...string) error {
	ids, err := v.c.resolveTargets(v.targets)
	if err != nil {
		return err
	}
	return v.c.Abort(ctx, msgIDs, ids...)
}

// Clear resets the namespace of the view's engines.
func (v *DirectView) Clear(ctx context.Context) error {
	ids, err := v.c.resolveTargets(v.targets)
	if err != nil {
		return err
	}
	return v.c.Clear(ctx, ids...)
}

// Signal sends sig to the view's engines and waits for their answers (see
// Client.SendSignal): syscall.SIGINT interrupts whatever they are running.
func (v *DirectView) Signal(ctx context.Context, sig syscall.Signal) error {
	ids, err := v.c.resolveTargets(v.targets)
	if err != nil {
		return err
	}
	return v.c.SendSignal(ctx, sig, ids...)
}
