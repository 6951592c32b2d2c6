package engine

import (
	"slices"
	"strings"
	"testing"

	"github.com/ipp-hpc/ipp/internal/protocol"
)

// TestMPICollectiveWithoutMPI: an engine that is not an MPI rank (no MPI
// in the build, or MPI never initialised) answers with a clear error and
// touches no collective.
func TestMPICollectiveWithoutMPI(t *testing.T) {
	e := &engine{id: 3}
	_, err := e.builtin(t.Context(), protocol.MPI, []any{"allreduce", "x", "y", "sum", 0})
	re, ok := err.(*remoteError)
	if !ok || re.name != "MPIError" {
		t.Fatalf("got %v, want an MPIError", err)
	}
	if !strings.Contains(re.msg, "without MPI") && !strings.Contains(re.msg, "engine 3 is not an MPI rank") {
		t.Errorf("message %q does not say why", re.msg)
	}
	if _, err := e.builtin(t.Context(), protocol.MPI, []any{"allreduce", "x"}); err == nil || !strings.Contains(err.Error(), "takes 5 arguments") {
		t.Errorf("two arguments: %v, want an arity error", err)
	}
}

// TestMPIBufferRoundTrip: every supported type survives the trip through
// a collective buffer, scalars gather into slices of their own type, and
// the buffer is a copy, so a collective never writes into src.
func TestMPIBufferRoundTrip(t *testing.T) {
	for _, v := range []any{2.5, 7, int64(-3), []float64{1, 2}, []float32{3}, []int64{4, 5}, []int32{6}, []byte("ab")} {
		buf, k, n, err := mpiBuffer(v)
		if err != nil {
			t.Fatalf("%T: %v", v, err)
		}
		if got := fromMPIBuffer(buf, k, false); !equalAny(got, v) {
			t.Errorf("%T %v came back as %T %v", v, v, got, got)
		}
		if fresh := newMPIBuffer(k, n); fresh == nil {
			t.Errorf("no buffer for %v", k)
		}
	}
	if got := fromMPIBuffer([]int64{1, 2}, kindInt, true); !slices.Equal(got.([]int), []int{1, 2}) {
		t.Errorf("ints gathered into %T %v, want []int [1 2]", got, got)
	}
	src := []float64{1}
	buf, _, _, _ := mpiBuffer(src)
	buf.([]float64)[0] = 9
	if src[0] != 1 {
		t.Error("the buffer aliases the namespace value")
	}
	if _, _, _, err := mpiBuffer("text"); err == nil || !strings.Contains(err.Error(), "string") {
		t.Errorf("a string: %v, want an error naming its type", err)
	}
}

func equalAny(a, b any) bool {
	switch x := a.(type) {
	case []float64:
		return slices.Equal(x, b.([]float64))
	case []float32:
		return slices.Equal(x, b.([]float32))
	case []int64:
		return slices.Equal(x, b.([]int64))
	case []int32:
		return slices.Equal(x, b.([]int32))
	case []byte:
		return slices.Equal(x, b.([]byte))
	}
	return a == b
}
