//go:build (ompi && !mpich) || (mpich && !ompi)

package mpi

/*
#include <mpi.h>
void ipp_set_interrupt(int v);
int ipp_wait(MPI_Request *q, int *osrc, int *otag, int *ocount, int k, long gen, int *done);
long ipp_generation(void);
int ipp_is_interrupted(long gen);
int ipp_test(MPI_Request *q, int *flag);
int ipp_cancel(MPI_Request *q);
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

// waiting counts operations inside ipp_wait, so that tests can interrupt
// an operation known to be waiting.
var waiting atomic.Int32

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
	waiting.Add(1)
	defer waiting.Add(-1)
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

// collective starts a collective and waits for it. MPI requires every
// rank to call collectives in the same order, so a rank still holding an
// interrupted one refuses new ones: starting another would pair it with
// the wrong call of some other rank.
func collective(op string, bufs []unsafe.Pointer, start func(*C.MPI_Request) C.int) error {
	if p := pendingCollective(); p != nil {
		return &PendingError{Op: op, Pending: p.op, Rank: rank}
	}
	if C.ipp_is_interrupted(callGen) != 0 {
		// Called by a snippet already interrupted (on its way out):
		// starting the operation would only leave one more pending.
		return &InterruptedError{Op: op, Rank: rank, Withdrawn: true}
	}
	var q C.MPI_Request
	if err := check(op, start(&q)); err != nil {
		return err
	}
	return wait(op, &q, true, bufs, nil)
}

// collectiveInto is collective for an operation that writes into b, whose
// result is copied back into a gonum view when b stands for one.
func collectiveInto(b buffer, op string, bufs []unsafe.Pointer, start func(*C.MPI_Request) C.int) error {
	return do(func() error {
		if err := collective(op, bufs, start); err != nil {
			return err
		}
		b.copyBack()
		return nil
	})
}

// resume waits again for an interrupted collective, which the calling
// rank asked to repeat (Barrier after an interrupted Barrier), and drops it
// once complete.
func resume(p *pendingOp) error {
	var done C.int
	waiting.Add(1)
	rc := C.ipp_wait(&p.req, nil, nil, nil, 0, callGen, &done)
	waiting.Add(-1)
	if done == 0 {
		return &InterruptedError{Op: p.op, Rank: rank}
	}
	p.pin.Unpin()
	pending = slices.DeleteFunc(pending, func(q *pendingOp) bool { return q == p })
	return check(p.op, rc)
}
