package engine

import (
	"errors"
	"fmt"
	"time"

	"github.com/ipp-hpc/ipp/internal/transport"
)

// heart echoes every heartbeat ping back to the controller at once, byte
// for byte, from the DEALER whose identity tells the controller who is
// alive (spec §4.4). It runs on its own goroutine so that a long request
// never delays a pong.
func (e *engine) heart() {
	for frames := range e.hbPing.Messages() {
		e.lastPing.Store(time.Now().UnixNano())
		e.pings.Add(1)
		if err := e.hbPong.Send(frames); err != nil && !errors.Is(err, transport.ErrClosed) {
			e.log.Warn("cannot send heartbeat pong", "err", err)
		}
	}
}

// heartbeatTimeout is how long without pings means the controller is gone.
func (e *engine) heartbeatTimeout() time.Duration {
	if e.cfg.HeartbeatTimeout != 0 {
		return e.cfg.HeartbeatTimeout
	}
	return 50 * (e.hbPeriod + 500*time.Millisecond)
}

// watchHeart stops the engine when pings stop: a controller that is gone
// will never send shutdown_request, and an orphaned engine would otherwise
// hold its node forever.
func (e *engine) watchHeart() {
	limit := e.heartbeatTimeout()
	check := limit / 10
	if limit < 0 {
		// Never give up, but still notice a restarted controller.
		limit, check = time.Duration(1<<63-1), time.Second
	}
	if check > time.Second {
		check = time.Second
	}
	if check < time.Millisecond {
		check = time.Millisecond
	}
	ticker := time.NewTicker(check)
	defer ticker.Stop()
	for {
		select {
		case <-e.closing:
			return
		case <-ticker.C:
		}
		silent := time.Since(time.Unix(0, e.lastPing.Load()))
		e.noticeSilence(silent)
		if silent > limit {
			e.log.Error("controller lost: no heartbeat within the controller timeout; unregistering and stopping",
				"silent", silent.Round(time.Millisecond), "timeout", limit)
			e.stop(fmt.Errorf("%w: no ping for %s", ErrControllerLost, silent.Round(time.Millisecond)))
			return
		}
	}
}
