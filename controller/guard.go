package controller

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ipp-hpc/ipp/internal/wire"
)

// Every port faces other users of a shared login node, who can read the
// port numbers with `ss -ltn`. So every message is verified (signature and
// replay guard) before anything in it is parsed, counted or forwarded, and
// every reply is checked against the request it claims to answer. What is
// refused is logged through a rejectLog, so an attacker cannot fill the
// disk or drown the real warnings.

// rejectEvery is how often one (port, peer, reason) may be logged.
const rejectEvery = 10 * time.Second

// maxRejectKeys bounds the rate limiter's memory: an attacker cycling
// through identities resets it instead of growing it.
const maxRejectKeys = 4096

// rejectLog logs refused messages at most once per rejectEvery for each
// port, peer and reason, with the number suppressed since the last line.
type rejectLog struct {
	c  *Controller
	mu sync.Mutex
	// seen maps port/peer/reason to when it was last logged and how many
	// were suppressed since.
	seen  map[string]*rejectCount
	total uint64
}

type rejectCount struct {
	last       time.Time
	suppressed int
}

func newRejectLog(c *Controller) *rejectLog {
	return &rejectLog{c: c, seen: map[string]*rejectCount{}}
}

// reject records that a message from peer on port was refused because of
// err (or why, when err is nil).
func (r *rejectLog) reject(port string, peer []byte, why string) {
	key := port + "\x00" + string(peer) + "\x00" + why
	now := time.Now()
	r.mu.Lock()
	r.total++
	rc, ok := r.seen[key]
	if ok && now.Sub(rc.last) < rejectEvery {
		rc.suppressed++
		r.mu.Unlock()
		return
	}
	if !ok {
		if len(r.seen) >= maxRejectKeys {
			r.seen = map[string]*rejectCount{}
		}
		rc = &rejectCount{}
		r.seen[key] = rc
	}
	suppressed := rc.suppressed
	rc.last, rc.suppressed = now, 0
	r.mu.Unlock()
	args := []any{"port", port, "peer", printable(peer), "why", why}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	r.c.log.Warn("refused message", args...)
}

// count returns how many messages were refused in all.
func (r *rejectLog) count() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// printable shows a routing identity: uuids as they are, anything else
// (libzmq's generated 5-byte ids, attacker bytes) quoted and cut short.
func printable(b []byte) string {
	if len(b) > 64 {
		b = b[:64]
	}
	s := string(b)
	for _, r := range s {
		if r < 0x20 || r > 0x7e {
			return fmt.Sprintf("%x", b)
		}
	}
	return strconv.Quote(s)
}

// verify checks signature and replay guard of a message read on port and
// decodes its headers; what fails is logged and nil returned. The frames
// are not modified, so relays still forward them byte for byte.
func (c *Controller) verify(port string, frames [][]byte) *wire.Message {
	msg, err := c.session.Parse(frames)
	if err != nil {
		var peer []byte
		if len(frames) > 0 {
			peer = frames[0]
		}
		c.rejects.reject(port, peer, err.Error())
		return nil
	}
	return msg
}

// frameBytes is the size of a message, or of a record's buffers: all
// its frames.
func frameBytes(frames [][]byte) int64 {
	n := int64(0)
	for _, f := range frames {
		n += int64(len(f))
	}
	return n
}

// tooBig tells whether a message of n bytes is larger than the configured
// maximum. The transport already drops any single frame above it; this
// catches many frames that add up.
func (c *Controller) tooBig(n int64) bool { return n > c.cfg.MaxMessageSize }
