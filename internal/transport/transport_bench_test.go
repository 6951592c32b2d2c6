package transport

import (
	"bytes"
	"testing"
	"time"
)

// benchPair is a ROUTER bound on loopback and a DEALER connected to it, in
// this process. Messages are two frames of 10 and 90 bytes, the sizes the
// environment-facts measurements used across processes.
func benchPair(b *testing.B, backend Backend) (router, dealer Socket, msg [][]byte) {
	b.Helper()
	r, err := backend.NewSocket(Router, Options{})
	if err != nil {
		b.Fatal(err)
	}
	ep, err := r.Bind("tcp://127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	d, err := backend.NewSocket(Dealer, Options{Identity: []byte("bench")})
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Connect(ep); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		d.Close()
		r.Close()
	})
	return r, d, [][]byte{bytes.Repeat([]byte("h"), 10), bytes.Repeat([]byte("b"), 90)}
}

// recvBench waits for one message without letting a lost one hang the run.
// The timer is made only when a message is not already there, so that it
// does not weigh on what is measured.
func recvBench(b *testing.B, s Socket) [][]byte {
	select {
	case m := <-s.Messages():
		return m
	default:
	}
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case m := <-s.Messages():
		return m
	case <-timer.C:
		b.Fatal("no message within 10s")
		return nil
	}
}

// BenchmarkRoundTrip measures DEALER → ROUTER → DEALER echo latency.
func BenchmarkRoundTrip(b *testing.B) {
	for _, name := range Names() {
		backend, _ := Lookup(name)
		b.Run(name, func(b *testing.B) {
			r, d, msg := benchPair(b, backend)
			go func() {
				for m := range r.Messages() {
					r.Send(m)
				}
			}()
			d.Send(msg)
			recvBench(b, d)
			for b.Loop() {
				d.Send(msg)
				recvBench(b, d)
			}
		})
	}
}

// BenchmarkThroughput measures one-way DEALER → ROUTER messages per second,
// from the first send to the last message received.
func BenchmarkThroughput(b *testing.B) {
	for _, name := range Names() {
		backend, _ := Lookup(name)
		b.Run(name, func(b *testing.B) {
			r, d, msg := benchPair(b, backend)
			d.Send(msg)
			recvBench(b, r)
			n := b.N
			b.ResetTimer()
			start := time.Now()
			go func() {
				for i := 0; i < n; i++ {
					d.Send(msg)
				}
			}()
			for i := 0; i < n; i++ {
				recvBench(b, r)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
		})
	}
}
