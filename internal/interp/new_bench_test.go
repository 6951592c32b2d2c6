package interp

import (
	"io"
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
