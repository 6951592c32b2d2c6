package controller

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/testutil"
)

// TestCrashedLoopStopsWithReason: a serving loop that panics takes the
// controller down, and Err says which loop and why (not "on request").
func TestCrashedLoopStopsWithReason(t *testing.T) {
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.goServe("probe", func() { panic("boom") })
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the controller kept running after a loop crashed")
	}
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "probe loop crashed: boom") {
		t.Fatalf("Err() = %v", err)
	}
}

// TestCleanStopHasNoError: Close is a requested stop.
func TestCleanStopHasNoError(t *testing.T) {
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := c.Err(); err != nil {
		t.Fatalf("Err() after Close = %v", err)
	}
}

// TestRejectLogRateLimit: a flood from one peer is logged once per
// period, with the count of what was suppressed; other peers and reasons
// still get their line.
func TestRejectLogRateLimit(t *testing.T) {
	var buf testutil.SyncBuffer
	c := &Controller{log: slog.New(slog.NewTextHandler(&buf, nil))}
	r := newRejectLog(c)
	for range 1000 {
		r.reject("mux_out", []byte("attacker"), "bad signature")
	}
	r.reject("mux_out", []byte("other"), "bad signature")
	r.reject("mux_out", []byte("attacker"), "replay")
	if got := strings.Count(buf.String(), "refused message"); got != 3 {
		t.Fatalf("%d log lines for 1002 refusals, want 3:\n%s", got, buf.String())
	}
	if r.count() != 1002 {
		t.Fatalf("count = %d", r.count())
	}
	// Identities cycling through the limiter do not grow it without bound.
	for i := range 3 * maxRejectKeys {
		r.reject("hb_pong", []byte{byte(i), byte(i >> 8), byte(i >> 16)}, "x")
	}
	if n := len(r.seen); n > maxRejectKeys {
		t.Fatalf("limiter holds %d keys", n)
	}
}
