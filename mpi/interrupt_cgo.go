//go:build (ompi && !mpich) || (mpich && !ompi)

package mpi

/*
#include <mpi.h>
void ipp_set_interrupt(int v);
int ipp_wait(MPI_Request *q, int *osrc, int *otag, int *ocount, int k, long gen, int *done);
int ipp_is_interrupted(long gen);
int ipp_test(MPI_Request *q, int *flag);
int ipp_cancel(MPI_Request *q);
int ipp_collective(int which, void *s, void *r, int n, int k, int o, int root, int inplace, int blocking, long gen);
extern MPI_Request ipp_req;
extern int ipp_done;
extern int ipp_waiting;
extern long ipp_gen;
*/
import "C"

import (
	"runtime"
	"slices"
	"sync/atomic"
	"unsafe"
)

// pendingOp is a nonblocking operation an interrupt left incomplete. MPI
// still holds its buffers, which stay pinned until it completes.
type pendingOp struct {
	op         string
	req        C.MPI_Request
	collective bool
	pin        runtime.Pinner
}

// waitCounter reads how many operations are inside ipp_wait (ipp_waiting,
// kept in C so that ipp_collective needs no call back into Go), so that
// tests can interrupt an operation known to be waiting.
type waitCounter struct{}

// Load returns the count.
func (waitCounter) Load() int32 { return atomic.LoadInt32((*int32)(unsafe.Pointer(&C.ipp_waiting))) }

var waiting waitCounter

// generation reads the interrupt generation (see ipp_set_interrupt)
// without a cgo call.
func generation() C.long { return C.long(atomic.LoadInt64((*int64)(unsafe.Pointer(&C.ipp_gen)))) }

// pending lists the incomplete operations in start order. Only the MPI
// goroutine touches it.
var pending []*pendingOp

// Interrupt makes the operation this process is waiting for in MPI, and
// any it starts until ResetInterrupt, return an *InterruptedError instead
// of waiting. The operation itself cannot be withdrawn from MPI: it stays
// pending on this rank and completes when the ranks that did not reach it
// make the matching call. Engines call Interrupt on SIGINT and
// ResetInterrupt before each request. Safe from any goroutine.
func Interrupt() { C.ipp_set_interrupt(1) }

// ResetInterrupt lets MPI operations wait again after Interrupt.
func ResetInterrupt() { C.ipp_set_interrupt(0) }

// recvStatus receives what MPI_Recv reports.
type recvStatus struct {
	k               kind
	src, tag, count C.int
}

// wait completes q, or on interrupt records it as pending with its
// buffers pinned and returns an *InterruptedError. Runs on the MPI
// goroutine.
func wait(op string, q *C.MPI_Request, collective bool, bufs []unsafe.Pointer, recv *recvStatus) error {
	var done C.int
	var rc C.int
	if recv != nil {
		rc = C.ipp_wait(q, &recv.src, &recv.tag, &recv.count, C.int(recv.k), callGen, &done)
	} else {
		rc = C.ipp_wait(q, nil, nil, nil, 0, callGen, &done)
	}
	if done != 0 {
		return check(op, rc)
	}
	if recv != nil {
		// A receive can be withdrawn: nothing is left in step or out of it.
		if C.ipp_cancel(q) == C.MPI_SUCCESS {
			var flag C.int
			for flag == 0 {
				if C.ipp_test(q, &flag) != C.MPI_SUCCESS {
					break
				}
			}
			return &InterruptedError{Op: op, Rank: rank, Withdrawn: true}
		}
	}
	p := &pendingOp{op: op, req: *q, collective: collective}
	for _, b := range bufs {
		if b != nil {
			p.pin.Pin(b)
		}
	}
	pending = append(pending, p)
	return &InterruptedError{Op: op, Rank: rank}
}

// settle drops the pending operations that have completed since, except
// Barriers: an interrupted Barrier is this rank's call of it in MPI's
// sequence, so the rank's next Barrier claims it (see Barrier) whether it
// completed meanwhile or not. Dropping a completed one instead would make
// that next Barrier a new one, one step ahead of the other ranks.
func settle() {
	kept := pending[:0]
	for _, p := range pending {
		if p.op != "MPI_Barrier" {
			var flag C.int
			if C.ipp_test(&p.req, &flag) != C.MPI_SUCCESS || flag != 0 {
				p.pin.Unpin()
				continue
			}
		}
		kept = append(kept, p)
	}
	clear(pending[len(kept):])
	pending = kept
}

// pendingCollective returns the oldest collective still pending, after
// dropping those that completed.
func pendingCollective() *pendingOp {
	settle()
	for _, p := range pending {
		if p.collective {
			return p
		}
	}
	return nil
}

// call is one collective, described for ipp_collective, which starts
// and completes it in one cgo call. Collectives are small and frequent:
// the closures and cgo calls of a general path cost more than MPI does
// for 8 bytes (measured: 8 allocations and 1.1–1.7 µs per Allreduce on a
// singleton, against 0.4 µs for the same call with 5 allocations), so the
// common path allocates nothing of its own.
type call struct {
	op                     string // MPI's name, for errors
	which                  C.int  // IPP_BARRIER, IPP_BCAST, ...
	s, r                   unsafe.Pointer
	n, k, o, root, inplace C.int
}

// run performs c. It runs where MPI may be called: holding mu, or on the
// MPI goroutine (inside Run: MPI's blocking call, see direct). MPI
// requires every rank to call collectives in the same order, so a rank
// still holding an interrupted one refuses new ones: starting another
// would pair it with the wrong call of some other rank.
func (c *call) run() error {
	if p := pendingCollective(); p != nil {
		return &PendingError{Op: c.op, Pending: p.op, Rank: rank}
	}
	rc := C.ipp_collective(c.which, c.s, c.r, c.n, c.k, c.o, c.root, c.inplace, cbool(direct), callGen)
	switch C.ipp_done {
	case 1:
		return check(c.op, rc)
	case 2:
		return &InterruptedError{Op: c.op, Rank: rank, Withdrawn: true}
	}
	// Interrupted while waiting: MPI keeps the request and the buffers.
	p := &pendingOp{op: c.op, req: C.ipp_req, collective: true}
	for _, b := range [...]unsafe.Pointer{c.s, c.r} {
		if b != nil {
			p.pin.Pin(b)
		}
	}
	pending = append(pending, p)
	return &InterruptedError{Op: c.op, Rank: rank}
}

// collective performs c as do would, and on success copies the result
// into back's gonum view, if it stands for one. The serialized path is
// do's, written out so that c needs no closure (and stays off the heap).
func collective(c call, back buffer) error {
	if err := ready(); err != nil {
		return err
	}
	var err error
	if onMPIGoroutine() {
		// Inside Run: do's fast path.
		was := direct
		direct = true
		err = c.run()
		direct = was
	} else if serialized {
		gen := generation()
		mu.Lock()
		if state.Load() == stateFinalized {
			err = ErrFinalized
		} else {
			callGen = gen
			err = c.run()
		}
		mu.Unlock()
	} else {
		cc := c
		err = do(cc.run)
	}
	if err == nil {
		back.copyBack()
	}
	return err
}

// resume waits again for an interrupted collective, which the calling
// rank asked to repeat (Barrier after an interrupted Barrier), and drops it
// once complete.
func resume(p *pendingOp) error {
	var done C.int
	rc := C.ipp_wait(&p.req, nil, nil, nil, 0, callGen, &done)
	if done == 0 {
		return &InterruptedError{Op: p.op, Rank: rank}
	}
	p.pin.Unpin()
	pending = slices.DeleteFunc(pending, func(q *pendingOp) bool { return q == p })
	return check(p.op, rc)
}
