package ipp

import (
	"fmt"
	"time"

	"github.com/ipp-hpc/ipp/internal/wire"
)

// The keepalive exists because ZeroMQ hides a dead peer: a DEALER whose
// controller was SIGKILLed just reconnects in the background forever, and
// a request waiting for its reply would wait forever too. ipyparallel's
// hub has no client heartbeat, so the client probes with an ordinary query
// that every hub (ours, Python's) answers cheaply.
const (
	// keepaliveProbe is the probe's msg_type: a status-only result_request
	// for no msg_ids. An unknown query would do as well for the answer
	// (hub_error), but Python's hub logs every unknown query as an error
	// with a traceback.
	keepaliveProbe = "result_request"

	defaultKeepaliveInterval = time.Second
	defaultKeepaliveMisses   = 3
	// defaultBusyLimit bounds how long a silent controller whose process
	// runs on this host is waited for (busyHold): a registration storm
	// lasts tens of seconds, a hung controller forever.
	defaultBusyLimit = 2 * time.Minute
)

// WithKeepalive tunes how the client notices a controller that died
// without a word (SIGKILL, lost host or network). While nothing arrives
// from the controller, the client sends it a cheap query every interval;
// after misses consecutive probes with nothing at all received in between
// (any message on any socket counts, so a controller busy relaying work is
// never taken for dead), the client closes and every outstanding request
// fails with an error wrapping ErrControllerLost. The default, 1 s and 3
// misses, reports a dead controller within about 3 to 5 s. A controller of
// ours on the same host names its process in the connection file: while
// that process runs, a silent controller is taken for busy and waited for,
// up to 2 minutes of silence. An interval or
// misses <= 0 turns the keepalive off (requests then wait for their
// context, as with ipyparallel).
func WithKeepalive(interval time.Duration, misses int) Option {
	return func(c *clientConfig) {
		c.keepaliveInterval, c.keepaliveMisses = interval, misses
	}
}

// heardNow records that a message from the controller just arrived.
func (c *Client) heardNow() { c.heard.Store(int64(time.Since(c.born))) }

// keepalive probes the hub while it is silent and shuts the client down
// with ErrControllerLost after misses probes that nothing followed.
func (c *Client) keepalive(interval time.Duration, misses int) {
	defer c.wg.Done()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	// probe is when the outstanding probe was sent, or -1 when none is:
	// a probe is only needed after an interval of silence.
	probe := time.Duration(-1)
	missed := 0
	// holding: the misses were reached, but an ssh tunnel is coming back
	// (tunnelHold), so the client waits instead of closing.
	holding := false
	// busy: the misses were reached, but the controller's process still
	// runs on this host (busyHold), so the client waits for it.
	busy := false
	var busySince time.Duration // heard when busy began
	for {
		select {
		case <-c.done:
			return
		case <-tick.C:
		}
		now := time.Since(c.born)
		heard := time.Duration(c.heard.Load())
		if probe >= 0 && heard < probe {
			missed++
		} else {
			missed = 0
			if busy {
				busy = false
				c.log.Info("the controller answers again", "silent", (heard - busySince).Round(100*time.Millisecond))
			}
			if holding {
				holding = false
				c.reconnected("the controller answered again after " + (now - heard).Round(100*time.Millisecond).String())
			}
		}
		if missed >= misses {
			hold, detail := c.busyHold(now - heard)
			if hold {
				if !busy {
					busySince = heard
					c.log.Warn("controller silent but its process runs; waiting for it", "pid", c.ctlProc.PID, "silent", (now - heard).Round(100*time.Millisecond), "limit", c.cfg.busyLimit)
				}
				busy = true
				probe = c.probeAt(now)
				continue
			}
			if c.tun != nil && detail == "" {
				if hold, detail = c.tunnelHold(now - heard); hold {
					if !holding {
						c.log.Warn("controller silent; waiting for it to come back", "ssh", c.tun.dest, "silent", (now - heard).Round(100*time.Millisecond), "limit", c.tun.timeout)
					}
					holding = true
					probe = c.probeAt(now)
					continue
				}
			}
			err := fmt.Errorf("%w: the controller at %s stopped answering: nothing received for %v (%d keepalive probes, %v apart, unanswered)%s",
				ErrControllerLost, c.controllerAddr(), (now - heard).Round(100*time.Millisecond), missed, interval, detail)
			c.log.Warn("controller lost", "err", err)
			// shutdown waits for this goroutine, so it runs on its own.
			go c.shutdown(err)
			return
		}
		if missed == 0 && now-heard < interval {
			probe = -1
			continue
		}
		probe = c.probeAt(now)
	}
}

// probeAt sends a keepalive probe and returns now, the time it was sent.
func (c *Client) probeAt(now time.Duration) time.Duration {
	c.sendProbe()
	c.probes.Add(1)
	return now
}

// busyHold decides whether a controller that missed its probes is busy
// rather than lost: its process (from the connection file) runs on this
// host, and it has been silent for less than the busy limit. A thousand
// engines registering at once on a two-core node keep a controller from
// answering for longer than the misses allow, and it is not dead. detail
// explains a refusal that the error should carry; it is empty when the
// process cannot be checked (another host, no /proc) or is gone, where the
// keepalive decides alone (or the restart recovery, which takes a gone
// process for a controller being restarted).
func (c *Client) busyHold(silence time.Duration) (hold bool, detail string) {
	if c.ctlProc == nil || c.cfg.busyLimit <= 0 || (c.tun != nil && c.tun.t != nil) || !c.ctlProc.Running() {
		return false, ""
	}
	if silence < c.cfg.busyLimit {
		return true, ""
	}
	return false, fmt.Sprintf("; its process %d still runs but has not answered for %v (hung?)", c.ctlProc.PID, c.cfg.busyLimit)
}

// sendProbe sends one keepalive query. Its answer is matched by msg_type
// in serveReplies and otherwise ignored; a failure to send is left to the
// next probe (Send only queues, and fails only on a closed socket).
func (c *Client) sendProbe() {
	frames, _, err := c.session.Build(wire.Out{MsgType: keepaliveProbe, Content: map[string]any{"msg_ids": []string{}, "status_only": true}})
	if err != nil {
		c.log.Warn("building keepalive probe", "err", err)
		return
	}
	if err := c.query.Send(frames); err != nil {
		c.log.Debug("sending keepalive probe", "err", err)
	}
}
