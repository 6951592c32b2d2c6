package engine

import (
	"sync"
	"time"
	"unicode/utf8"
)

// outputStream collects what interpreted code prints to one of its
// standard streams until the engine publishes it as an IOPub "stream"
// message. Writes never block on the network.
type outputStream struct {
	name string // "stdout" or "stderr": the stream name and the topic kind
	wake chan<- struct{}

	mu  sync.Mutex
	buf []byte
}

func newOutputStream(name string, wake chan<- struct{}) *outputStream {
	return &outputStream{name: name, wake: wake}
}

// Write buffers p and, when the buffer was empty, nudges the flusher so
// that output appears within one flush interval.
func (s *outputStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	first := len(s.buf) == 0
	s.buf = append(s.buf, p...)
	s.mu.Unlock()
	if first && len(p) > 0 {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// take removes and returns the buffered text. Unless all is set it keeps
// an incomplete UTF-8 sequence at the end for the next flush, so a
// character split across two writes is not turned into U+FFFD by the JSON
// encoder.
func (s *outputStream) take(all bool) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.buf)
	if !all {
		n = completeUTF8(s.buf)
	}
	if n == 0 {
		return ""
	}
	out := string(s.buf[:n])
	rest := copy(s.buf, s.buf[n:])
	s.buf = s.buf[:rest]
	return out
}

func (s *outputStream) pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.buf) > 0
}

// completeUTF8 returns the length of the longest prefix of b that does not
// end inside a multi-byte character.
func completeUTF8(b []byte) int {
	for i := 1; i <= utf8.UTFMax && i <= len(b); i++ {
		c := b[len(b)-i]
		if c < utf8.RuneSelf {
			return len(b)
		}
		if utf8.RuneStart(c) {
			if utf8.FullRune(b[len(b)-i:]) {
				return len(b)
			}
			return len(b) - i
		}
	}
	return len(b)
}

// streamContent is an IOPub stream message's content.
type streamContent struct {
	Name string `json:"name"`
	Text string `json:"text"`
}

// setStreamParent makes parent the request that output is attributed to.
// Output still buffered from before (e.g. a goroutine the previous request
// left running) is published under the previous parent first.
func (e *engine) setStreamParent(parent []byte) {
	e.flushMu.Lock()
	defer e.flushMu.Unlock()
	e.flushLocked(true)
	e.streamParent = parent
}

// flushStreams publishes buffered output. The lock is held across take and
// publish so that a periodic flush cannot overtake the final flush that
// precedes a request's execute_result and reply.
func (e *engine) flushStreams(all bool) {
	e.flushMu.Lock()
	defer e.flushMu.Unlock()
	e.flushLocked(all)
}

func (e *engine) flushLocked(all bool) {
	for _, s := range []*outputStream{e.stdout, e.stderr} {
		if text := s.take(all); text != "" {
			e.streams.Add(1)
			e.publish(s.name, "stream", e.streamParent, streamContent{Name: s.name, Text: text})
		}
	}
}

// flusher publishes output at most one interval after it was written,
// and does nothing while nothing is printed.
func (e *engine) flusher(stop <-chan struct{}, wake <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-stop:
			return
		case <-wake:
		}
		timer.Reset(e.cfg.StreamFlushInterval)
		select {
		case <-stop:
			timer.Stop()
			return
		case <-timer.C:
		}
		e.flushStreams(false)
		// An incomplete character held back stays buffered without a new
		// wake-up from Write; go round again so it is not stranded.
		for _, s := range []*outputStream{e.stdout, e.stderr} {
			if s.pending() {
				select {
				case s.wake <- struct{}{}:
				default:
				}
			}
		}
	}
}
