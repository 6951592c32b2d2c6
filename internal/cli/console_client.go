package cli

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/ipp-hpc/ipp"
)

// The ipp client as the console's consoleClient.

func (c ippClient) EngineList(ctx context.Context) ([]ipp.EngineInfo, error) {
	return c.c.Engines(ctx)
}

func (c ippClient) StartCell(ctx context.Context, code string, targets []int) (consoleCell, error) {
	ar, err := c.c.View(targets...).Execute(ctx, code, ipp.Silent(false))
	if err != nil {
		if errors.Is(err, ipp.ErrControllerLost) {
			return nil, fmt.Errorf("%w: %w", ErrNoCluster, err)
		}
		return nil, err
	}
	return &ippCell{ar: ar}, nil
}

// ippCell is a cell submitted with the ipp client.
type ippCell struct {
	ar *ipp.AsyncResult
}

func (c *ippCell) Outputs(ctx context.Context) iter.Seq[engineOutput] {
	return func(yield func(engineOutput) bool) {
		for o := range c.ar.Outputs(ctx) {
			if !yield(engineOutput{Engine: o.Engine, Stream: o.Stream, Text: o.Text}) {
				return
			}
		}
	}
}

func (c *ippCell) Running() []int { return c.ar.RunningEngines() }

func (c *ippCell) Interrupt(ctx context.Context) error { return c.ar.Interrupt(ctx) }

func (c *ippCell) Results(ctx context.Context) ([]ExecResult, error) {
	vals, err := c.ar.GetList(ctx)
	if errors.Is(err, ipp.ErrControllerLost) {
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
	engines := c.ar.EngineIDs()
	out := make([]ExecResult, len(engines))
	for i, id := range engines {
		r := ExecResult{Engine: id}
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
