package ipp

import (
	"context"
	"errors"
	"testing"
)

// pickResult is what DirectView.MPIReduce returns on four ranks: every
// rank answers, only the root (request root) carries the reduced value.
func pickResult(t *testing.T, root int, vals []any, errs []error) *AsyncResult {
	t.Helper()
	ar := &AsyncResult{kind: kindApply, method: "apply", ordered: true, pick: root + 1}
	for i := range vals {
		f := &future{msgID: "m" + string(rune('0'+i)), engineID: i, done: make(chan struct{})}
		if errs[i] != nil {
			f.err = errs[i]
		} else if vals[i] != nil {
			bufs, err := encodeValue(vals[i])
			if err != nil {
				t.Fatal(err)
			}
			f.buffers = bufs
		}
		close(f.done)
		ar.futures = append(ar.futures, f)
	}
	return ar
}

// TestGetTypedHonoursPick: docs/mpi.md reads an MPIReduce with
// ipp.Get[int64]; it used to fail with "Get[T] on a result of 4 requests"
// while untyped Get gave the root's value.
func TestGetTypedHonoursPick(t *testing.T) {
	ctx := context.Background()
	ar := pickResult(t, 2, []any{nil, nil, int64(42), nil}, make([]error, 4))
	got, err := Get[int64](ctx, ar)
	if err != nil || got != 42 {
		t.Errorf("Get[int64] = %v, %v; want the root's 42", got, err)
	}
	untyped, err := ar.Get(ctx)
	if err != nil || untyped != int64(42) {
		t.Errorf("Get = %v (%T), %v; want 42 as Get[int64]", untyped, untyped, err)
	}

	// A failed rank fails the whole collective, typed or not.
	re := &RemoteError{Engine: 1, EName: "MPIError", EValue: "boom"}
	ar = pickResult(t, 0, []any{int64(1), nil, nil, nil}, []error{nil, re, nil, nil})
	_, err = Get[int64](ctx, ar)
	var ce *CompositeError
	if !errors.As(err, &ce) || len(ce.Errors) != 1 || ce.Errors[0] != re {
		t.Errorf("Get[int64] with rank 1 failed: %v, want a CompositeError with rank 1's error", err)
	}
	if _, uerr := ar.Get(ctx); !errors.As(uerr, &ce) {
		t.Errorf("untyped Get with rank 1 failed: %v", uerr)
	}

	// A result without a pick still refuses: which value would it be?
	ar = pickResult(t, 0, []any{int64(1), int64(2)}, make([]error, 2))
	ar.pick = 0
	if _, err := Get[int64](ctx, ar); err == nil {
		t.Error("Get[int64] on two requests without a pick succeeded")
	}
}
