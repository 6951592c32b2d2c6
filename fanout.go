package ipp

import (
	"context"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// submitSame sends a request whose content and buffers are the same for
// every target. To our controller (which says so in its connection_reply)
// it goes as one mux fan-out, whatever the number of engines: the buffers
// leave the client once, and the controller forwards one copy per engine
// on the mux path, so each engine still sees this client's direct requests
// in the order they were made. To ipyparallel's controller, to one engine,
// or to a list naming an engine twice, it goes as one request per target,
// as before. Either way the caller gets one future per target.
func (v *DirectView) submitSame(ctx context.Context, ts []target, msgType, method string, kind resultKind,
	content any, bufs [][]byte) (*AsyncResult, error) {
	if !v.c.fanout || len(ts) < 2 || !distinctTargets(ts) {
		return v.submitDirect(ctx, ts, msgType, method, kind, func(int) (any, [][]byte, error) {
			return content, bufs, nil
		})
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := v.c.checkOpen(); err != nil {
		return nil, err
	}
	ar := &AsyncResult{c: v.c, kind: kind, single: v.single, method: method, ordered: true}
	bufs = ownCopies{}.of(bufs)
	for lo := 0; lo < len(ts); lo += protocol.MaxFanoutTargets {
		part := ts[lo:min(lo+protocol.MaxFanoutTargets, len(ts))]
		fs, err := v.c.sendFanout(msgType, method, part, content, bufs)
		if err != nil {
			// Parts already sent run; nobody will wait for them.
			for _, f := range ar.futures {
				v.c.forget(f)
			}
			return nil, err
		}
		ar.futures = append(ar.futures, fs...)
	}
	return ar, nil
}

// distinctTargets tells whether no engine is named twice: a fan-out gives
// each engine one copy, under one msg_id.
func distinctTargets(ts []target) bool {
	seen := make(map[string]bool, len(ts))
	for _, t := range ts {
		if seen[t.uuid] {
			return false
		}
		seen[t.uuid] = true
	}
	return true
}

// sendFanout sends one fan-out to ts and returns their futures, in order.
// The controller names each engine's copy "<msg_id>_<uuid>", so each
// future is registered under that id before the request leaves. An engine
// whose unregistration was handled after the targets were resolved is
// left out of the request and its future failed here: no notification
// will come for it any more.
func (c *Client) sendFanout(msgType, method string, ts []target, content any, bufs [][]byte) ([]*future, error) {
	h := c.session.NewHeader(msgType)
	submitted, _ := wire.ParseDate(h.Date)
	fs := make([]*future, len(ts))
	for i, t := range ts {
		f := c.newFuture(msgType, method, t.uuid, t.id)
		f.msgID = h.MsgID + "_" + t.uuid
		f.md.MsgID, f.md.Submitted = f.msgID, submitted
		fs[i] = f
	}
	c.mu.Lock()
	uuids := make([]string, 0, len(ts))
	for _, f := range fs {
		if !c.dead[f.engine] {
			uuids = append(uuids, f.engine)
		}
	}
	c.mu.Unlock()
	var frames [][]byte
	if len(uuids) > 0 {
		// ipyparallel's DirectView requests carry empty metadata: the
		// controller takes the target list out, and every engine gets {}.
		md := map[string]any{protocol.MetaFanout: uuids}
		var err error
		frames, _, err = c.session.Build(wire.Out{Header: h, Metadata: md, Content: content, Buffers: bufs})
		if err != nil {
			return nil, err
		}
		if err := c.checkSize(msgType, frames); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, c.closeErr
	}
	// Registered and checked under one lock: an unregistration handled
	// before this fails none of these futures, one handled after fails
	// them all (an engine that died meanwhile may be in the request; the
	// controller drops its copy, as it does any request sent before the
	// client heard of a death).
	var dead []*future
	for _, f := range fs {
		c.futures[f.msgID] = f
		if c.dead[f.engine] {
			dead = append(dead, f)
		}
	}
	c.mu.Unlock()
	for _, f := range dead {
		f.engineDied(f.engineID)
	}
	if frames == nil {
		return fs, nil
	}
	if err := c.mux.Send(frames); err != nil {
		for _, f := range fs {
			c.forget(f)
		}
		return nil, err
	}
	if c.tun != nil {
		// Every copy's id names the one message: sent again after a
		// tunnel drop, it is either the first the controller sees or
		// refused by its replay guard.
		for _, f := range fs {
			c.tun.remember(f.msgID, c.mux, frames)
		}
	}
	return fs, nil
}
