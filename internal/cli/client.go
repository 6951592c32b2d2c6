package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strconv"
	"syscall"

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
	// Submit starts code on the targets (nil: all engines) and returns at
	// once with a handle that streams output and can interrupt the run.
	Submit(ctx context.Context, code string, targets []int) (ExecRun, error)
	// Signal sends a signal to the targets (nil: all engines) and waits for
	// their answers. sig is a name the engines know ("SIGINT", "INT") or a
	// number.
	Signal(ctx context.Context, sig string, targets []int) error
	// Close disconnects.
	Close() error
}

// ExecRun is code running on engines, as Client.Submit started it.
type ExecRun interface {
	// Outputs yields stdout and stderr chunks as they arrive and ends when
	// every engine is done (or ctx ends).
	Outputs(ctx context.Context) iter.Seq[ipp.Output]
	// Running lists the engines that have not answered yet.
	Running() []int
	// Interrupt sends SIGINT to the engines still running the code and
	// waits for them to acknowledge it.
	Interrupt(ctx context.Context) error
	// Abort asks the engines to drop the request if it has not started.
	Abort(ctx context.Context) error
	// Results waits for every engine (see Client.Execute for failed).
	Results(ctx context.Context, failed func(engine int, err *RemoteError)) ([]ExecResult, error)
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
	// OutputIncomplete: the engine's end-of-output status never arrived
	// (see ipp.WithOutputGrace), so some of its output may be missing.
	OutputIncomplete bool
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
// location looks like this machine. The client logs at the command's
// --log-level.
func (f *Factory) connectIPP(ctx context.Context, clientFile string) (Client, error) {
	opts := []ipp.Option{ipp.WithLogger(f.Logger())}
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
	run, err := c.Submit(ctx, code, targets)
	if err != nil {
		return nil, err
	}
	return run.Results(ctx, onFail)
}

func (c ippClient) Submit(ctx context.Context, code string, targets []int) (ExecRun, error) {
	ar, err := c.c.View(targets...).Execute(ctx, code, ipp.Silent(false))
	if err != nil {
		return nil, err
	}
	return ippRun{ar}, nil
}

func (c ippClient) Signal(ctx context.Context, sig string, targets []int) error {
	if n, err := strconv.Atoi(sig); err == nil {
		return c.c.SendSignal(ctx, syscall.Signal(n), targets...)
	}
	return c.c.SendSignalName(ctx, sig, targets...)
}

// ippRun is an ExecRun on an ipp.AsyncResult.
type ippRun struct{ ar *ipp.AsyncResult }

func (r ippRun) Outputs(ctx context.Context) iter.Seq[ipp.Output] { return r.ar.Outputs(ctx) }
func (r ippRun) Running() []int                                   { return r.ar.RunningEngines() }
func (r ippRun) Interrupt(ctx context.Context) error              { return r.ar.Interrupt(ctx) }
func (r ippRun) Abort(ctx context.Context) error                  { return r.ar.Abort(ctx) }

func (r ippRun) Results(ctx context.Context, onFail func(int, *RemoteError)) ([]ExecResult, error) {
	ar := r.ar
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
	engines, stdout, stderr, md := ar.EngineIDs(), ar.Stdout(), ar.Stderr(), ar.Metadata()
	out := make([]ExecResult, len(engines))
	for i, id := range engines {
		r := ExecResult{Engine: id, Stdout: stdout[i], Stderr: stderr[i]}
		r.OutputIncomplete = i < len(md) && !md[i].OutputComplete
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
