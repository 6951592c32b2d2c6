package transport

import (
	"bytes"
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
