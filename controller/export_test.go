package controller

import (
	"slices"
	"time"
)

// SetRestoredTasks stands in for the task database's loading in tests:
// f returns the records a restore takes over.
func SetRestoredTasks(cfg *Config, f func() []*TaskRecord) { cfg.restoredTasks = f }

// IncompleteRecords snapshots the requests without a result, as a task
// database would have stored them: a test's stand-in for the db.
func IncompleteRecords(c *Controller) []*TaskRecord {
	rs := c.records
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var out []*TaskRecord
	for _, id := range rs.order {
		r := rs.byID[id]
		if r == nil || r.done || r.bare {
			continue
		}
		out = append(out, &TaskRecord{MsgID: r.MsgID, Header: clone(r.Header), Metadata: clone(r.Metadata),
			Submitted: r.Submitted, ClientUUID: r.ClientUUID, EngineUUID: r.EngineUUID, Queue: r.Queue})
	}
	return out
}

// ResultContent is the result content the hub recorded for msgID.
func ResultContent(c *Controller, msgID string) string {
	c.records.mu.Lock()
	defer c.records.mu.Unlock()
	if r := c.records.byID[msgID]; r != nil {
		return string(r.ResultContent)
	}
	return ""
}

// PrepareIOPubGate makes the IOPub gate deterministic for a test: it
// releases the clients pending so far, forgets the subscriptions not
// matched to a client yet (they would release the next client at once),
// zeroes the release counts and sets how long a client that never
// subscribes is waited for. It fails if the gate is off (no XPUB).
func PrepareIOPubGate(c *Controller, wait time.Duration) bool {
	g := c.hub.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	for len(g.pending) > 0 { // e.g. the query-only peers of test helpers
		g.release(g.pending[0], false)
	}
	g.subs, g.matched, g.expired = 0, 0, 0
	g.credits = nil
	g.wait = wait
	return g.enabled
}

// IOPubGateReleases counts the clients the gate released on their
// subscription (matched) and after its wait (expired).
func IOPubGateReleases(c *Controller) (matched, expired int) {
	g := c.hub.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.matched, g.expired
}

// IOPubHeld is the output the IOPub gate holds for a client session.
func IOPubHeld(c *Controller, session string) [][][]byte {
	g := c.hub.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	if h := g.bySession[session]; h != nil {
		return slices.Clone(h.held)
	}
	return nil
}
