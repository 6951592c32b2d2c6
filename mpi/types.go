package mpi

import (
	"errors"
	"fmt"
)

// ErrNoMPI is returned by every operation of a binary built without MPI.
var ErrNoMPI = errors.New("mpi: this binary was built without MPI support (install libopenmpi-dev or libmpich-dev and rebuild with -tags ompi or -tags mpich)")

// ErrNotInitialized is returned by operations called before Init.
var ErrNotInitialized = errors.New("mpi: not initialised (call mpi.Init first)")

// ErrFinalized is returned by operations called after Finalize; MPI cannot
// be initialised again in the same process.
var ErrFinalized = errors.New("mpi: already finalised")

// Op is a reduction operator for Reduce and Allreduce.
type Op int

// The reduction operators. The zero Op is invalid so that a forgotten
// argument is caught rather than silently summed.
const (
	Sum  Op = iota + 1 // MPI_SUM
	Prod               // MPI_PROD
	Min                // MPI_MIN
	Max                // MPI_MAX
	LAnd               // MPI_LAND: logical and (integers only)
	LOr                // MPI_LOR: logical or (integers only)
	BAnd               // MPI_BAND: bitwise and (integers only)
	BOr                // MPI_BOR: bitwise or (integers only)
)

var opNames = [...]string{Sum: "Sum", Prod: "Prod", Min: "Min", Max: "Max", LAnd: "LAnd", LOr: "LOr", BAnd: "BAnd", BOr: "BOr"}

// String returns the operator's Go name, or Op(n) for an invalid one.
func (o Op) String() string {
	if o >= Sum && int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// Wildcards for Recv; they are translated to the library's own values
// (which differ between Open MPI and MPICH).
const (
	AnySource = -1 // receive from any rank
	AnyTag    = -1 // receive with any tag
)

// Status describes a message received by Recv.
type Status struct {
	Source int // rank the message came from
	Tag    int // tag it was sent with
	Count  int // number of elements received
}

// Error is an error reported by the MPI library.
type Error struct {
	Op   string // the MPI function, e.g. "MPI_Allreduce"
	Code int    // the MPI error code
	Msg  string // MPI_Error_string of Code
}

// Error formats the failing MPI function with the library's message.
func (e *Error) Error() string {
	return fmt.Sprintf("mpi: %s failed: %s (code %d)", e.Op, e.Msg, e.Code)
}

// InterruptedError is returned by an MPI operation that an interrupt
// (Interrupt; an engine's SIGINT) ended before it completed.
type InterruptedError struct {
	Op   string // the MPI function, e.g. "MPI_Barrier"
	Rank int    // this process's rank
	// Withdrawn is set when nothing stays pending: the operation was
	// called after the interrupt and not started, or it could be
	// cancelled (a receive).
	Withdrawn bool
}

// Error says what is left pending and how to recover.
func (e *InterruptedError) Error() string {
	if e.Withdrawn {
		return fmt.Sprintf("mpi: %s interrupted on rank %d; nothing is left pending (not started, or cancelled)", e.Op, e.Rank)
	}
	if e.Op == "MPI_Barrier" {
		return fmt.Sprintf("mpi: MPI_Barrier interrupted on rank %d before every rank called it; it stays pending here "+
			"and this rank refuses other collectives until it completes: call mpi.Barrier() on every rank to bring them back in step", e.Rank)
	}
	return fmt.Sprintf("mpi: %s interrupted on rank %d before every rank called it; MPI cannot withdraw it, so it stays pending here "+
		"and this rank refuses other collectives until the ranks that did not reach it make the same call. "+
		"If they cannot, restart the engine set (ipcluster stop, then start)", e.Op, e.Rank)
}

// PendingError is returned by a collective that a rank refuses to start
// because an interrupted collective is still pending on it: MPI pairs
// collectives by call order, so starting another would match it with the
// wrong call of the other ranks and hang or corrupt data.
type PendingError struct {
	Op      string // the refused call
	Pending string // the interrupted collective still pending
	Rank    int
}

// Error names both calls and the way out.
func (e *PendingError) Error() string {
	fix := "the ranks that did not reach it must make the same call (or restart the engine set: ipcluster stop, then start)"
	if e.Pending == "MPI_Barrier" {
		fix = "call mpi.Barrier() on every rank to complete it"
	}
	return fmt.Sprintf("mpi: %s refused on rank %d: an interrupted %s is still pending on this rank (not every rank called it); %s",
		e.Op, e.Rank, e.Pending, fix)
}
