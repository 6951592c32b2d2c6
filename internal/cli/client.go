package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ipp-hpc/ipp"
)

// Client is what the commands need from a cluster client.
type Client interface {
	// IDs lists the registered engines.
	IDs() []int
	// WaitForEngines waits until n engines are registered, drawing a
	// progress bar on out when it is a terminal; status, when not nil,
	// says what the engines wait for (shown in the bar, or printed as a
	// line when it changes).
	WaitForEngines(ctx context.Context, n int, out io.Writer, status func() string) error
	// Execute runs code on the targets (nil: all engines) and returns one
	// result per engine, in engine order. failed, when not nil, is called
	// as soon as an engine's run fails (an engine that died is known long
	// before the others finish); its result is still returned.
	Execute(ctx context.Context, code string, targets []int, failed func(engine int, err *RemoteError)) ([]ExecResult, error)
	// Close disconnects.
	Close() error
}

// ExecResult is one engine's outcome of Execute.
type ExecResult struct {
	Engine         int
	ExecutionCount int
	Stdout, Stderr string
	// Result is the text of the value of a trailing expression, if any.
	Result string
	// Err is set when the code failed on this engine.
	Err *RemoteError
}

// RemoteError is an error raised on an engine.
type RemoteError struct {
	Name, Value string
	Traceback   []string
}

// connectIPP is Factory.Connect for the real program: the ipp client.
// A client file that `start --ssh` (or exec --ssh) copied from another
// host is always reached through that host: the tunnel is forced, not left
// to the file's ssh field, which a client skips when the controller's
// location looks like this machine.
func connectIPP(ctx context.Context, clientFile string) (Client, error) {
	var opts []ipp.Option
	if host := remoteHostOf(clientFile); host != "" {
		opts = append(opts, ipp.WithSSH(host))
	}
	c, err := ipp.Connect(ctx, clientFile, opts...)
	if err != nil {
		return nil, err
	}
	return ippClient{c}, nil
}

type ippClient struct{ c *ipp.Client }

func (c ippClient) IDs() []int   { return c.c.IDs() }
func (c ippClient) Close() error { return c.c.Close() }

func (c ippClient) WaitForEngines(ctx context.Context, n int, out io.Writer, status func() string) error {
	return c.c.WaitForEngines(ctx, n, ipp.WaitOptions{Output: out, Status: status})
}

func (c ippClient) Execute(ctx context.Context, code string, targets []int, onFail func(int, *RemoteError)) ([]ExecResult, error) {
	ar, err := c.c.View(targets...).Execute(ctx, code, ipp.Silent(false))
	if err != nil {
		return nil, err
	}
	if onFail != nil {
		ids := ar.EngineIDs()
		for i, err := range ar.Arrivals(ctx) {
			var re *ipp.RemoteError
			if errors.As(err, &re) {
				onFail(ids[i], &RemoteError{Name: re.EName, Value: re.EValue, Traceback: re.Traceback})
			}
		}
	}
	vals, err := ar.GetList(ctx)
	if errors.Is(err, ipp.ErrControllerLost) {
		// The cluster stopped running under us: the same exit code as
		// finding it stopped.
		return nil, fmt.Errorf("%w: %w", ErrNoCluster, err)
	}
	var ce *ipp.CompositeError
	var re *ipp.RemoteError
	failed := map[int]*ipp.RemoteError{}
	switch {
	case errors.As(err, &ce):
		for _, e := range ce.Errors {
			failed[e.Engine] = e
		}
	case errors.As(err, &re):
		failed[re.Engine] = re
	case err != nil:
		return nil, err
	}
	engines, stdout, stderr := ar.EngineIDs(), ar.Stdout(), ar.Stderr()
	out := make([]ExecResult, len(engines))
	for i, id := range engines {
		r := ExecResult{Engine: id, Stdout: stdout[i], Stderr: stderr[i]}
		if i < len(vals) {
			if rep, ok := vals[i].(*ipp.ExecuteReply); ok && rep != nil {
				r.ExecutionCount = rep.ExecutionCount
				r.Result = rep.Text()
			}
		}
		if e := failed[id]; e != nil {
			r.Err = &RemoteError{Name: e.EName, Value: e.EValue, Traceback: e.Traceback}
		}
		out[i] = r
	}
	return out, nil
}
