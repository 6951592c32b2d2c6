package interp

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"testing"
)

// BenchmarkNewNamespace is what an engine's first exec pays to open its
// namespace (and what Reset pays).
func BenchmarkNewNamespace(b *testing.B) {
	for range b.N {
		n, err := New(Options{Stdout: io.Discard, Stderr: io.Discard})
		if err != nil {
			b.Fatal(err)
		}
		n.Close()
	}
}

// BenchmarkInterpretedCall is what interpreted code pays per call of a
// compiled function shaped like mpi.AllreduceFloat64 (a float64 and an
// operation in, a float64 and an error out), inside a loop as the MPI
// bench's snippet runs it: the interpreter's share of the "interpreted"
// MPI overhead, with no MPI in it. One op is one iteration.
func BenchmarkInterpretedCall(b *testing.B) {
	type op int
	n, err := New(Options{Stdout: io.Discard, Stderr: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	err = n.Use(map[string]map[string]reflect.Value{
		"benchpkg/benchpkg": {
			"Call": reflect.ValueOf(func(x float64, _ op) (float64, error) { return x, nil }),
			"Sum":  reflect.ValueOf(op(1)),
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := n.Exec(context.Background(), `import "benchpkg"`); err != nil {
		b.Fatal(err)
	}
	code := fmt.Sprintf("for i := 0; i < %d; i++ { benchpkg.Call(1, benchpkg.Sum) }", b.N)
	b.ResetTimer()
	if _, err := n.Exec(context.Background(), code); err != nil {
		b.Fatal(err)
	}
}
