package testutil

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"
)

// FailureLog returns a debug-level logger whose output is kept in memory
// and printed, its last max bytes, only if t fails. A flake in CI then
// comes with what the component was doing, without the noise of every
// passing test's logs.
func FailureLog(t testing.TB, max int) *slog.Logger {
	t.Helper()
	w := &tailBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- last %d bytes of the debug log:\n%s", max, w.tail(max))
		}
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// tailBuffer is a goroutine-safe buffer that keeps only its newest bytes.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// tailKeep bounds the buffer: a long test must not hold its whole log.
const tailKeep = 1 << 20

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len()+len(p) > 2*tailKeep {
		rest := append([]byte(nil), b.buf.Bytes()[b.buf.Len()-tailKeep:]...)
		b.buf.Reset()
		b.buf.Write(rest)
	}
	return b.buf.Write(p)
}

func (b *tailBuffer) tail(max int) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.buf.Bytes()
	if len(out) > max {
		out = out[len(out)-max:]
	}
	return append([]byte(nil), out...)
}
