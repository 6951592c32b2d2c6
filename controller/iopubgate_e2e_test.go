package controller_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// lateClient is a raw client that asks connection_request and sends one
// execute_request before it subscribes to IOPub, the order in which a
// loaded Python client's sockets can come up. It returns the request's
// msg_id once the reply is in, and the client's query peer.
func lateClient(t *testing.T, cl *cluster, session string) string {
	t.Helper()
	q := dial(t, transport.Dealer, cl.ci.URL(cl.ci.Registration), cl.key, session)
	h := q.send(nil, "connection_request", map[string]any{})
	if m := cl.recvOrDead(q, 20*time.Second); m.Header.MsgType != "connection_reply" || m.Parent.MsgID != h.MsgID {
		t.Fatalf("got %s, want the connection_reply", m.Header.MsgType)
	}
	mux := dial(t, transport.Dealer, cl.ci.URL(cl.ci.Mux), cl.key, "")
	mux.sess = q.sess // one client, one session, as in ipyparallel
	req := mux.send([][]byte{[]byte(cl.uuids[cl.ids[0]])}, "execute_request", map[string]any{"code": "1", "silent": false})
	if m := cl.recvOrDead(mux, 20*time.Second); m.Header.MsgType != "execute_reply" || m.Parent.MsgID != req.MsgID {
		t.Fatalf("got %s, want the execute_reply", m.Header.MsgType)
	}
	return req.MsgID
}

// idleFor waits on sub for the engine's "idle" status of msgID.
func idleFor(t *testing.T, cl *cluster, sub *peer, msgID string, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case frames := <-sub.sock.Messages():
			m, err := wire.ParseUnchecked(frames)
			if err == nil && m.Header.MsgType == "status" && m.Parent.MsgID == msgID && string(m.Content) != "" {
				var st struct {
					State string `json:"execution_state"`
				}
				if m.DecodeContent(&st) == nil && st.State == "idle" {
					return
				}
			}
		case <-deadline:
			m, e := controller.IOPubGateReleases(cl.c)
			t.Fatalf("the IOPub idle of %s never reached the client (lost before its subscription arrived?); gate: %d matched, %d expired", msgID, m, e)
		}
	}
}

// TestLateIOPubSubscriberGetsItsOutput: output produced for a client
// before its IOPub subscription reached the controller is held, not
// dropped, and published once the subscription arrives.
func TestLateIOPubSubscriberGetsItsOutput(t *testing.T) {
	cl := startCluster(t, controller.Config{})
	if !controller.PrepareIOPubGate(cl.c, time.Minute) {
		t.Fatal("the IOPub gate is off: the transport has no XPUB")
	}
	msgID := lateClient(t, cl, "late-subscriber")
	// The engine publishes its idle after the reply: wait until the gate
	// holds it, so that it surely came before the subscription.
	testutil.Eventually(t, 20*time.Second, func() bool {
		for _, frames := range controller.IOPubHeld(cl.c, "late-subscriber") {
			if m, err := wire.ParseUnchecked(frames); err == nil && m.Parent.MsgID == msgID && strings.Contains(string(m.Content), `"idle"`) {
				return true
			}
		}
		return false
	}, "the gate never held the late client's idle")
	sub := dial(t, transport.Sub, cl.ci.URL(cl.ci.IOPub), nil, "")
	idleFor(t, cl, sub, msgID, 20*time.Second)
	if matched, expired := controller.IOPubGateReleases(cl.c); matched == 0 || expired != 0 {
		t.Fatalf("gate releases: %d matched, %d expired; want the late client released by its subscription", matched, expired)
	}
	cl.alive()
}

// TestSilentClientCannotHoldOutput: a client that never subscribes has
// its output published to everyone else after the gate's wait, so it
// cannot hide a task's output from the other clients.
func TestSilentClientCannotHoldOutput(t *testing.T) {
	cl := startCluster(t, controller.Config{})
	spy := cl.spyIOPub()
	if !controller.PrepareIOPubGate(cl.c, 300*time.Millisecond) {
		t.Fatal("the IOPub gate is off: the transport has no XPUB")
	}
	msgID := lateClient(t, cl, "never-subscribes")
	spy.waitFor(t, "the silent client's idle", func(m *wire.Message) bool {
		return m.Header.MsgType == "status" && m.Parent.MsgID == msgID && strings.Contains(string(m.Content), `"idle"`)
	})
	if _, expired := controller.IOPubGateReleases(cl.c); expired != 1 {
		t.Fatalf("%d clients released after the wait, want the silent one", expired)
	}
	cl.alive()
}
