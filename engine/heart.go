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
//
// While pings come and no registration is being retried, it sleeps until
// the moment the silence would matter (nextHeartCheck) instead of ticking:
// a 1 s ticker was a steady share of an idle engine's wake-ups. While the
// controller is silent or a registration_request waits for its answer it
// looks every check, as before; registerAgain pokes it so that a retry
// started elsewhere is followed at once.
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
	timer := time.NewTimer(check)
	defer timer.Stop()
	for {
		select {
		case <-e.closing:
			return
		case <-e.heartPoke:
			// Reset below needs no drain of the timer (Go 1.23).
		case <-timer.C:
		}
		silent := time.Since(time.Unix(0, e.lastPing.Load()))
		e.noticeSilence(silent)
		if silent > limit {
			e.log.Error("controller lost: no heartbeat within the controller timeout; unregistering and stopping",
				"silent", silent.Round(time.Millisecond), "timeout", limit)
			e.stop(fmt.Errorf("%w: no ping for %s", ErrControllerLost, silent.Round(time.Millisecond)))
			return
		}
		timer.Reset(e.nextHeartCheck(silent, limit, check))
	}
}

// nextHeartCheck is how long watchHeart may sleep after seeing silent.
// With pings arriving and nothing retried, nothing can happen before the
// silence reaches noticeSilence's gap or the limit, whichever is first,
// so it sleeps until then (just past it); each new ping moves that moment
// on, which the wake-up finds. Otherwise it looks every check.
func (e *engine) nextHeartCheck(silent, limit, check time.Duration) time.Duration {
	e.recon.mu.Lock()
	asking := e.recon.asking
	e.recon.mu.Unlock()
	if e.silenced || asking {
		return check
	}
	due := min(max(3*e.hbPeriod, time.Second), limit)
	return max(due-silent, 0) + time.Millisecond
}
