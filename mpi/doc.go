// Package mpi binds the system MPI library so that engines started under
// mpiexec or srun know their rank and can run collectives on the world
// communicator.
//
// # Builds
//
// The MPI implementation is chosen at build time with a build tag:
//
//	go build ./...               no MPI: Available is false, every call returns ErrNoMPI
//	go build -tags ompi ./...    Open MPI  (cgo, pkg-config "ompi")
//	go build -tags mpich ./...   MPICH     (cgo, pkg-config "mpich")
//
// The two tags are mutually exclusive; setting both fails to compile with
// an error naming the problem. A binary must be started by the launcher of
// the library it was linked against (mpiexec.openmpi for -tags ompi,
// mpiexec.mpich for -tags mpich): under the wrong launcher every process
// silently becomes a size-1 singleton, so callers should compare Size with
// what the launcher promised. A binary started without any launcher is a
// valid singleton of size 1.
//
// # Threads
//
// MPI is initialised with MPI_THREAD_FUNNELED, which allows MPI calls only
// from the thread that initialised it. Go moves goroutines between OS
// threads, so Init starts one dedicated goroutine locked to its OS thread,
// calls MPI_Init_thread there, and from then on every function of this
// package hands its work to that goroutine and waits for the result. Any
// goroutine may therefore call any function; concurrent calls are
// serialised in arrival order. Collectives must still be called in the same
// order on every rank, as MPI requires.
//
// The hand-off costs two thread switches per call: measured 9–28 µs on a
// 2-core VM (Allreduce of one float64, 2 ranks, Open MPI and MPICH),
// against 0.6–1.2 µs for the same Allreduce looped inside one C call.
// Loops of small collectives belong inside Run(f): f runs on the MPI
// goroutine and its own calls go straight to MPI (1.4–2.2 µs per Allreduce
// in the same setting). Polling instead of parking was tried and made
// things worse, because mpiexec binds each rank to a core and the polling
// threads starve each other.
//
// # API
//
//	Init() error                        MPI_Init_thread(FUNNELED); idempotent
//	Finalize() error                    MPI_Finalize; later calls return ErrFinalized
//	Available() bool                    built with MPI
//	Flavor() string                     "openmpi", "mpich" or ""
//	Rank() int, Size() int              world rank and size; -1 before Init (cached, no MPI call)
//	ProcessorName() (string, error)
//	Barrier() error
//	Bcast(buf any, root int) error
//	Reduce(send, recv any, op Op, root int) error      recv is ignored (may be nil) off root
//	Allreduce(send, recv any, op Op) error
//	Gather(send, recv any, root int) error             recv holds Size()*len(send) at root
//	Allgather(send, recv any) error
//	Scatter(send, recv any, root int) error            send holds Size()*len(recv) at root
//	Send(buf any, dest, tag int) error
//	Recv(buf any, src, tag int) (Status, error)        src may be AnySource, tag AnyTag
//	AllreduceFloat64(x float64, op Op) (float64, error)
//	AllreduceInt64(x int64, op Op) (int64, error)
//	Abort(code int) error                              MPI_Abort on the world communicator
//	Run(f func()) error                                run f on the MPI goroutine (fast path)
//	Interrupt(), ResetInterrupt()                      end waiting calls (engines: SIGINT), and undo
//
// Buffers are []float64, []float32, []int64, []int32, []byte, *mat.Dense and
// *mat.VecDense (gonum; element type float64, row-major, so gathering r×c
// matrices gives a (Size()*r)×c matrix). Send and receive buffers of one
// call must have the same element type. Buffer lengths are checked before
// MPI is called and a mismatch is an error, never a crash; lengths that
// must agree across ranks cannot be checked locally and are the caller's
// contract, as in MPI. Passing the same buffer as send and recv to
// Allreduce (or to Reduce at the root) reduces in place; other overlaps
// are refused.
//
// Reduction operators follow the MPI standard: Sum, Prod, Min and Max apply
// to every element type; LAnd, LOr, BAnd and BOr only to integer types
// ([]int64, []int32, []byte), and are refused for floating point.
//
// # Interrupts
//
// Every blocking call is started as its nonblocking MPI-3 form and
// completed by polling MPI_Test (spinning first, then sleeping with a
// backoff up to 1 ms), so that Interrupt can end the wait: the call returns
// an *InterruptedError. A started collective cannot be withdrawn from MPI,
// which pairs collectives by call order, so it stays pending on this rank
// with its buffers pinned; until it completes (when the ranks that did not
// reach it make the same call) other collectives are refused with a
// *PendingError. The rank's next Barrier claims an interrupted Barrier, so
// one Barrier on every rank brings the ranks back in step. An interrupted
// Recv is cancelled. Calls made while Interrupt is in effect start nothing.
//
// Errors from the MPI library are returned (the world communicator uses
// MPI_ERRORS_RETURN) as *Error values carrying the MPI error string.
package mpi
