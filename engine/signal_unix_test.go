//go:build unix

package engine

import (
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// TestSignalDelivered: a signal other than SIGINT goes to the engine
// process (here the test binary, which catches it).
func TestSignalDelivered(t *testing.T) {
	got := make(chan os.Signal, 1)
	signal.Notify(got, syscall.SIGUSR1)
	defer signal.Stop(got)
	f, _, _ := start(t, fakeOptions{}, nil)
	h := f.send(f.control, "signal_request", map[string]any{"sig": int(syscall.SIGUSR1)}, nil, nil)
	r := f.controlIn.wait(t, waitTimeout, "signal_reply", replyTo(h.MsgID))
	if content(t, r)["status"] != "ok" {
		t.Errorf("signal_reply %s", r.Content)
	}
	select {
	case <-got:
	case <-time.After(waitTimeout):
		t.Fatal("SIGUSR1 was not delivered")
	}
	h = f.send(f.control, "signal_request", map[string]any{"sig": "SIGBOGUS"}, nil, nil)
	r = f.controlIn.wait(t, waitTimeout, "signal_reply", replyTo(h.MsgID))
	if content(t, r)["status"] != "error" {
		t.Errorf("unknown signal: %s", r.Content)
	}
}
