package ipp

import (
	"fmt"

	json "github.com/goccy/go-json"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// coalescedMetadata is what a combined reply's metadata tells us.
type coalescedMetadata struct {
	IsCoalescing  bool                     `json:"is_coalescing"`
	OriginalMsgID string                   `json:"original_msg_id"`
	Targets       [][2]any                 `json:"broadcast_targets"`
	Parts         []protocol.CoalescedPart `json:"coalesced"`
}

// takeCoalesced hands a coalescing broadcast's combined reply to the
// per-engine futures of its request and reports whether msg was one. Only
// while such requests are outstanding is any metadata decoded here.
func (c *Client) takeCoalesced(msg *wire.Message) bool {
	c.mu.Lock()
	n := len(c.coalesced)
	c.mu.Unlock()
	if n == 0 {
		return false
	}
	var md coalescedMetadata
	if json.Unmarshal(msg.Metadata, &md) != nil || !md.IsCoalescing || md.OriginalMsgID == "" {
		return false
	}
	c.mu.Lock()
	futs, ok := c.coalesced[md.OriginalMsgID]
	delete(c.coalesced, md.OriginalMsgID)
	c.mu.Unlock()
	if !ok {
		c.log.Debug("combined reply for unknown request", "original_msg_id", md.OriginalMsgID)
		return true
	}
	byUUID := make(map[string]*future, len(futs))
	for _, f := range futs {
		byUUID[f.engine] = f
	}
	if md.Parts == nil {
		c.splitForeign(msg, futs)
		return true
	}
	bufs := msg.Buffers
	for _, p := range md.Parts {
		f := byUUID[p.EngineUUID]
		if p.Buffers < 0 || p.Buffers > len(bufs) {
			c.log.Warn("combined reply with inconsistent buffer counts", "original_msg_id", md.OriginalMsgID)
			p.Buffers = len(bufs)
		}
		mine := bufs[:p.Buffers:p.Buffers]
		bufs = bufs[p.Buffers:]
		if f == nil {
			continue
		}
		delete(byUUID, p.EngineUUID)
		if p.Died {
			f.engineDied(p.EngineID)
			continue
		}
		c.handleReply(f, partMessage(msg, f, p, mine))
	}
	for _, f := range byUUID {
		f.fail(fmt.Errorf("ipp: the combined reply to %s has no part for engine %d", md.OriginalMsgID, f.engineID))
	}
	return true
}

// partMessage is the reply one engine would have sent for its copy.
func partMessage(msg *wire.Message, f *future, p protocol.CoalescedPart, bufs [][]byte) *wire.Message {
	m := *msg
	m.Parent.MsgID = f.msgID
	md := map[string]any{}
	for k, v := range p.Metadata {
		md[k] = v
	}
	md["engine"], md["status"] = p.EngineUUID, p.Status
	m.Metadata, _ = json.Marshal(md)
	content := p.Content
	if content == nil {
		content = map[string]any{"status": p.Status}
	}
	m.Content, _ = json.Marshal(content)
	m.Buffers = bufs
	m.Idents = nil
	return &m
}

// splitForeign takes apart the combined reply of a controller that does
// not say what each engine answered (ipyparallel's: the last reply's
// content, every buffer concatenated). An error is every engine's; Go
// results split only when each engine sent as many frames as the last.
func (c *Client) splitForeign(msg *wire.Message, futs []*future) {
	var rc replyContent
	_ = json.Unmarshal(msg.Content, &rc)
	per := -1
	if rc.Go != nil && rc.Go.Frames*len(futs) == len(msg.Buffers) {
		per = rc.Go.Frames
	}
	for i, f := range futs {
		m := *msg
		m.Parent.MsgID = f.msgID
		m.Idents = nil
		m.Metadata, _ = json.Marshal(map[string]any{"engine": f.engine})
		switch {
		case rc.Status != "ok":
		case per >= 0:
			m.Buffers = msg.Buffers[i*per : (i+1)*per]
		default:
			f.fail(fmt.Errorf("ipp: the controller's combined reply cannot be split into the engines' results"))
			continue
		}
		c.handleReply(f, &m)
	}
}

// dropCoalescedLocked forgets coalescing requests whose futures are all
// finished (their combined reply may never come: a Python controller waits
// forever for a dead engine). c.mu is held.
func (c *Client) dropCoalescedLocked() {
	for id, futs := range c.coalesced {
		done := true
		for _, f := range futs {
			if !f.isDone() {
				done = false
				break
			}
		}
		if done {
			delete(c.coalesced, id)
		}
	}
}
