//go:build (ompi && !mpich) || (mpich && !ompi)

package mpi

/*
#include <mpi.h>
#include <stdint.h>
#include <time.h>
#include <sched.h>

// Open MPI's handles (MPI_COMM_WORLD, MPI_DOUBLE, MPI_SUM, MPI_IN_PLACE)
// are addresses of library globals and MPICH's are integer constants; doing
// every lookup in C keeps the Go side identical for both, and lets one cgo
// call per operation do the whole job.

enum { IPP_FLOAT64 = 1, IPP_FLOAT32, IPP_INT64, IPP_INT32, IPP_UINT8 };
enum { IPP_SUM = 1, IPP_PROD, IPP_MIN, IPP_MAX, IPP_LAND, IPP_LOR, IPP_BAND, IPP_BOR };

static MPI_Datatype ipp_type(int k) {
	switch (k) {
	case IPP_FLOAT64: return MPI_DOUBLE;
	case IPP_FLOAT32: return MPI_FLOAT;
	case IPP_INT64:   return MPI_INT64_T;
	case IPP_INT32:   return MPI_INT32_T;
	case IPP_UINT8:   return MPI_UINT8_T;
	}
	return MPI_DATATYPE_NULL;
}

static MPI_Op ipp_op(int o) {
	switch (o) {
	case IPP_SUM:  return MPI_SUM;
	case IPP_PROD: return MPI_PROD;
	case IPP_MIN:  return MPI_MIN;
	case IPP_MAX:  return MPI_MAX;
	case IPP_LAND: return MPI_LAND;
	case IPP_LOR:  return MPI_LOR;
	case IPP_BAND: return MPI_BAND;
	case IPP_BOR:  return MPI_BOR;
	}
	return MPI_OP_NULL;
}

static int ipp_init(int serialized, int *provided) {
	int rc = MPI_Init_thread(NULL, NULL, serialized ? MPI_THREAD_SERIALIZED : MPI_THREAD_FUNNELED, provided);
	if (rc != MPI_SUCCESS) return rc;
	// Return errors to Go instead of aborting the process.
	return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}
// ipp_mpi_thread is set on the MPI goroutine's thread only: reading it
// tells a call whether it runs there (inside Run) for the price of a cgo
// call, where gettid is a system call (about 1 µs on a paravirtualised VM).
static __thread int ipp_mpi_thread;
static void ipp_mark_mpi_thread(void) { ipp_mpi_thread = 1; }
static int ipp_on_mpi_thread(void) { return ipp_mpi_thread; }
static int ipp_initialized(void) { int f = 0; MPI_Initialized(&f); return f; }
static int ipp_is_thread_main(void) { int f = 0; MPI_Is_thread_main(&f); return f; }
static int ipp_rank(int *r) { return MPI_Comm_rank(MPI_COMM_WORLD, r); }
static int ipp_size(int *s) { return MPI_Comm_size(MPI_COMM_WORLD, s); }
static int ipp_abort(int code) { return MPI_Abort(MPI_COMM_WORLD, code); }
static int ipp_max_name(void) { return MPI_MAX_PROCESSOR_NAME; }
static int ipp_max_error(void) { return MPI_MAX_ERROR_STRING; }

static int ipp_tag_ub(void) {
	int *v = NULL, flag = 0;
	MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &v, &flag);
	return flag && v ? *v : 32767;
}

// Blocking forms, for calls made inside Run (the fast path, which an
// interrupt cannot end).
static int ipp_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
static int ipp_bcast(void *b, int n, int k, int root) {
	return MPI_Bcast(b, n, ipp_type(k), root, MPI_COMM_WORLD);
}
static int ipp_reduce(void *s, void *r, int n, int k, int o, int root, int inplace) {
	return MPI_Reduce(inplace ? MPI_IN_PLACE : s, r, n, ipp_type(k), ipp_op(o), root, MPI_COMM_WORLD);
}
static int ipp_allreduce(void *s, void *r, int n, int k, int o, int inplace) {
	return MPI_Allreduce(inplace ? MPI_IN_PLACE : s, r, n, ipp_type(k), ipp_op(o), MPI_COMM_WORLD);
}
static int ipp_gather(void *s, int n, void *r, int k, int root) {
	return MPI_Gather(s, n, ipp_type(k), r, n, ipp_type(k), root, MPI_COMM_WORLD);
}
static int ipp_allgather(void *s, int n, void *r, int k) {
	return MPI_Allgather(s, n, ipp_type(k), r, n, ipp_type(k), MPI_COMM_WORLD);
}
static int ipp_scatter(void *s, void *r, int n, int k, int root) {
	return MPI_Scatter(s, n, ipp_type(k), r, n, ipp_type(k), root, MPI_COMM_WORLD);
}

// Nonblocking variants: every blocking operation is started with one of
// these and completed by ipp_wait, which an interrupt can leave.
static int ipp_ibarrier(MPI_Request *q) { return MPI_Ibarrier(MPI_COMM_WORLD, q); }
static int ipp_ibcast(void *b, int n, int k, int root, MPI_Request *q) {
	return MPI_Ibcast(b, n, ipp_type(k), root, MPI_COMM_WORLD, q);
}
static int ipp_ireduce(void *s, void *r, int n, int k, int o, int root, int inplace, MPI_Request *q) {
	return MPI_Ireduce(inplace ? MPI_IN_PLACE : s, r, n, ipp_type(k), ipp_op(o), root, MPI_COMM_WORLD, q);
}
static int ipp_iallreduce(void *s, void *r, int n, int k, int o, int inplace, MPI_Request *q) {
	return MPI_Iallreduce(inplace ? MPI_IN_PLACE : s, r, n, ipp_type(k), ipp_op(o), MPI_COMM_WORLD, q);
}
static int ipp_igather(void *s, int n, void *r, int k, int root, MPI_Request *q) {
	return MPI_Igather(s, n, ipp_type(k), r, n, ipp_type(k), root, MPI_COMM_WORLD, q);
}
static int ipp_iallgather(void *s, int n, void *r, int k, MPI_Request *q) {
	return MPI_Iallgather(s, n, ipp_type(k), r, n, ipp_type(k), MPI_COMM_WORLD, q);
}
static int ipp_iscatter(void *s, void *r, int n, int k, int root, MPI_Request *q) {
	return MPI_Iscatter(s, n, ipp_type(k), r, n, ipp_type(k), root, MPI_COMM_WORLD, q);
}
static int ipp_isend(void *b, int n, int k, int dest, int tag, MPI_Request *q) {
	return MPI_Isend(b, n, ipp_type(k), dest, tag, MPI_COMM_WORLD, q);
}
static int ipp_irecv(void *b, int n, int k, int src, int tag, MPI_Request *q) {
	return MPI_Irecv(b, n, ipp_type(k), src < 0 ? MPI_ANY_SOURCE : src,
		tag < 0 ? MPI_ANY_TAG : tag, MPI_COMM_WORLD, q);
}

// ipp_interrupted is set by Interrupt from any thread and read by the
// polling loop of the thread in MPI; ipp_gen counts interrupts (Go reads
// it directly, see generation), so that an operation called before an
// interrupt ends even if the flag has been reset by the time the polling
// thread looks (the engine resets it when its next request starts).
static int ipp_interrupted;
long ipp_gen;
void ipp_set_interrupt(int v) {
	if (v) __atomic_add_fetch(&ipp_gen, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&ipp_interrupted, v, __ATOMIC_SEQ_CST);
}
int ipp_is_interrupted(long gen) {
	return __atomic_load_n(&ipp_interrupted, __ATOMIC_SEQ_CST) || __atomic_load_n(&ipp_gen, __ATOMIC_SEQ_CST) != gen;
}

// ipp_wait completes *q by polling MPI_Test, so that an interrupt can end
// the wait: it returns with *done = 1 and the operation's code once the
// request completed, or with *done = 0 when interrupted (the request is
// then still active): the flag is set, or an interrupt came after the
// operation was called (gen is the generation then). It spins for up to
// 200 ms, as MPI's own blocking calls do: libraries without a progress
// thread (MPICH, Open MPI by default) move a large message only while it
// is tested, so a sleep between tests slows a multi-megabyte collective
// several times over. The spin yields the CPU every 64 tests (an
// oversubscribed peer may need it). After that the wait is for a peer, not
// for data: it sleeps between tests with a backoff up to 1 ms so that a
// rank waiting long does not hold a core.
int ipp_waiting;
static int ipp_wait_loop(MPI_Request *q, int *osrc, int *otag, int *ocount, int k, long gen, int *done);
int ipp_wait(MPI_Request *q, int *osrc, int *otag, int *ocount, int k, long gen, int *done) {
	__atomic_add_fetch(&ipp_waiting, 1, __ATOMIC_SEQ_CST);
	int rc = ipp_wait_loop(q, osrc, otag, ocount, k, gen, done);
	__atomic_sub_fetch(&ipp_waiting, 1, __ATOMIC_SEQ_CST);
	return rc;
}
static int ipp_wait_loop(MPI_Request *q, int *osrc, int *otag, int *ocount, int k, long gen, int *done) {
	MPI_Status st;
	struct timespec ts = {0, 1000}, t0, now;
	long spins = 0;
	int sleeping = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int flag = 0;
		int rc = MPI_Test(q, &flag, &st);
		if (rc != MPI_SUCCESS) { *done = 1; return rc; }
		if (flag) {
			*done = 1;
			if (osrc) {
				*osrc = st.MPI_SOURCE;
				*otag = st.MPI_TAG;
				return MPI_Get_count(&st, ipp_type(k), ocount);
			}
			return MPI_SUCCESS;
		}
		if (__atomic_load_n(&ipp_interrupted, __ATOMIC_SEQ_CST) || __atomic_load_n(&ipp_gen, __ATOMIC_SEQ_CST) != gen) {
			*done = 0;
			return MPI_SUCCESS;
		}
		if (sleeping) {
			nanosleep(&ts, NULL);
			if (ts.tv_nsec < 1000000) ts.tv_nsec *= 2;
		} else if ((++spins & 63) == 0) {
			sched_yield();
			clock_gettime(CLOCK_MONOTONIC, &now);
			if ((now.tv_sec - t0.tv_sec) * 1000000000L + (now.tv_nsec - t0.tv_nsec) > 200000000L) sleeping = 1;
		}
	}
}
// The collectives by number, so that one cgo call can start and complete
// any of them (ipp_collective): a Go closure per call, and the cgo calls
// around it, cost more than a small collective itself.
enum { IPP_BARRIER = 1, IPP_BCAST, IPP_REDUCE, IPP_ALLREDUCE, IPP_GATHER, IPP_ALLGATHER, IPP_SCATTER };

// ipp_req and ipp_done are the request and outcome of the last
// ipp_collective. Only one thread is inside MPI at a time (SERIALIZED
// under the Go mutex, or FUNNELED on the MPI goroutine), so one of each
// suffices, and Go passes no pointer of its own for them.
MPI_Request ipp_req;
int ipp_done;

static int ipp_block(int which, void *s, void *r, int n, int k, int o, int root, int inplace) {
	switch (which) {
	case IPP_BARRIER:   return ipp_barrier();
	case IPP_BCAST:     return ipp_bcast(s, n, k, root);
	case IPP_REDUCE:    return ipp_reduce(s, r, n, k, o, root, inplace);
	case IPP_ALLREDUCE: return ipp_allreduce(s, r, n, k, o, inplace);
	case IPP_GATHER:    return ipp_gather(s, n, r, k, root);
	case IPP_ALLGATHER: return ipp_allgather(s, n, r, k);
	case IPP_SCATTER:   return ipp_scatter(s, r, n, k, root);
	}
	return MPI_ERR_OP;
}

static int ipp_start(int which, void *s, void *r, int n, int k, int o, int root, int inplace, MPI_Request *q) {
	switch (which) {
	case IPP_BARRIER:   return ipp_ibarrier(q);
	case IPP_BCAST:     return ipp_ibcast(s, n, k, root, q);
	case IPP_REDUCE:    return ipp_ireduce(s, r, n, k, o, root, inplace, q);
	case IPP_ALLREDUCE: return ipp_iallreduce(s, r, n, k, o, inplace, q);
	case IPP_GATHER:    return ipp_igather(s, n, r, k, root, q);
	case IPP_ALLGATHER: return ipp_iallgather(s, n, r, k, q);
	case IPP_SCATTER:   return ipp_iscatter(s, r, n, k, root, q);
	}
	return MPI_ERR_OP;
}

// ipp_collective runs one collective: MPI's blocking call when blocking
// (inside Run), else the nonblocking form completed by ipp_wait. It sets
// ipp_done to 1 when the call is over (its code returned), 2 when an
// interrupt came first and nothing was started, 0 when an interrupt ended
// the wait and ipp_req is still active.
int ipp_collective(int which, void *s, void *r, int n, int k, int o, int root, int inplace, int blocking, long gen) {
	if (blocking) {
		ipp_done = 1;
		return ipp_block(which, s, r, n, k, o, root, inplace);
	}
	if (ipp_is_interrupted(gen)) {
		// Called by a snippet already interrupted (on its way out):
		// starting the operation would only leave one more pending.
		ipp_done = 2;
		return MPI_SUCCESS;
	}
	int rc = ipp_start(which, s, r, n, k, o, root, inplace, &ipp_req);
	if (rc != MPI_SUCCESS) {
		ipp_done = 1;
		return rc;
	}
	return ipp_wait(&ipp_req, NULL, NULL, NULL, 0, gen, &ipp_done);
}

// ipp_test reports whether an interrupted request has completed since.
int ipp_test(MPI_Request *q, int *flag) { return MPI_Test(q, flag, MPI_STATUS_IGNORE); }
int ipp_cancel(MPI_Request *q) { return MPI_Cancel(q); }

// The reference loop for the overhead benchmark: n Allreduces of one
// double without leaving C.
static double ipp_allreduce_loop(int n) {
	double in = 1.0, out = 0.0;
	double t0 = MPI_Wtime();
	for (int i = 0; i < n; i++)
		MPI_Allreduce(&in, &out, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
	return MPI_Wtime() - t0;
}
*/
import "C"

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Available reports whether this binary can talk to an MPI library.
func Available() bool { return true }

// Flavor names the MPI implementation this binary is linked against:
// "openmpi" or "mpich".
func Flavor() string { return flavor }

// job is one unit of MPI work run on the MPI goroutine. Jobs are pooled
// with their done channels so that a call allocates only its closure.
type job struct {
	fn   func() error
	err  error
	done chan struct{}
	gen  C.long // interrupt generation when the call was made
}

var jobPool = sync.Pool{New: func() any { return &job{done: make(chan struct{}, 1)} }}

// jobs feeds the MPI goroutine. It exists from package initialisation so
// that callers never race with Init over the variable.
var jobs = make(chan *job)

// inJob is true while the MPI goroutine runs a job. With onMPIGoroutine
// it lets a call made from inside a job (through Run) go straight to MPI:
// only the locked goroutine can be on that thread, and checking inJob
// first keeps the thread check off every other caller's path.
var inJob atomic.Bool

// onMPIGoroutine reports whether the caller is the MPI goroutine inside
// a job (Run, Finalize).
func onMPIGoroutine() bool { return inJob.Load() && C.ipp_on_mpi_thread() != 0 }

// serialized is true when the library provided MPI_THREAD_SERIALIZED (or
// more): any thread may then call MPI while holding mu, so calls run on
// the caller's own thread instead of being handed to the MPI goroutine
// (two thread switches, most of the Go−C gap; see doc.go). Without it
// (FUNNELED) every call is handed off. Set once by Init.
var serialized bool

// mu serialises MPI calls when serialized is set: callers hold it around
// their MPI work, and the MPI goroutine holds it while it runs a job
// (Run, Finalize), so one thread at a time is inside MPI, as
// MPI_THREAD_SERIALIZED requires. It also guards pending, callGen and
// direct, which only the holder touches.
var mu sync.Mutex

// threadLevel is the level name ThreadLevel reports, set by Init.
var threadLevel string

// levelEnv overrides the thread level Init requests: "funneled" keeps
// every call on the MPI goroutine (the hand-off), "serialized" (the
// default) lets any thread call MPI under a mutex. It exists to compare
// the two and as a way out should a library misbehave when called from
// several threads.
const levelEnv = "IPP_MPI_THREAD_LEVEL"

// direct is true while a call made inside Run runs (on the MPI
// goroutine): collectives then use MPI's blocking calls, which are faster
// for small messages than the nonblocking form plus polling, and cannot
// be interrupted.
var direct bool

// callGen is the interrupt generation of the call inside MPI: its waits
// end when an interrupt came after the call was made.
var callGen C.long

// Lifecycle, for the checks callers make before queueing work. The MPI
// goroutine keeps its own copy too, which is the one that decides.
const (
	stateNone int32 = iota
	stateRunning
	stateFinalized
	stateFailed
)

var (
	state   atomic.Int32
	initMu  sync.Mutex
	initErr error

	// Cached at Init: they never change, and reading them must not cost
	// a trip to the MPI goroutine (interpreted engine code calls Rank()).
	rank, size = -1, -1
	procName   string
	tagUB      int
)

// Init initialises MPI on a dedicated goroutine locked to its OS thread
// (the MPI goroutine), asking for MPI_THREAD_SERIALIZED. When the library
// provides it, every call runs on the calling goroutine's thread under a
// mutex; otherwise (FUNNELED, or $IPP_MPI_THREAD_LEVEL=funneled) every
// call is handed to the MPI goroutine. Run and Finalize always run there.
// Calling Init again is a no-op; after Finalize it returns ErrFinalized.
func Init() error {
	initMu.Lock()
	defer initMu.Unlock()
	switch state.Load() {
	case stateRunning:
		return nil
	case stateFinalized:
		return ErrFinalized
	case stateFailed:
		return initErr
	}
	want := true
	switch v := os.Getenv(levelEnv); v {
	case "", "serialized":
	case "funneled":
		want = false
	default:
		// Not a state failure: nothing was initialised, and a corrected
		// environment may call Init again.
		return fmt.Errorf("mpi: $%s=%q: want serialized or funneled", levelEnv, v)
	}
	ready := make(chan error, 1)
	go serve(want, ready)
	if err := <-ready; err != nil {
		initErr = err
		state.Store(stateFailed)
		return err
	}
	state.Store(stateRunning)
	return nil
}

// ThreadLevel names the thread support MPI provided at Init ("single",
// "funneled", "serialized" or "multiple"), or "" before Init. Below
// "serialized", every call is handed to the MPI goroutine.
func ThreadLevel() string {
	if state.Load() == stateNone {
		return ""
	}
	return threadLevel
}

// levelName names an MPI_THREAD_* value.
func levelName(l C.int) string {
	switch l {
	case C.MPI_THREAD_SINGLE:
		return "single"
	case C.MPI_THREAD_FUNNELED:
		return "funneled"
	case C.MPI_THREAD_SERIALIZED:
		return "serialized"
	case C.MPI_THREAD_MULTIPLE:
		return "multiple"
	}
	return fmt.Sprintf("unknown (%d)", int(l))
}

// serve is the MPI goroutine. It locks its thread before MPI_Init_thread:
// that thread is MPI's main thread, the only one FUNNELED allows to call
// MPI and the one MPI_Finalize must be called on.
func serve(wantSerialized bool, ready chan<- error) {
	runtime.LockOSThread()
	// Never unlocked: the thread belongs to MPI until the process exits.
	if C.ipp_initialized() != 0 {
		ready <- fmt.Errorf("mpi: MPI was already initialised outside this package, on a thread it cannot use")
		return
	}
	var provided C.int
	if rc := C.ipp_init(cbool(wantSerialized), &provided); rc != C.MPI_SUCCESS {
		ready <- mpiError("MPI_Init_thread", rc)
		return
	}
	var r, s C.int
	if rc := C.ipp_rank(&r); rc != C.MPI_SUCCESS {
		ready <- mpiError("MPI_Comm_rank", rc)
		return
	}
	if rc := C.ipp_size(&s); rc != C.MPI_SUCCESS {
		ready <- mpiError("MPI_Comm_size", rc)
		return
	}
	name := make([]byte, int(C.ipp_max_name()))
	var n C.int
	if rc := C.MPI_Get_processor_name((*C.char)(unsafe.Pointer(&name[0])), &n); rc != C.MPI_SUCCESS {
		ready <- mpiError("MPI_Get_processor_name", rc)
		return
	}
	rank, size, procName, tagUB = int(r), int(s), string(name[:n]), int(C.ipp_tag_ub())
	// MPI levels are ordered: SERIALIZED or MULTIPLE both allow it.
	serialized = wantSerialized && provided >= C.MPI_THREAD_SERIALIZED
	threadLevel = levelName(provided)
	C.ipp_mark_mpi_thread()
	ready <- nil

	finalized := false
	for j := range jobs {
		if finalized {
			j.err = ErrFinalized
		} else {
			if serialized {
				mu.Lock()
			}
			inJob.Store(true)
			callGen = j.gen
			j.err = j.fn()
			inJob.Store(false)
			// Finalize's job flips the state; everything queued
			// behind it must not touch MPI any more.
			finalized = state.Load() == stateFinalized
			if serialized {
				mu.Unlock()
			}
		}
		j.done <- struct{}{}
	}
}

// cbool converts for C.
func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// do runs fn where it may call MPI and returns its result: on the
// calling thread under mu when serialized, else on the MPI goroutine.
func do(fn func() error) error {
	if err := ready(); err != nil {
		return err
	}
	if onMPIGoroutine() {
		// Already on the MPI goroutine, inside Run: the fast path.
		was := direct
		direct = true
		err := fn()
		direct = was
		return err
	}
	if !serialized {
		return handOff(fn)
	}
	// The generation is read before waiting for mu, as handOff reads it
	// before queueing: an interrupt sent while this call waits for
	// another one to leave MPI ends this call too.
	gen := generation()
	mu.Lock()
	defer mu.Unlock()
	if state.Load() == stateFinalized {
		return ErrFinalized
	}
	callGen = gen
	return fn()
}

// onMPIThread runs fn on the MPI goroutine whatever the thread level:
// for Run (whose f gets the direct path) and Finalize (which MPI wants on
// the thread that initialised it).
func onMPIThread(fn func() error) error {
	if err := ready(); err != nil {
		return err
	}
	if onMPIGoroutine() {
		return fn()
	}
	return handOff(fn)
}

// handOff runs fn on the MPI goroutine and waits for its result.
func handOff(fn func() error) error {
	j := jobPool.Get().(*job)
	j.fn = fn
	j.gen = generation()
	jobs <- j
	<-j.done
	err := j.err
	j.fn, j.err = nil, nil
	jobPool.Put(j)
	return err
}

// mpiError turns an MPI return code into an *Error; it calls MPI, so it
// runs on the MPI goroutine.
func mpiError(op string, rc C.int) error {
	buf := make([]byte, int(C.ipp_max_error()))
	var n C.int
	msg := "unknown error"
	if C.MPI_Error_string(rc, (*C.char)(unsafe.Pointer(&buf[0])), &n) == C.MPI_SUCCESS {
		msg = string(buf[:n])
	}
	return &Error{Op: op, Code: int(rc), Msg: msg}
}

// check is mpiError for the common case of a successful call.
func check(op string, rc C.int) error {
	if rc == C.MPI_SUCCESS {
		return nil
	}
	return mpiError(op, rc)
}

// Finalize finalises MPI. Later calls, including Init, return ErrFinalized.
func Finalize() error {
	initMu.Lock()
	defer initMu.Unlock()
	if state.Load() != stateRunning {
		return do(nil) // the right error for the state
	}
	return onMPIThread(func() error {
		state.Store(stateFinalized)
		return check("MPI_Finalize", C.MPI_Finalize())
	})
}

// Run calls f on the MPI goroutine and returns when f does. Collectives
// that f itself calls (not goroutines it starts) use MPI's blocking forms,
// which save Open MPI's nonblocking overhead (up to 2 µs per small
// collective; see doc.go) but cannot be interrupted, and which MPI does
// not pair with the nonblocking forms calls outside Run make: call a
// given collective inside Run on every rank or on none. Other goroutines'
// calls wait until f returns, so f must not wait for a goroutine that is
// calling MPI: that deadlocks.
func Run(f func()) error {
	return onMPIThread(func() error {
		f()
		return nil
	})
}

// Rank returns the rank of this process in the world communicator, or -1
// before Init. It does not call MPI.
func Rank() int {
	if state.Load() == stateNone {
		return -1
	}
	return rank
}

// Size returns the number of processes in the world communicator, or -1
// before Init. It does not call MPI.
func Size() int {
	if state.Load() == stateNone {
		return -1
	}
	return size
}

// ProcessorName returns MPI_Get_processor_name, read once at Init.
func ProcessorName() (string, error) {
	if err := ready(); err != nil {
		return "", err
	}
	return procName, nil
}

// Abort aborts every rank of the job with the given exit code. It returns
// only if MPI could not abort.
func Abort(code int) error {
	return do(func() error { return check("MPI_Abort", C.ipp_abort(C.int(code))) })
}

// Barrier blocks until every rank has called it. An interrupted Barrier
// stays pending on this rank (see Interrupt); the next Barrier completes
// that one instead of starting another, so calling Barrier on every rank
// brings the ranks back in step.
func Barrier() error {
	return do(func() error {
		if p := pendingCollective(); p != nil && p.op == "MPI_Barrier" {
			return resume(p)
		}
		c := call{op: "MPI_Barrier", which: C.IPP_BARRIER}
		return c.run()
	})
}

// checkRank validates a root, source or destination rank.
func checkRank(what string, r int) error {
	if r < 0 || r >= size {
		return fmt.Errorf("mpi: %s rank %d out of range [0, %d)", what, r, size)
	}
	return nil
}

// ready returns the state error, so that argument checks that need the
// world size run only after Init.
func ready() error {
	switch state.Load() {
	case stateNone:
		return ErrNotInitialized
	case stateFinalized:
		return ErrFinalized
	case stateFailed:
		return initErr
	}
	return nil
}

// Bcast sends buf from root to every other rank, which receive into their
// buf (of the same length and type).
func Bcast(buf any, root int) error {
	if err := ready(); err != nil {
		return err
	}
	b, err := describe(buf)
	if err != nil {
		return err
	}
	if b.k == kNone {
		return fmt.Errorf("mpi: Bcast buffer is nil")
	}
	if err := checkRank("root", root); err != nil {
		return err
	}
	return collective(call{op: "MPI_Bcast", which: C.IPP_BCAST, s: b.p, n: C.int(b.n), k: C.int(b.k), root: C.int(root)}, b)
}

// Reduce combines send element-wise across ranks with op into recv at
// root. recv is ignored on other ranks and may be nil there. At the root,
// passing the same buffer as send and recv reduces in place.
func Reduce(send, recv any, op Op, root int) error {
	if err := ready(); err != nil {
		return err
	}
	if err := checkRank("root", root); err != nil {
		return err
	}
	atRoot := rank == root
	s, r, err := pair(send, recv, !atRoot)
	if err != nil {
		return err
	}
	if err := checkOp(op, s.k); err != nil {
		return err
	}
	inplace := 0
	if atRoot {
		if r.n != s.n {
			return fmt.Errorf("mpi: Reduce receive buffer has %d elements, send buffer %d", r.n, s.n)
		}
		if inplace, err = inPlace(s, r, "Reduce"); err != nil {
			return err
		}
	} else {
		r = buffer{}
	}
	return collective(call{op: "MPI_Reduce", which: C.IPP_REDUCE, s: s.p, r: r.p, n: C.int(s.n), k: C.int(s.k), o: C.int(op), root: C.int(root), inplace: C.int(inplace)}, r)
}

// inPlace returns 1 when send and recv are the same buffer (MPI_IN_PLACE),
// 0 when disjoint, and an error for a partial overlap.
func inPlace(s, r buffer, call string) (int, error) {
	if s.p == r.p && s.n == r.n && s.back == nil && r.back == nil {
		if s.p == nil {
			return 0, nil
		}
		return 1, nil
	}
	if overlaps(s, r) {
		return 0, fmt.Errorf("mpi: %s send and receive buffers overlap", call)
	}
	return 0, nil
}

// Allreduce combines send element-wise across ranks with op into recv on
// every rank. Passing the same buffer as send and recv reduces in place.
func Allreduce(send, recv any, op Op) error {
	if err := ready(); err != nil {
		return err
	}
	s, r, err := pair(send, recv, false)
	if err != nil {
		return err
	}
	if err := checkOp(op, s.k); err != nil {
		return err
	}
	if r.n != s.n {
		return fmt.Errorf("mpi: Allreduce receive buffer has %d elements, send buffer %d", r.n, s.n)
	}
	inplace, err := inPlace(s, r, "Allreduce")
	if err != nil {
		return err
	}
	return collective(call{op: "MPI_Allreduce", which: C.IPP_ALLREDUCE, s: s.p, r: r.p, n: C.int(s.n), k: C.int(s.k), o: C.int(op), inplace: C.int(inplace)}, r)
}

// AllreduceFloat64 combines one float64 from every rank with op.
func AllreduceFloat64(x float64, op Op) (float64, error) {
	if err := checkOp(op, kFloat64); err != nil {
		return 0, err
	}
	// Heap cells: an interrupted call leaves MPI holding these pointers,
	// and collective pins them until it lets go.
	in, out := new(float64), new(float64)
	*in = x
	err := collective(call{op: "MPI_Allreduce", which: C.IPP_ALLREDUCE, s: unsafe.Pointer(in), r: unsafe.Pointer(out), n: 1, k: C.IPP_FLOAT64, o: C.int(op)}, buffer{})
	return *out, err
}

// AllreduceInt64 combines one int64 from every rank with op.
func AllreduceInt64(x int64, op Op) (int64, error) {
	if err := checkOp(op, kInt64); err != nil {
		return 0, err
	}
	in, out := new(int64), new(int64)
	*in = x
	err := collective(call{op: "MPI_Allreduce", which: C.IPP_ALLREDUCE, s: unsafe.Pointer(in), r: unsafe.Pointer(out), n: 1, k: C.IPP_INT64, o: C.int(op)}, buffer{})
	return *out, err
}

// Gather collects send from every rank, in rank order, into recv at root,
// which must hold Size()*len(send) elements. recv is ignored on other
// ranks and may be nil there.
func Gather(send, recv any, root int) error {
	if err := ready(); err != nil {
		return err
	}
	if err := checkRank("root", root); err != nil {
		return err
	}
	atRoot := rank == root
	s, r, err := pair(send, recv, !atRoot)
	if err != nil {
		return err
	}
	if atRoot {
		if r.n != size*s.n {
			return fmt.Errorf("mpi: Gather receive buffer has %d elements, want %d ranks × %d", r.n, size, s.n)
		}
		if overlaps(s, r) {
			return fmt.Errorf("mpi: Gather send and receive buffers overlap")
		}
	} else {
		r = buffer{}
	}
	return collective(call{op: "MPI_Gather", which: C.IPP_GATHER, s: s.p, r: r.p, n: C.int(s.n), k: C.int(s.k), root: C.int(root)}, r)
}

// Allgather collects send from every rank, in rank order, into recv on
// every rank; recv must hold Size()*len(send) elements.
func Allgather(send, recv any) error {
	if err := ready(); err != nil {
		return err
	}
	s, r, err := pair(send, recv, false)
	if err != nil {
		return err
	}
	if r.n != size*s.n {
		return fmt.Errorf("mpi: Allgather receive buffer has %d elements, want %d ranks × %d", r.n, size, s.n)
	}
	if overlaps(s, r) {
		return fmt.Errorf("mpi: Allgather send and receive buffers overlap")
	}
	return collective(call{op: "MPI_Allgather", which: C.IPP_ALLGATHER, s: s.p, r: r.p, n: C.int(s.n), k: C.int(s.k)}, r)
}

// Scatter splits send at root into Size() consecutive parts of len(recv)
// elements and delivers part i to rank i's recv. send is ignored on other
// ranks and may be nil there.
func Scatter(send, recv any, root int) error {
	if err := ready(); err != nil {
		return err
	}
	if err := checkRank("root", root); err != nil {
		return err
	}
	atRoot := rank == root
	// The receive buffer is the mandatory one here; reuse pair with the
	// roles swapped for its checks.
	r, s, err := pair(recv, send, !atRoot)
	if err != nil {
		return err
	}
	if atRoot {
		if s.n != size*r.n {
			return fmt.Errorf("mpi: Scatter send buffer has %d elements, want %d ranks × %d", s.n, size, r.n)
		}
		if overlaps(s, r) {
			return fmt.Errorf("mpi: Scatter send and receive buffers overlap")
		}
	} else {
		s = buffer{}
	}
	return collective(call{op: "MPI_Scatter", which: C.IPP_SCATTER, s: s.p, r: r.p, n: C.int(r.n), k: C.int(r.k), root: C.int(root)}, r)
}

// checkTag validates a message tag; wildcard says whether AnyTag is allowed.
func checkTag(tag int, wildcard bool) error {
	if wildcard && tag == AnyTag {
		return nil
	}
	if tag < 0 || tag > tagUB {
		return fmt.Errorf("mpi: tag %d out of range [0, %d]", tag, tagUB)
	}
	return nil
}

// Send sends buf to rank dest with tag (0 ≤ tag ≤ the library's
// MPI_TAG_UB, at least 32767). It blocks until buf may be reused.
func Send(buf any, dest, tag int) error {
	if err := ready(); err != nil {
		return err
	}
	b, err := describe(buf)
	if err != nil {
		return err
	}
	if b.k == kNone {
		return fmt.Errorf("mpi: Send buffer is nil")
	}
	if err := checkRank("destination", dest); err != nil {
		return err
	}
	if err := checkTag(tag, false); err != nil {
		return err
	}
	return do(func() error {
		settle()
		var q C.MPI_Request
		if err := check("MPI_Isend", C.ipp_isend(b.p, C.int(b.n), C.int(b.k), C.int(dest), C.int(tag), &q)); err != nil {
			return err
		}
		return wait("MPI_Send", &q, false, []unsafe.Pointer{b.p}, nil)
	})
}

// Recv receives a message from rank src (or AnySource) with tag (or
// AnyTag) into buf and reports where it came from and how many elements
// arrived. A message longer than buf is an error (MPI_ERR_TRUNCATE).
func Recv(buf any, src, tag int) (Status, error) {
	if err := ready(); err != nil {
		return Status{}, err
	}
	b, err := describe(buf)
	if err != nil {
		return Status{}, err
	}
	if b.k == kNone {
		return Status{}, fmt.Errorf("mpi: Recv buffer is nil")
	}
	if src != AnySource {
		if err := checkRank("source", src); err != nil {
			return Status{}, err
		}
	}
	if err := checkTag(tag, true); err != nil {
		return Status{}, err
	}
	var st Status
	err = do(func() error {
		settle()
		var q C.MPI_Request
		if err := check("MPI_Irecv", C.ipp_irecv(b.p, C.int(b.n), C.int(b.k), C.int(src), C.int(tag), &q)); err != nil {
			return err
		}
		recv := &recvStatus{k: b.k}
		if err := wait("MPI_Recv", &q, false, []unsafe.Pointer{b.p}, recv); err != nil {
			return err
		}
		st = Status{Source: int(recv.src), Tag: int(recv.tag), Count: int(recv.count)}
		b.copyBack()
		return nil
	})
	return st, err
}

// isThreadMain reports MPI_Is_thread_main as seen from the MPI goroutine;
// the tests use it to prove FUNNELED is respected.
func isThreadMain() (bool, error) {
	var main bool
	err := onMPIThread(func() error {
		main = C.ipp_is_thread_main() != 0
		return nil
	})
	return main, err
}

// callIsThreadMain reports MPI_Is_thread_main for a call made as the API
// makes its calls (do): the tests use it to prove that under SERIALIZED a
// call runs on its caller's thread, and under FUNNELED on the MPI
// goroutine's.
func callIsThreadMain() (bool, error) {
	var main bool
	err := do(func() error {
		main = C.ipp_is_thread_main() != 0
		return nil
	})
	return main, err
}

// allreduceLoopC runs n Allreduces of one float64 inside a single C call,
// on the MPI goroutine: the baseline the per-call overhead of the Go API
// is measured against.
func allreduceLoopC(n int) (time.Duration, error) {
	var secs float64
	err := onMPIThread(func() error {
		secs = float64(C.ipp_allreduce_loop(C.int(n)))
		return nil
	})
	return time.Duration(secs * float64(time.Second)), err
}
