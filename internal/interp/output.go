package interp

import (
	"io"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
)

// stream routes one of the interpreted program's output streams (stdout or
// stderr) to the writer given in Options.
//
// Interpreted code reaches the stream two ways: through the interpreter's
// writer (fmt.Print*, println, log) and through the os.Stdout/os.Stderr
// variables, which must stay *os.File so that code like
// os.Stdout.WriteString or f := os.Stdout compiles. Both must land in order
// and be fully delivered before Exec returns, because the engine publishes
// the output before the execute reply. So during an Exec both point at the
// write end of a fresh pipe; a pump goroutine copies the read end to the
// destination, and closing the write end at the end of Exec makes the pump
// finish only after the last byte is delivered. Between Execs, output of
// goroutines a snippet left running goes through an idle pipe with its own
// pump. When the destination is itself an *os.File no pipe is needed.
type stream struct {
	mu  sync.Mutex // serialises writes to dst from the two pumps
	dst io.Writer

	direct bool

	// file is the variable interpreted code sees as os.Stdout/os.Stderr.
	// It is swapped while no snippet runs (goroutines a snippet started
	// may read it concurrently; they then write to either pipe).
	file *os.File
	// cur is where writer sends bytes; it follows file.
	cur atomic.Pointer[os.File]

	idleW    *os.File
	idleDone chan struct{}
	runW     *os.File
	runDone  chan struct{}
	// runBuf is the run pump's buffer, kept from one Exec to the next:
	// a fresh 32 KiB per Exec and stream was the largest allocation of a
	// small execute (two page-faulting slices and the GC work after them).
	// Only one run pump exists at a time (end waits for it).
	runBuf []byte
}

// newStream returns a stream to dst, or to fallback when dst is nil.
func newStream(dst io.Writer, fallback *os.File) (*stream, error) {
	if dst == nil {
		dst = fallback
	}
	s := &stream{dst: dst}
	if f, ok := dst.(*os.File); ok {
		s.direct = true
		s.file = f
		s.cur.Store(f)
		return s, nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	s.idleW, s.idleDone = w, s.pump(r, make([]byte, pumpBuffer))
	s.file = w
	s.cur.Store(w)
	return s, nil
}

// pumpBuffer is the size of a pump's read buffer.
const pumpBuffer = 32 << 10

// pump copies r to dst through buf until every write end of the pipe is
// closed.
func (s *stream) pump(r *os.File, buf []byte) chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer r.Close()
		for {
			k, err := r.Read(buf)
			if k > 0 {
				s.mu.Lock()
				// A failing destination must not block the snippet:
				// keep draining and drop the bytes.
				_, _ = s.dst.Write(buf[:k])
				s.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	return done
}

// begin routes output to a fresh pipe for the duration of one Exec.
func (s *stream) begin() error {
	if s.direct {
		return nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	if s.runBuf == nil {
		s.runBuf = make([]byte, pumpBuffer)
	}
	s.runW, s.runDone = w, s.pump(r, s.runBuf)
	s.file = w
	s.cur.Store(w)
	return nil
}

// end returns once everything written during the Exec has reached dst.
func (s *stream) end() {
	if s.direct || s.runW == nil {
		return
	}
	s.file = s.idleW
	s.cur.Store(s.idleW)
	_ = s.runW.Close()
	<-s.runDone
	s.runW, s.runDone = nil, nil
}

// close flushes and releases the idle pipe.
func (s *stream) close() {
	if s.direct || s.idleW == nil {
		return
	}
	_ = s.idleW.Close()
	<-s.idleDone
	s.idleW = nil
}

// writer is the io.Writer handed to yaegi as its Stdout/Stderr option.
func (s *stream) writer() io.Writer { return streamWriter{s} }

type streamWriter struct{ s *stream }

func (w streamWriter) Write(p []byte) (int, error) { return w.s.cur.Load().Write(p) }

// traceFilter sits in front of the interpreter's stderr and takes out the
// lines yaegi prints for each frame a panic unwinds through; they become
// the Traceback of the returned *Error instead of noise on the user's
// stderr.
type traceFilter struct {
	next io.Writer
	mu   sync.Mutex
	log  []string
}

// traceLine is a quick pre-check before the full tracePattern match.
var traceLine = regexp.MustCompile(`: panic: .*\(\.\.\.\)\n?$`)

func (t *traceFilter) Write(p []byte) (int, error) {
	if traceLine.Match(p) && tracePattern.Match(p) {
		t.mu.Lock()
		t.log = append(t.log, string(p))
		t.mu.Unlock()
		return len(p), nil
	}
	return t.next.Write(p)
}

// take returns and clears the captured frame lines.
func (t *traceFilter) take() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.log
	t.log = nil
	return l
}
