package controller_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// TestManyEnginesRegisterAtOnce registers 1,000 engines simultaneously
// (Python-style: registration, then a pong) and requires every one to
// complete; ipyparallel loses about half at this scale (issue #700).
func TestManyEnginesRegisterAtOnce(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 100
	}
	testutil.RaiseFileLimit(t, 10*n+1024)
	c, _ := startController(t, controller.Config{HeartbeatPeriod: time.Second})
	ei := c.EngineInfo()
	key := []byte(ei.Key)
	ci := c.ClientInfo()
	notif := dial(t, transport.Sub, ci.URL(ci.Notification), key, "")
	var notified atomic.Int64
	go func() {
		for range notif.sock.Messages() {
			notified.Add(1)
		}
	}()
	// The notification SUB must be subscribed before engines complete.
	q := dial(t, transport.Dealer, ci.URL(ci.Registration), key, "")
	q.send(nil, "connection_request", map[string]any{})
	q.recv(5 * time.Second)

	// One SUB listens to pings for all fake engines; each engine answers on
	// its own pong DEALER, whose identity is its uuid.
	pongs := make([]transport.Socket, n)
	regs := make([]*peer, n)
	uuids := make([]string, n)
	for i := range n {
		uuids[i] = fmt.Sprintf("fake-%04d-%s", i, wire.NewID())
		regs[i] = dial(t, transport.Dealer, ei.URL(ei.Registration), key, uuids[i])
		s, err := transport.Default().NewSocket(transport.Dealer, transport.Options{Identity: []byte(uuids[i])})
		if err != nil {
			t.Fatal(err)
		}
		s.Connect(ei.URL(ei.HBPong))
		t.Cleanup(func() { s.Close() })
		pongs[i] = s
	}
	ping := dial(t, transport.Sub, ei.URL(ei.HBPing), key, "")
	var registered atomic.Bool
	go func() {
		for f := range ping.sock.Messages() {
			if !registered.Load() {
				continue
			}
			for _, p := range pongs {
				p.Send([][]byte{f[0]})
			}
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			regs[i].send(nil, "registration_request", map[string]any{"uuid": uuids[i]})
		}()
	}
	wg.Wait()
	ids := map[int]bool{}
	for i := range n {
		m := regs[i].recv(30 * time.Second)
		var r struct {
			Status string `json:"status"`
			ID     int    `json:"id"`
		}
		m.DecodeContent(&r)
		if r.Status != "ok" || ids[r.ID] {
			t.Fatalf("engine %d: %s", i, m.Content)
		}
		ids[r.ID] = true
	}
	registered.Store(true)
	testutil.Eventually(t, 60*time.Second, func() bool { return len(c.Engines()) == n },
		"all %d engines registered (have %d)", n, len(c.Engines()))
	testutil.Eventually(t, 10*time.Second, func() bool { return notified.Load() == int64(n) },
		"a registration_notification per engine")
	t.Logf("%d engines registered in %v", n, time.Since(start))
}
