package ipp

import (
	"context"
	"slices"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// BroadcastView sends one request to the controller's broadcast scheduler,
// which copies it to every target engine (ipyparallel 7's
// rc.broadcast_view()): one message leaves the client however many engines
// there are. Each engine answers separately, unless the view is
// Coalescing.
type BroadcastView struct {
	c          *Client
	targets    []int // nil: every engine at call time
	coalescing bool
}

// Coalescing returns a copy of the view whose Apply replies come back as
// one combined message (ipyparallel's is_coalescing=True): one reply
// crosses the client's socket however many engines there are. Results,
// errors and metadata are still per engine; an engine that dies fails its
// own part with EngineError while the others' results arrive. Execute is
// never coalesced, as in ipyparallel.
func (v *BroadcastView) Coalescing() *BroadcastView {
	w := *v
	w.coalescing = true
	return &w
}

// Broadcast returns a BroadcastView on the given engines (all when none
// are given).
func (c *Client) Broadcast(targets ...int) *BroadcastView {
	return &BroadcastView{c: c, targets: slices.Clone(targets)}
}

// submit sends one broadcast request. The scheduler rewrites the msg_id
// for each engine to "<msg_id>_<uuid>" (as ipyparallel's broadcast scheduler does), so one future per
// engine is registered under that id before sending.
func (v *BroadcastView) submit(ctx context.Context, msgType, method string, kind resultKind, content any, bufs [][]byte) (*AsyncResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if v.c.bcast == nil {
		return nil, ErrNoEngines
	}
	ts, err := (&DirectView{c: v.c, targets: v.targets}).resolve()
	if err != nil {
		return nil, err
	}
	targets := make([][]any, len(ts))
	for i, t := range ts {
		targets[i] = []any{t.uuid, t.id}
	}
	coalescing := v.coalescing && msgType == "apply_request"
	md := map[string]any{"targets": targets, "is_broadcast": true, "is_coalescing": coalescing}
	if coalescing {
		// We fail a dead engine's part ourselves and still want the others'.
		md[protocol.MetaCoalesceAfterDeath] = true
	}
	h := v.c.session.NewHeader(msgType)
	frames, _, err := v.c.session.Build(wire.Out{Header: h, Metadata: md, Content: content, Buffers: bufs})
	if err != nil {
		return nil, err
	}
	if err := v.c.checkSize(msgType, frames); err != nil {
		return nil, err
	}
	submitted, _ := wire.ParseDate(h.Date)
	ar := &AsyncResult{c: v.c, kind: kind, single: false, method: method, ordered: true}
	v.c.mu.Lock()
	if v.c.closed {
		v.c.mu.Unlock()
		return nil, v.c.closeErr
	}
	var dead []*future
	for _, t := range ts {
		f := v.c.newFuture(msgType, method, t.uuid, t.id)
		f.msgID = h.MsgID + "_" + t.uuid
		f.md.MsgID, f.md.Submitted = f.msgID, submitted
		v.c.futures[f.msgID] = f
		ar.futures = append(ar.futures, f)
		if v.c.dead[t.uuid] {
			// Its unregistration was handled after the targets were
			// resolved: nobody else will fail this part.
			dead = append(dead, f)
		}
	}
	if coalescing {
		v.c.dropCoalescedLocked()
		v.c.coalesced[h.MsgID] = ar.futures
	}
	v.c.mu.Unlock()
	for _, f := range dead {
		f.engineDied(f.engineID)
	}
	if err := v.c.bcast.Send(frames); err != nil {
		for _, f := range ar.futures {
			v.c.forget(f)
		}
		v.c.mu.Lock()
		delete(v.c.coalesced, h.MsgID)
		v.c.mu.Unlock()
		return nil, err
	}
	return ar, nil
}

// Execute runs code on every target engine.
func (v *BroadcastView) Execute(ctx context.Context, code string, opts ...ExecOption) (*AsyncResult, error) {
	return v.submit(ctx, "execute_request", "execute", kindExecute, executeContent(code, opts), nil)
}

// Apply calls the registered function fn on every target engine.
func (v *BroadcastView) Apply(ctx context.Context, fn string, args ...any) (*AsyncResult, error) {
	content, bufs, err := encodeCall(fn, args)
	if err != nil {
		return nil, err
	}
	return v.submit(ctx, "apply_request", fn, kindApply, content, bufs)
}
