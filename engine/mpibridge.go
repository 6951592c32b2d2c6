package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/mpi"
)

// The collectives protocol.MPI runs.
const (
	collAllreduce = "allreduce"
	collReduce    = "reduce"
	collBcast     = "bcast"
	collGather    = "gather"
	collAllgather = "allgather"
	collScatter   = "scatter"
	collBarrier   = "barrier"
)

// mpiKind is the type of a value a collective moves. It travels between
// ranks in the header exchange, so its values must not change.
type mpiKind int64

const (
	// kindNone: this rank has no usable value (its own error says why).
	kindNone mpiKind = iota
	kindFloat64
	kindInt
	kindInt64
	kindFloat64s
	kindFloat32s
	kindInt64s
	kindInt32s
	kindBytes
)

// scalar reports whether k is a single number (moved as a 1-element slice).
func (k mpiKind) scalar() bool { return k == kindFloat64 || k == kindInt || k == kindInt64 }

func (k mpiKind) String() string {
	return [...]string{"no value", "float64", "int", "int64", "[]float64", "[]float32", "[]int64", "[]int32", "[]byte"}[k]
}

// mpiOps maps reduction operator names to package mpi's operators.
var mpiOps = map[string]mpi.Op{
	"sum": mpi.Sum, "prod": mpi.Prod, "min": mpi.Min, "max": mpi.Max,
	"land": mpi.LAnd, "lor": mpi.LOr, "band": mpi.BAnd, "bor": mpi.BOr,
}

// mpiBuffer copies v into a buffer package mpi accepts. It copies so that
// the collective never writes into a namespace value and dst never
// aliases src.
func mpiBuffer(v any) (buf any, k mpiKind, n int, err error) {
	switch x := v.(type) {
	case float64:
		return []float64{x}, kindFloat64, 1, nil
	case int:
		return []int64{int64(x)}, kindInt, 1, nil
	case int64:
		return []int64{x}, kindInt64, 1, nil
	case []float64:
		return slices.Clone(x), kindFloat64s, len(x), nil
	case []float32:
		return slices.Clone(x), kindFloat32s, len(x), nil
	case []int64:
		return slices.Clone(x), kindInt64s, len(x), nil
	case []int32:
		return slices.Clone(x), kindInt32s, len(x), nil
	case []byte:
		return slices.Clone(x), kindBytes, len(x), nil
	}
	return nil, kindNone, 0, fmt.Errorf("a %T; MPI collectives take float64, int, int64, []float64, []float32, []int64, []int32 or []byte", v)
}

// newMPIBuffer allocates a buffer of n elements for values of kind k.
func newMPIBuffer(k mpiKind, n int) any {
	switch k {
	case kindFloat64, kindFloat64s:
		return make([]float64, n)
	case kindInt, kindInt64, kindInt64s:
		return make([]int64, n)
	case kindFloat32s:
		return make([]float32, n)
	case kindInt32s:
		return make([]int32, n)
	case kindBytes:
		return make([]byte, n)
	}
	return nil
}

// fromMPIBuffer turns a received buffer back into a namespace value: a
// scalar kind gives a scalar, or with many (gather, allgather) a slice of
// that scalar type, so an int gathers into an []int.
func fromMPIBuffer(buf any, k mpiKind, many bool) any {
	if !k.scalar() {
		return buf
	}
	switch k {
	case kindFloat64:
		if many {
			return buf
		}
		return buf.([]float64)[0]
	case kindInt64:
		if many {
			return buf
		}
		return buf.([]int64)[0]
	}
	xs := buf.([]int64)
	if !many {
		return int(xs[0])
	}
	out := make([]int, len(xs))
	for i, x := range xs {
		out[i] = int(x)
	}
	return out
}

// mpiError is the error a rank reports for a collective.
func mpiError(name, format string, args ...any) error {
	return &remoteError{name: name, msg: protocol.MPI + ": " + fmt.Sprintf(format, args...)}
}

// mpiCollective serves protocol.MPI. Every rank of the world gets the
// same call; whatever can go wrong on one rank only (a missing variable,
// another type or length) is found by a header exchange that every rank
// takes part in, so all ranks fail together instead of some of them
// waiting forever in the data collective.
func (e *engine) mpiCollective(args []any) (any, error) {
	if len(args) != 5 {
		return nil, mpiError("TypeError", "takes 5 arguments (collective, src, dst, op, root), got %d", len(args))
	}
	coll, err := argAs[string](protocol.MPI, args, 0, 5)
	if err != nil {
		return nil, err
	}
	src, err := argAs[string](protocol.MPI, args, 1, 5)
	if err != nil {
		return nil, err
	}
	dst, err := argAs[string](protocol.MPI, args, 2, 5)
	if err != nil {
		return nil, err
	}
	opName, err := argAs[string](protocol.MPI, args, 3, 5)
	if err != nil {
		return nil, err
	}
	root, err := argAs[int](protocol.MPI, args, 4, 5)
	if err != nil {
		return nil, err
	}
	// Everything up to the header exchange depends only on the arguments
	// and the world, identical on every rank, so failing here fails
	// everywhere.
	if !mpi.Available() {
		return nil, mpiError("MPIError", "this engine was built without MPI (go build -tags ompi or -tags mpich)")
	}
	rank, size := mpi.Rank(), mpi.Size()
	if rank < 0 {
		return nil, mpiError("MPIError", "engine %d is not an MPI rank (start engines under mpiexec or with --mpi)", e.id)
	}
	var op mpi.Op
	switch coll {
	case collAllreduce, collReduce:
		var ok bool
		if op, ok = mpiOps[strings.ToLower(opName)]; !ok {
			return nil, mpiError("ValueError", "unknown reduction operator %q (want sum, prod, min, max, land, lor, band or bor)", opName)
		}
	case collBcast, collGather, collAllgather, collScatter:
	case collBarrier:
		if err := mpi.Barrier(); err != nil {
			return nil, mpiError("MPIError", "barrier: %v", err)
		}
		return nil, nil
	default:
		return nil, mpiError("ValueError", "unknown collective %q (want allreduce, reduce, bcast, gather, allgather, scatter or barrier)", coll)
	}
	if root < 0 || root >= size {
		return nil, mpiError("ValueError", "root %d is not a rank of this world of %d", root, size)
	}

	// Only the root's value counts for bcast and scatter.
	rootOnly := coll == collBcast || coll == collScatter
	var send any
	var kind mpiKind
	var n int
	var localErr error
	if !rootOnly || rank == root {
		v, err := e.ns.Get(src)
		if err != nil {
			localErr = mpiError("NameError", "%s: %q is not defined on rank %d", coll, src, rank)
		} else if send, kind, n, err = mpiBuffer(v); err != nil {
			localErr = mpiError("TypeError", "%s: %q on rank %d is %v", coll, src, rank, err)
		}
	}
	hdr := make([]int64, 2*size)
	if err := mpi.Allgather([]int64{int64(kind), int64(n)}, hdr); err != nil {
		return nil, mpiError("MPIError", "%s: header exchange: %v", coll, err)
	}
	if localErr != nil {
		return nil, localErr
	}
	kindOf := func(r int) mpiKind { return mpiKind(hdr[2*r]) }
	lenOf := func(r int) int { return int(hdr[2*r+1]) }
	if rootOnly {
		kind, n = kindOf(root), lenOf(root)
		if kind == kindNone {
			return nil, mpiError("ValueError", "%s: the root, rank %d, has no usable %q (see its error)", coll, root, src)
		}
		if coll == collScatter {
			if kind.scalar() {
				return nil, mpiError("TypeError", "scatter: %q on the root is a %v; scatter splits a slice", src, kind)
			}
			if n%size != 0 {
				return nil, mpiError("ValueError", "scatter: %q on the root has %d elements, not a multiple of the world size %d", src, n, size)
			}
		}
	} else {
		for r := range size {
			switch {
			case kindOf(r) == kindNone:
				return nil, mpiError("ValueError", "%s: rank %d has no usable %q (see its error)", coll, r, src)
			case kindOf(r) != kind:
				return nil, mpiError("TypeError", "%s: %q is a %v on rank %d but a %v on rank %d", coll, src, kind, rank, kindOf(r), r)
			case lenOf(r) != n:
				return nil, mpiError("ValueError", "%s: %q has %d elements on rank %d but %d on rank %d", coll, src, n, rank, lenOf(r), r)
			}
		}
	}

	var result any
	switch coll {
	case collAllreduce:
		recv := newMPIBuffer(kind, n)
		err = mpi.Allreduce(send, recv, op)
		result = fromMPIBuffer(recv, kind, false)
	case collReduce:
		var recv any
		if rank == root {
			recv = newMPIBuffer(kind, n)
		}
		err = mpi.Reduce(send, recv, op, root)
		if rank == root {
			result = fromMPIBuffer(recv, kind, false)
		}
	case collBcast:
		buf := send
		if rank != root {
			buf = newMPIBuffer(kind, n)
		}
		err = mpi.Bcast(buf, root)
		result = fromMPIBuffer(buf, kind, false)
	case collGather:
		var recv any
		if rank == root {
			recv = newMPIBuffer(kind, n*size)
		}
		err = mpi.Gather(send, recv, root)
		if rank == root {
			result = fromMPIBuffer(recv, kind, true)
		}
	case collAllgather:
		recv := newMPIBuffer(kind, n*size)
		err = mpi.Allgather(send, recv)
		result = fromMPIBuffer(recv, kind, true)
	case collScatter:
		recv := newMPIBuffer(kind, n/size)
		err = mpi.Scatter(send, recv, root)
		result = recv
	}
	if err != nil {
		return nil, mpiError("MPIError", "%s: %v", coll, err)
	}
	if result == nil {
		return nil, nil // a non-root rank of reduce or gather
	}
	if err := e.ns.Set(dst, result); err != nil {
		return nil, fmt.Errorf("%s %s: storing %s: %w", protocol.MPI, coll, dst, err)
	}
	// Only the root of a rooted reduction returns its value: the others
	// would send back copies the client does not want.
	if coll == collReduce || coll == collGather {
		return result, nil
	}
	return nil, nil
}
