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
// Init starts one dedicated goroutine locked to its OS thread (the MPI
// goroutine) and calls MPI_Init_thread there, asking for
// MPI_THREAD_SERIALIZED. When the library provides it (Debian's Open MPI
// 4.1 and MPICH 4.0 both do; ThreadLevel reports the level), any thread
// may call MPI as long as no two do at once: every function of this
// package then calls MPI on the caller's own thread while holding a
// mutex. A library that provides only MPI_THREAD_FUNNELED allows MPI
// calls from the initialising thread alone; every call is then handed to
// the MPI goroutine, which runs it and hands the result back
// ($IPP_MPI_THREAD_LEVEL=funneled forces this, to compare or as a way out
// should a library misbehave when called from several threads). Either
// way any goroutine may call any function, concurrent calls are
// serialised (in no guaranteed order), and collectives must still be
// called in the same order on every rank, as MPI requires. Run and
// Finalize always run on the MPI goroutine (MPI wants MPI_Finalize on the
// thread that initialised it).
//
// Why SERIALIZED rather than making the caller own the MPI thread: the
// hand-off costs two thread switches per call, 10–28 µs on a 2-core VM,
// against under 1 µs for the MPI call itself. The other way out, running
// each interpreted request on the MPI goroutine so its calls go direct,
// would leave out the goroutines a snippet starts (their calls would wait
// for the request that waits for them: a deadlock, unless the owner served
// them) and every plain Go caller. Under SERIALIZED the thread no longer
// matters, only mutual exclusion, which a mutex gives at the price of an
// uncontended lock. Each collective is one cgo call (started as its
// nonblocking form and completed by polling in C, see Interrupts) and
// allocates nothing besides what its arguments cost.
//
// Measured with bench/mpi/run.sh's programs (Allreduce(SUM) of one
// float64, 2 ranks, 2-core VM shared with other work, medians of 5 runs
// alternating with the C loop in one invocation, 2026-12-06), µs per call:
//
//	Open MPI 4.1.4  C 0.71, plain API 2.70 (+2.0), was 17.4 (+16.7)   load 3.0
//	MPICH 4.0.2     C 0.74, plain API 2.07 (+1.3), was 28.5 (+27.8)   load 2.8
//	from a snippet (ipcluster exec, 2,000 × AllreduceFloat64, slower rank,
//	medians of 8 execs, was: of 6; C alternating with them):
//	Open MPI        3.7 (C 2.0, +1.7), was 15.9 (C 1.3, +14.6)    load 5.8–6.6
//	MPICH           5.5 (C 2.6, +3.0), was 53 (C 7.2)             load 5.4–7.3
//	inside Run:     Open MPI 1.8, MPICH 4.9 (C 2.2 and 2.7 in those runs,
//	                load 3.8–5.7), was 8.8 and 17.0
//
// MPICH under load has a long tail (single execs up to 400 µs, its C
// loop up to 170 µs: both ranks spin). A snippet pays the interpreter's
// call of a compiled function on top, 0.4–2.8 µs for mpi.Rank() alone in
// the same runs. Inside Run(f), f's
// calls use MPI's blocking forms, which cannot be interrupted and which
// MPI never pairs with the nonblocking forms the other calls use: a
// collective must be made inside Run on every rank or on none. Polling
// instead of parking was tried for the hand-off and made things worse,
// because mpiexec binds each rank to a core and the polling threads
// starve each other.
//
// # API
//
//	Init() error                        MPI_Init_thread(SERIALIZED, else FUNNELED); idempotent
//	ThreadLevel() string                "serialized", "funneled", ... as provided; "" before Init
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
//	Run(f func()) error                                run f on the MPI goroutine (blocking calls)
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
// Collectives called inside Run(f) keep MPI's blocking calls, because the
// nonblocking form plus polling costs up to 2 µs more per small
// collective with Open MPI (its libnbc; in C, 0.6–1.0 µs blocking against
// 2.9–3.1 µs nonblocking, 2 ranks): they cannot be interrupted.
//
// Errors from the MPI library are returned (the world communicator uses
// MPI_ERRORS_RETURN) as *Error values carrying the MPI error string.
package mpi
