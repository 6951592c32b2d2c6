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
)

// WithKeepalive tunes how the client notices a controller that died
// without a word (SIGKILL, lost host or network). While nothing arrives
// from the controller, the client sends it a cheap query every interval;
// after misses consecutive probes with nothing at all received in between
// (any message on any socket counts, so a controller busy relaying work is
// never taken for dead), the client closes and every outstanding request
// fails with an error wrapping ErrControllerLost. The default, 1 s and 3
// misses, reports a dead controller within about 3 to 5 s. An interval or
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
			if holding {
				holding = false
				c.reconnected("the controller answered again after " + (now - heard).Round(100*time.Millisecond).String())
			}
		}
		if missed >= misses {
			var detail string
			if c.tun != nil {
				var hold bool
				if hold, detail = c.tunnelHold(now - heard); hold {
					if !holding {
						c.log.Warn("controller silent; waiting for it to come back", "ssh", c.tun.dest, "silent", (now - heard).Round(100*time.Millisecond), "limit", c.tun.timeout)
					}
					holding = true
					probe = now
					c.sendProbe()
					c.probes.Add(1)
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
		probe = now
		c.sendProbe()
		c.probes.Add(1)
	}
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
