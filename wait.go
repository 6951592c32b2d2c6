package ipp

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/ipp-hpc/ipp/internal/protocol"
)

// Progress selects whether a waiting call draws a progress bar.
type Progress int

const (
	// ProgressAuto draws a bar when the output is a terminal and
	// IPP_NONINTERACTIVE is not "1" (the default).
	ProgressAuto Progress = iota
	// ProgressOff never draws one.
	ProgressOff
	// ProgressOn always draws one.
	ProgressOn
)

// WaitOptions tune WaitForEngines and AsyncResult.WaitInteractive.
type WaitOptions struct {
	// Progress selects the progress bar; see ProgressAuto.
	Progress Progress
	// Output receives the bar; nil means os.Stderr.
	Output io.Writer
	// Status, when set, is asked every half second what the engines are
	// waiting for (a batch job's "job 12 PENDING (Resources)"): shown in
	// the bar on a terminal, printed as a line whenever it changes
	// otherwise.
	Status func() string
}

func waitOptions(opts []WaitOptions) WaitOptions {
	var o WaitOptions
	if len(opts) > 0 {
		o = opts[len(opts)-1]
	}
	if o.Output == nil {
		o.Output = os.Stderr
	}
	return o
}

// interactive decides whether to draw: batch jobs and pipes get no bar
// escape codes in their logs.
func (o WaitOptions) interactive() bool {
	switch o.Progress {
	case ProgressOff:
		return false
	case ProgressOn:
		return true
	}
	if os.Getenv(protocol.EnvNonInteractive) == "1" {
		return false
	}
	f, ok := o.Output.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// bar wraps an optional progress bar; a nil *bar ignores every call.
type bar struct{ pb *progressbar.ProgressBar }

func (o WaitOptions) newBar(max int, desc string) *bar {
	if !o.interactive() {
		return nil
	}
	return &bar{pb: progressbar.NewOptions(max,
		progressbar.OptionSetWriter(o.Output),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(o.Output) }),
	)}
}

func (b *bar) set(n int) {
	if b != nil {
		b.pb.Set(n)
	}
}

func (b *bar) describe(desc string) {
	if b != nil {
		b.pb.Describe(desc)
	}
}

func (b *bar) finish() {
	if b != nil {
		b.pb.Finish()
	}
}

func (b *bar) stop() {
	// Exit leaves the bar as it is and ends its line (onCompletion).
	if b != nil && !b.pb.IsFinished() {
		b.pb.Exit()
	}
}

// WaitForEngines waits until at least n engines are registered, drawing a
// progress bar on a terminal. Like ipyparallel it fails at once with an
// EngineError if an engine unregisters meanwhile: a crashing engine would
// otherwise turn into a silent wait until ctx ends.
func (c *Client) WaitForEngines(ctx context.Context, n int, opts ...WaitOptions) error {
	events := make(chan engineEvent, 64)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return c.closeErr
	}
	c.watchers[events] = struct{}{}
	have := len(c.engines)
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.watchers, events)
		c.mu.Unlock()
	}()
	if have >= n {
		return nil
	}
	b := waitOptions(opts).newBar(n, "engines")
	defer b.stop()
	b.set(have)
	// Notifications travel on a SUB socket and can be missed right after
	// connecting; asking the hub now and then repairs that.
	resync := time.NewTicker(time.Second)
	defer resync.Stop()
	o := waitOptions(opts)
	var statusTick <-chan time.Time
	lastStatus := ""
	showStatus := func() {
		if o.Status == nil {
			return
		}
		if st := o.Status(); st != lastStatus {
			lastStatus = st
			if b != nil {
				b.describe("engines [" + st + "]")
			} else if st != "" {
				fmt.Fprintln(o.Output, st)
			}
		}
	}
	if o.Status != nil {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		statusTick = t.C
		showStatus()
	}
	for {
		c.mu.Lock()
		have = len(c.engines)
		c.mu.Unlock()
		b.set(min(have, n))
		if have >= n {
			b.finish()
			return nil
		}
		select {
		case ev := <-events:
			if !ev.registered {
				return &RemoteError{
					Engine: ev.id, EngineUUID: ev.uuid, EName: "EngineError",
					EValue: fmt.Sprintf("engine %d unregistered while waiting for %d engines", ev.id, n),
				}
			}
		case <-resync.C:
			c.resync(ctx)
		case <-statusTick:
			showStatus()
		case <-ctx.Done():
			return fmt.Errorf("ipp: waiting for %d engines (%d registered): %w", n, have, ctx.Err())
		case <-c.done:
			return c.closeErr
		}
	}
}

// resync merges the hub's current engine list into ours.
func (c *Client) resync(ctx context.Context) {
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	msg, err := c.hubQuery(qctx, "connection_request", map[string]any{})
	if err != nil {
		return
	}
	var cr struct {
		Engines map[string]string `json:"engines"`
	}
	if msg.DecodeContent(&cr) == nil {
		c.mergeEngines(cr.Engines)
	}
}

// WaitInteractive waits like Wait, drawing a progress bar of completed
// requests on a terminal.
func (ar *AsyncResult) WaitInteractive(ctx context.Context, opts ...WaitOptions) error {
	b := waitOptions(opts).newBar(len(ar.futures), ar.method)
	defer b.stop()
	tick := make(chan struct{}, len(ar.futures))
	for _, f := range ar.futures {
		f.watch(func() { tick <- struct{}{} })
	}
	for done := 0; done < len(ar.futures); done++ {
		b.set(done)
		select {
		case <-tick:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b.set(len(ar.futures))
	b.finish()
	return nil
}
