package transport

import (
	"bytes"
	"runtime"
	"testing"
)

// TestCopyPreemptible: the piecewise copy copies what copy would, for
// sizes around and between its pieces and for either side shorter.
func TestCopyPreemptible(t *testing.T) {
	src := make([]byte, 3*copyChunk+17)
	for i := range src {
		src[i] = byte(i*7 + i>>11)
	}
	for _, c := range []struct{ dst, src int }{
		{0, 0}, {1, 1}, {copyChunk - 1, copyChunk - 1}, {copyChunk, copyChunk}, {copyChunk + 1, copyChunk + 1},
		{len(src), len(src)}, {len(src), 2*copyChunk + 5}, {2*copyChunk + 5, len(src)},
	} {
		want := make([]byte, c.dst)
		got := make([]byte, c.dst)
		wn := copy(want, src[:c.src])
		gn := copyPreemptible(got, src[:c.src])
		if gn != wn || !bytes.Equal(got, want) {
			t.Errorf("dst %d, src %d: copied %d (want %d), equal %v", c.dst, c.src, gn, wn, bytes.Equal(got, want))
		}
	}
	if c := OwnCopy(src); !bytes.Equal(c, src) || &c[0] == &src[0] {
		t.Error("OwnCopy of a large buffer is not an equal copy")
	}
}

// TestCopyUnzeroed: the copy made without clearing is an equal copy in
// memory of its own, whole (length and capacity), for sizes around the
// huge page and the copy's pieces, and stays so across collections while
// the source changes and new buffers reuse freed memory.
func TestCopyUnzeroed(t *testing.T) {
	for _, n := range []int{1, 2, copyChunk + 3, hugePage - 1, 2*hugePage + 5, 8<<20 + 1} {
		src := make([]byte, n)
		for i := range src {
			src[i] = byte(i*13 + i>>9 + 1)
		}
		want := bytes.Clone(src)
		got := copyUnzeroed(src)
		if len(got) != n || cap(got) != n {
			t.Fatalf("%d bytes: copy has length %d, capacity %d", n, len(got), cap(got))
		}
		if &got[0] == &src[0] {
			t.Fatalf("%d bytes: the copy is the source", n)
		}
		clear(src)
		for range 3 {
			runtime.GC()
			_ = copyUnzeroed(want) // garbage at once: the next round's memory
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: the copy differs from its source", n)
		}
	}
	if got := copyUnzeroed(nil); got == nil || len(got) != 0 {
		t.Errorf("copy of nothing: %v, want an empty, non-nil slice", got)
	}
}
