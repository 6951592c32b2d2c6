package ipp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"slices"
	"sync"
	"syscall"
	"time"
)

// resultKind says how an AsyncResult turns per-request values into its
// result.
type resultKind int

const (
	// kindApply: each request's decoded return value is one result.
	kindApply resultKind = iota
	// kindExecute: each request yields an *ExecuteReply.
	kindExecute
	// kindFlatten: each request returns a slice (a map chunk or a gathered
	// part); the result is their concatenation in request order.
	kindFlatten
	// kindNone: requests return nothing worth showing (push, scatter);
	// Get returns nil once they all succeeded.
	kindNone
)

// AsyncResult is the handle to one or more submitted requests: one per
// engine for a DirectView call, one per task (or chunk) for a
// LoadBalancedView. All methods are safe for concurrent use.
type AsyncResult struct {
	c       *Client
	futures []*future
	kind    resultKind
	// single: Get returns the one value itself rather than a list (a view
	// on exactly one engine, or a load-balanced Apply), as in Python.
	single bool
	method string
	// ordered is false for an unordered map: Get and Iter report in
	// completion order, recorded in arrived.
	ordered bool
	amu     sync.Mutex
	arrived []*future
	// pick, when positive, makes Get return only futures[pick-1]'s value
	// once every request succeeded: an MPI reduce or gather goes to every
	// rank, but only the root's answer is the result.
	pick int
}

// watchArrival records when f completes, for completion-order reports.
func (ar *AsyncResult) watchArrival(f *future) {
	f.watch(func() {
		ar.amu.Lock()
		ar.arrived = append(ar.arrived, f)
		ar.amu.Unlock()
	})
}

// reportOrder is the order results are reported in once all are complete.
func (ar *AsyncResult) reportOrder() []*future {
	if ar.ordered {
		return ar.futures
	}
	ar.amu.Lock()
	defer ar.amu.Unlock()
	if len(ar.arrived) != len(ar.futures) {
		return ar.futures
	}
	return slices.Clone(ar.arrived)
}

// ExecuteReply is one engine's result of Execute.
type ExecuteReply struct {
	// Engine is the engine id.
	Engine int
	// ExecutionCount is the engine's execution counter.
	ExecutionCount int
	// Stdout and Stderr are what the code printed.
	Stdout, Stderr string
	// Result is the execute_result data bundle (non-silent execution of code
	// whose last statement is an expression), nil otherwise.
	Result map[string]any
	// Outputs are display_data contents.
	Outputs []map[string]any
}

// Text returns the plain-text form of the execution result ("" if none).
func (r *ExecuteReply) Text() string {
	if s, ok := r.Result["text/plain"].(string); ok {
		return s
	}
	return ""
}

// MsgIDs returns the msg_ids of the requests, in request order.
func (ar *AsyncResult) MsgIDs() []string {
	ids := make([]string, len(ar.futures))
	for i, f := range ar.futures {
		ids[i] = f.msgID
	}
	return ids
}

// Len is the number of requests behind the result.
func (ar *AsyncResult) Len() int { return len(ar.futures) }

// Ready reports whether every request is complete.
func (ar *AsyncResult) Ready() bool {
	for _, f := range ar.futures {
		if !f.isDone() {
			return false
		}
	}
	return true
}

// Wait blocks until every request is complete or ctx ends.
func (ar *AsyncResult) Wait(ctx context.Context) error {
	for _, f := range ar.futures {
		select {
		case <-f.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Progress returns how many requests are complete.
func (ar *AsyncResult) Progress() int {
	n := 0
	for _, f := range ar.futures {
		if f.isDone() {
			n++
		}
	}
	return n
}

// Metadata returns each request's metadata, in request order.
func (ar *AsyncResult) Metadata() []Metadata {
	out := make([]Metadata, len(ar.futures))
	for i, f := range ar.futures {
		out[i] = f.snapshot()
	}
	return out
}

// Stdout returns what each request printed to stdout, in request order.
func (ar *AsyncResult) Stdout() []string {
	out := make([]string, len(ar.futures))
	for i, f := range ar.futures {
		out[i] = f.snapshot().Stdout
	}
	return out
}

// Stderr returns what each request printed to stderr, in request order.
func (ar *AsyncResult) Stderr() []string {
	out := make([]string, len(ar.futures))
	for i, f := range ar.futures {
		out[i] = f.snapshot().Stderr
	}
	return out
}

// EngineIDs returns the engine of each request (-1 while a load-balanced
// task has not been answered).
func (ar *AsyncResult) EngineIDs() []int {
	out := make([]int, len(ar.futures))
	for i, f := range ar.futures {
		out[i] = f.snapshot().EngineID
	}
	return out
}

// WallTime is the time from the first submission to the last reply; zero
// until the result is ready.
func (ar *AsyncResult) WallTime() time.Duration {
	if !ar.Ready() || len(ar.futures) == 0 {
		return 0
	}
	var first, last time.Time
	for _, md := range ar.Metadata() {
		if first.IsZero() || md.Submitted.Before(first) {
			first = md.Submitted
		}
		if md.Received.After(last) {
			last = md.Received
		}
	}
	return last.Sub(first)
}

// Abort asks the engines to skip those of these requests that have not
// started yet; they then complete with a TaskAborted RemoteError.
func (ar *AsyncResult) Abort(ctx context.Context) error {
	var targets []int
	seen := map[int]bool{}
	for _, f := range ar.futures {
		if f.engine != "" && !seen[f.engineID] {
			seen[f.engineID] = true
			targets = append(targets, f.engineID)
		}
	}
	return ar.c.Abort(ctx, ar.MsgIDs(), targets...)
}

// Arrivals yields, in completion order, the index (in request order, as
// EngineIDs and MsgIDs) and the error of each request as it completes, so
// a caller can report an engine that died at once instead of when the
// slowest engine finishes. It stops early when ctx ends.
func (ar *AsyncResult) Arrivals(ctx context.Context) iter.Seq2[int, error] {
	return func(yield func(int, error) bool) {
		done := make(chan int, len(ar.futures))
		for i, f := range ar.futures {
			f.watch(func() { done <- i })
		}
		for range ar.futures {
			select {
			case i := <-done:
				f := ar.futures[i]
				f.mu.Lock()
				err := f.err
				f.mu.Unlock()
				if !yield(i, err) {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}
}

// value returns the decoded result of one completed request.
func (f *future) value(kind resultKind) (any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	switch kind {
	case kindExecute:
		return &ExecuteReply{
			Engine: f.md.EngineID, ExecutionCount: f.md.ExecutionCount,
			Stdout: f.md.Stdout, Stderr: f.md.Stderr,
			Result: f.md.ExecuteResult, Outputs: f.md.Outputs,
		}, nil
	case kindNone:
		return nil, nil
	}
	if len(f.buffers) == 0 {
		return nil, nil
	}
	v, err := decodeValue(f.buffers)
	if err != nil {
		return nil, fmt.Errorf("ipp: decoding the result of %s: %w", f.msgID, err)
	}
	return v, nil
}

// collect waits and gathers per-request values and errors.
func (ar *AsyncResult) collect(ctx context.Context) ([]any, []error, error) {
	if err := ar.Wait(ctx); err != nil {
		return nil, nil, err
	}
	vals := make([]any, len(ar.futures))
	errs := make([]error, len(ar.futures))
	for i, f := range ar.reportOrder() {
		vals[i], errs[i] = f.value(ar.kind)
		// A client-side failure (closed, decode error) is not one engine's
		// exception: report it as it is.
		var re *RemoteError
		if errs[i] != nil && !errors.As(errs[i], &re) {
			return nil, nil, errs[i]
		}
	}
	return vals, errs, nil
}

// composite builds the error for failed requests, or nil.
func (ar *AsyncResult) composite(vals []any, errs []error) error {
	var ce *CompositeError
	for _, err := range errs {
		if err == nil {
			continue
		}
		if ce == nil {
			ce = &CompositeError{Method: ar.method, Results: vals}
		}
		ce.Errors = append(ce.Errors, err.(*RemoteError))
	}
	if ce == nil {
		return nil
	}
	return ce
}

// Get waits for the result. A single-engine view or a load-balanced Apply
// returns the value itself and its *RemoteError; otherwise the value is an
// []any in request order (engine order for a DirectView), concatenated for
// Map and Gather. When some requests failed, Get returns the partial list
// (nil where a request failed) together with a *CompositeError. The
// result of DirectView.MPIReduce or MPIGather is the root engine's value.
func (ar *AsyncResult) Get(ctx context.Context) (any, error) {
	vals, errs, err := ar.collect(ctx)
	if err != nil {
		return nil, err
	}
	if ar.single && len(vals) == 1 {
		return vals[0], errs[0]
	}
	cerr := ar.composite(vals, errs)
	if ar.pick > 0 && ar.pick <= len(vals) {
		if cerr != nil {
			return nil, cerr
		}
		return vals[ar.pick-1], nil
	}
	switch ar.kind {
	case kindNone:
		return nil, cerr
	case kindFlatten:
		if cerr != nil {
			return vals, cerr
		}
		return concat(vals), nil
	}
	return vals, cerr
}

// GetList is Get for callers that always want one entry per request.
func (ar *AsyncResult) GetList(ctx context.Context) ([]any, error) {
	vals, errs, err := ar.collect(ctx)
	if err != nil {
		return nil, err
	}
	return vals, ar.composite(vals, errs)
}

// Iter yields the result's items as they become available: one per
// request, or one per element of each chunk for Map and Gather. An ordered
// result yields in order (waiting for each in turn); an unordered map
// yields in completion order. A failed request yields (nil, its error)
// once; a cancelled ctx yields (nil, ctx.Err()) and stops.
func (ar *AsyncResult) Iter(ctx context.Context) iter.Seq2[any, error] {
	return func(yield func(any, error) bool) {
		emit := func(f *future) bool {
			v, err := f.value(ar.kind)
			if err != nil {
				return yield(nil, err)
			}
			if ar.kind == kindFlatten {
				rv := reflect.ValueOf(v)
				if rv.Kind() == reflect.Slice {
					for i := 0; i < rv.Len(); i++ {
						if !yield(rv.Index(i).Interface(), nil) {
							return false
						}
					}
					return true
				}
			}
			return yield(v, nil)
		}
		if ar.ordered {
			for _, f := range ar.futures {
				select {
				case <-f.done:
				case <-ctx.Done():
					yield(nil, ctx.Err())
					return
				}
				if !emit(f) {
					return
				}
			}
			return
		}
		ready := make(chan *future, len(ar.futures))
		for _, f := range ar.futures {
			f.watch(func() { ready <- f })
		}
		for range ar.futures {
			select {
			case f := <-ready:
				if !emit(f) {
					return
				}
			case <-ctx.Done():
				yield(nil, ctx.Err())
				return
			}
		}
	}
}

// concat joins slices: into a slice of their common type when they all
// share one (so []float64 parts gather into a []float64), else into []any.
func concat(parts []any) any {
	var typ reflect.Type
	same := true
	for _, p := range parts {
		if p == nil {
			continue
		}
		t := reflect.TypeOf(p)
		if t.Kind() != reflect.Slice {
			same = false
			break
		}
		if typ == nil {
			typ = t
		} else if t != typ {
			same = false
		}
	}
	if same && typ != nil {
		out := reflect.MakeSlice(typ, 0, 0)
		for _, p := range parts {
			if p != nil {
				out = reflect.AppendSlice(out, reflect.ValueOf(p))
			}
		}
		return out.Interface()
	}
	var out []any
	for _, p := range parts {
		rv := reflect.ValueOf(p)
		if p != nil && rv.Kind() == reflect.Slice {
			for i := 0; i < rv.Len(); i++ {
				out = append(out, rv.Index(i).Interface())
			}
		} else if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// typedValue decodes one completed request into T.
func typedValue[T any](f *future, kind resultKind) (T, error) {
	var t T
	if kind == kindExecute || kind == kindNone {
		v, err := f.value(kind)
		if err != nil {
			return t, err
		}
		if v == nil {
			return t, nil
		}
		tv, ok := v.(T)
		if !ok {
			return t, fmt.Errorf("ipp: result is %T, not %T", v, t)
		}
		return tv, nil
	}
	f.mu.Lock()
	err, bufs := f.err, f.buffers
	f.mu.Unlock()
	if err != nil {
		return t, err
	}
	if len(bufs) == 0 {
		return t, nil
	}
	if err := decodeInto(bufs, &t); err != nil {
		return t, fmt.Errorf("ipp: decoding the result of %s into %T: %w", f.msgID, t, err)
	}
	return t, nil
}

// Get waits for a single-valued result and decodes it into T with the
// codec, without going through any. For Map and Gather results T must be a
// slice type; the parts are decoded into it and concatenated. For a result
// of several requests use GetAll.
func Get[T any](ctx context.Context, ar *AsyncResult) (T, error) {
	var zero T
	if err := ar.Wait(ctx); err != nil {
		return zero, err
	}
	if ar.kind == kindFlatten {
		out := reflect.ValueOf(&zero).Elem()
		if out.Kind() != reflect.Slice {
			return zero, fmt.Errorf("ipp: Get[%T] on a map/gather result needs a slice type", zero)
		}
		var ce *CompositeError
		for _, f := range ar.reportOrder() {
			part, err := typedValue[T](f, ar.kind)
			if err != nil {
				var re *RemoteError
				if !errors.As(err, &re) {
					return zero, err
				}
				if ce == nil {
					ce = &CompositeError{Method: ar.method}
				}
				ce.Errors = append(ce.Errors, re)
				continue
			}
			out = reflect.AppendSlice(out, reflect.ValueOf(part))
		}
		if ce != nil {
			return zero, ce
		}
		return out.Interface().(T), nil
	}
	if len(ar.futures) != 1 {
		return zero, fmt.Errorf("ipp: Get[T] on a result of %d requests; use GetAll", len(ar.futures))
	}
	return typedValue[T](ar.futures[0], ar.kind)
}

// GetAll waits for every request and decodes each result into T, in
// request order. For Map and Gather results the parts' elements are
// decoded and concatenated. Failed requests leave a zero T and are reported
// together in a *CompositeError (whose Results hold the typed values).
func GetAll[T any](ctx context.Context, ar *AsyncResult) ([]T, error) {
	if err := ar.Wait(ctx); err != nil {
		return nil, err
	}
	var out []T
	var ce *CompositeError
	var results []any
	for _, f := range ar.reportOrder() {
		var vals []T
		var err error
		if ar.kind == kindFlatten {
			vals, err = typedValue[[]T](f, ar.kind)
		} else {
			var v T
			v, err = typedValue[T](f, ar.kind)
			vals = []T{v}
		}
		if err != nil {
			var re *RemoteError
			if !errors.As(err, &re) {
				return nil, err
			}
			if ce == nil {
				ce = &CompositeError{Method: ar.method}
			}
			ce.Errors = append(ce.Errors, re)
			if ar.kind != kindFlatten {
				out = append(out, *new(T))
				results = append(results, nil)
			}
			continue
		}
		out = append(out, vals...)
		for _, v := range vals {
			results = append(results, v)
		}
	}
	if ce != nil {
		ce.Results = results
		return out, ce
	}
	return out, nil
}

// Output is one chunk of an engine's stdout or stderr, as the engine
// published it (often a line, not necessarily).
type Output struct {
	// Engine is the engine id (-1 if not yet known).
	Engine int
	// Stream is "stdout" or "stderr".
	Stream string
	// Text is the chunk as printed.
	Text string
}

// Outputs yields the stream output of the result's requests in arrival
// order: first what has already arrived, then each chunk as it arrives. It
// ends when every request is complete with its output flushed (the
// engine's IOPub idle, or the client's output grace, see WithOutputGrace),
// or when ctx ends. Breaking out of the loop stops it early. Several
// iterators may run at once; each sees every chunk.
func (ar *AsyncResult) Outputs(ctx context.Context) iter.Seq[Output] {
	return func(yield func(Output) bool) {
		next := make([]int, len(ar.futures))
		var batch []outputChunk
		for {
			// Taken before looking, so a chunk arriving after the look
			// closes this channel and is not missed.
			wake := ar.c.outputWait()
			batch = batch[:0]
			all := true
			for i, f := range ar.futures {
				f.mu.Lock()
				batch = append(batch, f.chunks[next[i]:]...)
				next[i] = len(f.chunks)
				if !f.finished {
					all = false
				}
				f.mu.Unlock()
			}
			slices.SortFunc(batch, func(a, b outputChunk) int { return cmp.Compare(a.seq, b.seq) })
			for _, ch := range batch {
				if !yield(ch.Output) {
					return
				}
			}
			if all {
				return
			}
			select {
			case <-wake:
			case <-ctx.Done():
				return
			}
		}
	}
}

// Interrupt sends SIGINT to the engines still running this result's
// requests (those not yet answered whose engine is known: a load-balanced
// task is known once its engine has published anything for it), and waits
// for their acknowledgements. The interrupted requests then complete with
// an Interrupted RemoteError. Requests still queued behind others are not
// affected: use Abort for them. An interrupt that some engines did not
// acknowledge returns a *SignalError naming them.
func (ar *AsyncResult) Interrupt(ctx context.Context) error {
	ids := ar.RunningEngines()
	if len(ids) == 0 {
		return nil
	}
	return ar.c.SendSignal(ctx, syscall.SIGINT, ids...)
}

// RunningEngines returns, in ascending order, the ids of the engines whose
// requests of this result have not been answered yet (and whose engine is
// known).
func (ar *AsyncResult) RunningEngines() []int {
	seen := map[int]bool{}
	var ids []int
	for _, f := range ar.futures {
		f.mu.Lock()
		pending := !f.replied && !f.finished
		uuid := f.md.EngineUUID
		f.mu.Unlock()
		if uuid == "" {
			uuid = f.engine
		}
		if !pending || uuid == "" {
			continue
		}
		id, ok := ar.c.engineID(uuid)
		if ok && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}
