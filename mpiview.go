package ipp

import (
	"context"
	"fmt"
	"slices"

	"github.com/ipp-hpc/ipp/internal/protocol"
)

// The collectives of protocol.MPI.
const (
	mpiAllreduce = "allreduce"
	mpiReduce    = "reduce"
	mpiBcast     = "bcast"
	mpiGather    = "gather"
	mpiAllgather = "allgather"
	mpiScatter   = "scatter"
	mpiBarrier   = "barrier"
)

// MPIAllreduce reduces the variable src of every engine with op ("sum",
// "prod", "min", "max", "land", "lor", "band", "bor") and stores the result
// as dst on every engine. src may be a float64, int or int64, or a
// []float64, []float32, []int64, []int32 or []byte of one length on every
// engine. The view must hold exactly the engines of one MPI world (see
// MPIBarrier); Get returns nil once every engine is done.
func (v *DirectView) MPIAllreduce(ctx context.Context, src, dst, op string) (*AsyncResult, error) {
	return v.mpiCall(ctx, mpiAllreduce, src, dst, op, 0)
}

// MPIReduce reduces src of every engine with op into dst on the engine of
// MPI rank root. Get returns that value (the root's result alone).
func (v *DirectView) MPIReduce(ctx context.Context, src, dst, op string, root int) (*AsyncResult, error) {
	return v.mpiCall(ctx, mpiReduce, src, dst, op, root)
}

// MPIBcast copies the variable name of the engine of MPI rank root to
// every engine of its world; other engines need not have it beforehand.
func (v *DirectView) MPIBcast(ctx context.Context, name string, root int) (*AsyncResult, error) {
	return v.mpiCall(ctx, mpiBcast, name, name, "", root)
}

// MPIGather concatenates src of every engine, in rank order, into dst on
// the engine of MPI rank root (scalars gather into a slice). Get returns
// the gathered value.
func (v *DirectView) MPIGather(ctx context.Context, src, dst string, root int) (*AsyncResult, error) {
	return v.mpiCall(ctx, mpiGather, src, dst, "", root)
}

// MPIAllgather is MPIGather with the result stored on every engine; Get
// returns nil.
func (v *DirectView) MPIAllgather(ctx context.Context, src, dst string) (*AsyncResult, error) {
	return v.mpiCall(ctx, mpiAllgather, src, dst, "", 0)
}

// MPIScatter splits the slice src of the engine of MPI rank root into as
// many equal consecutive parts as the world has ranks and stores part i as
// dst on rank i.
func (v *DirectView) MPIScatter(ctx context.Context, src, dst string, root int) (*AsyncResult, error) {
	return v.mpiCall(ctx, mpiScatter, src, dst, "", root)
}

// MPIBarrier runs MPI_Barrier on every engine of the view.
//
// Like every MPI collective method it first asks the hub for the engines'
// MPI placement and refuses, before sending anything, a view that is not
// exactly all ranks of one MPI world: a collective that some rank never
// joins would block the others forever.
func (v *DirectView) MPIBarrier(ctx context.Context) (*AsyncResult, error) {
	return v.mpiCall(ctx, mpiBarrier, "", "", "", 0)
}

// mpiCall checks the view and sends protocol.MPI to its engines. For
// reduce and gather the result's Get gives the root engine's value.
func (v *DirectView) mpiCall(ctx context.Context, coll, src, dst, op string, root int) (*AsyncResult, error) {
	targets, err := v.Targets()
	if err != nil {
		return nil, err
	}
	infos, err := v.c.Engines(ctx)
	if err != nil {
		return nil, err
	}
	byRank, err := checkMPIView(targets, infos)
	if err != nil {
		return nil, err
	}
	if coll != mpiAllreduce && coll != mpiAllgather && coll != mpiBarrier && (root < 0 || root >= len(byRank)) {
		return nil, fmt.Errorf("ipp: MPI %s: root %d is not a rank of the world (size %d)", coll, root, len(byRank))
	}
	// The view's own targets are what was checked; a fresh view on them
	// keeps the request from reaching an engine that registered since.
	ar, err := v.c.View(targets...).Apply(ctx, protocol.MPI, coll, src, dst, op, root)
	if err != nil {
		return nil, err
	}
	if coll == mpiReduce || coll == mpiGather {
		ar.pick = slices.Index(targets, byRank[root]) + 1
	}
	return ar, nil
}

// MPIWorld returns the registered engines ordered by MPI rank when together
// they are exactly the ranks of one MPI world, and otherwise an error that
// says what is missing or extra (non-MPI engines, a second MPI job, a
// rank not registered yet). Programs that drive MPI engines check their
// cluster with it before they start.
func (c *Client) MPIWorld(ctx context.Context) ([]EngineInfo, error) {
	infos, err := c.Engines(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]int, len(infos))
	byID := make(map[int]EngineInfo, len(infos))
	for i, e := range infos {
		ids[i], byID[e.ID] = e.ID, e
	}
	byRank, err := checkMPIView(ids, infos)
	if err != nil {
		return nil, err
	}
	out := make([]EngineInfo, len(byRank))
	for r, id := range byRank {
		out[r] = byID[id]
	}
	return out, nil
}

// checkMPIView accepts targets (engine ids) only when they are exactly
// ranks 0..size-1 of one MPI world according to infos, and returns the
// engine id of each rank.
func checkMPIView(targets []int, infos []EngineInfo) ([]int, error) {
	if len(targets) == 0 {
		return nil, fmt.Errorf("ipp: MPI collective refused: the view has no engines")
	}
	byID := make(map[int]EngineInfo, len(infos))
	for _, e := range infos {
		byID[e.ID] = e
	}
	var world string
	size := -1
	ranks := make([]int, len(targets))
	for i, id := range targets {
		e, ok := byID[id]
		switch {
		case !ok:
			return nil, fmt.Errorf("ipp: MPI collective refused: engine %d is not registered", id)
		case e.MPISize <= 0:
			return nil, fmt.Errorf("ipp: MPI collective refused: engine %d is not an MPI rank (start engines under mpiexec, e.g. ipcluster start --engines mpiexec -n 4)", id)
		case e.MPIWorld == "":
			return nil, fmt.Errorf("ipp: MPI collective refused: engine %d does not report its MPI world (an engine older than the client?)", id)
		case size < 0:
			world, size = e.MPIWorld, e.MPISize
		case e.MPIWorld != world || e.MPISize != size:
			return nil, fmt.Errorf("ipp: MPI collective refused: the view mixes MPI worlds (engine %d is in world %s of size %d, engine %d in world %s of size %d); a collective needs all ranks of one world",
				targets[0], world, size, id, e.MPIWorld, e.MPISize)
		}
		ranks[i] = e.MPIRank
	}
	byRank := make([]int, size)
	seen := make([]bool, size)
	for i, r := range ranks {
		if r < 0 || r >= size || seen[r] {
			return nil, fmt.Errorf("ipp: MPI collective refused: the view has engines %v with ranks %v of world %s (size %d); a collective needs each rank once",
				targets, ranks, world, size)
		}
		seen[r], byRank[r] = true, targets[i]
	}
	if len(ranks) != size {
		return nil, fmt.Errorf("ipp: MPI collective refused: the view has engines %v (ranks %v) of world %s (size %d); a collective needs all %d ranks of one world, or it would deadlock",
			targets, ranks, world, size, size)
	}
	return byRank, nil
}
