package engine

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// TestGoController registers with our own controller: the ready probes
// complete the registration (no heartbeat wait), and the controller
// serves our registration metadata through engine_info_request.
func TestGoController(t *testing.T) {
	c, err := controller.New(controller.Config{HeartbeatPeriod: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	logs := &logSink{t: t}
	defer logs.stop()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	begun := time.Now()
	go func() {
		errc <- Run(ctx, Config{Info: c.EngineInfo(), Logger: slog.New(logs), RequestedID: -1, Functions: NewRegistry()})
	}()
	testutil.Eventually(t, waitTimeout, func() bool { return logs.contains("controller confirmed the registration") }, "no registration_complete from our controller")
	if d := time.Since(begun); d > time.Second {
		t.Errorf("registration took %v, longer than a heartbeat period", d)
	}

	// Ask the hub, as a client would.
	ci := c.ClientInfo()
	sess := wire.NewSession([]byte(ci.Key), "")
	q, err := transport.Default().NewSocket(transport.Dealer, transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if err := q.Connect(ci.URL(ci.Registration)); err != nil {
		t.Fatal(err)
	}
	ask := func(msgType string) *wire.Message {
		t.Helper()
		frames, h, err := sess.Build(wire.Out{MsgType: msgType})
		if err != nil {
			t.Fatal(err)
		}
		q.Send(frames)
		deadline := time.After(waitTimeout)
		for {
			select {
			case frames := <-q.Messages():
				m, err := sess.Parse(frames)
				if err != nil {
					t.Fatal(err)
				}
				if m.Parent.MsgID == h.MsgID {
					return m
				}
			case <-deadline:
				t.Fatalf("no reply to %s", msgType)
			}
		}
	}
	var conn struct {
		Engines map[string]string `json:"engines"`
	}
	if err := ask("connection_request").DecodeContent(&conn); err != nil || len(conn.Engines) != 1 {
		t.Fatalf("connection_reply engines %v (%v)", conn.Engines, err)
	}
	var infos struct {
		Engines map[string]protocol.EngineInfo `json:"engines"`
	}
	m := ask("engine_info_request")
	if err := m.DecodeContent(&infos); err != nil {
		t.Fatal(err)
	}
	if info := infos.Engines["0"]; info.Language != "go" || info.UUID != conn.Engines["0"] || info.PID == 0 {
		t.Errorf("engine_info_reply %s", m.Content)
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return")
	}
	// The controller forgets the engine at once, from unregistration_request.
	testutil.Eventually(t, waitTimeout, func() bool {
		var conn struct {
			Engines map[string]string `json:"engines"`
		}
		json.Unmarshal(ask("connection_request").Content, &conn)
		return len(conn.Engines) == 0
	}, "engine still registered after Run returned")
}
