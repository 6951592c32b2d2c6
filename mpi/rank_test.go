//go:build (ompi && !mpich) || (mpich && !ompi)

package mpi

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"time"

	"gonum.org/v1/gonum/mat"
)

// rankMain is one MPI rank of the collective tests. Every expected value
// is computed locally from rank and size, independently of MPI. The first
// failure aborts the whole job, because the other ranks would otherwise
// wait forever in the next collective.
func rankMain() int {
	if err := Init(); err != nil {
		fmt.Println("FAIL Init:", err)
		return 1
	}
	r, n := Rank(), Size()
	failf := func(format string, args ...any) {
		fmt.Printf("FAIL rank %d/%d: %s\n", r, n, fmt.Sprintf(format, args...))
		os.Stdout.Sync()
		Abort(1)
		os.Exit(1)
	}
	must := func(what string, err error) {
		if err != nil {
			failf("%s: %v", what, err)
		}
	}

	if r < 0 || r >= n {
		failf("rank %d outside size %d", r, n)
	}
	if main, err := isThreadMain(); err != nil || !main {
		failf("MPI calls do not run on the thread that initialised MPI (FUNNELED): %v %v", main, err)
	}
	if name, err := ProcessorName(); err != nil || name == "" {
		failf("ProcessorName() = %q, %v", name, err)
	}
	must("Init again", Init())
	must("Barrier", Barrier())

	checkBcast(r, n, failf)
	checkAllreduce[float64](r, n, []Op{Sum, Prod, Min, Max}, failf)
	checkAllreduce[float32](r, n, []Op{Sum, Prod, Min, Max}, failf)
	checkAllreduce[int64](r, n, allOps, failf)
	checkAllreduce[int32](r, n, allOps, failf)
	checkAllreduce[byte](r, n, allOps, failf)
	checkReduceAndScalars(r, n, failf)
	checkGatherScatter(r, n, failf)
	checkGonum(r, n, failf)
	checkSendRecv(r, n, failf)
	checkRefusals(r, n, failf)
	checkThreads(r, n, failf)
	checkInterrupt(r, n, failf)
	bench(r, n, failf)

	must("Finalize", Finalize())
	if err := Barrier(); !errors.Is(err, ErrFinalized) {
		failf("Barrier after Finalize = %v, want ErrFinalized", err)
	}
	if err := Init(); !errors.Is(err, ErrFinalized) {
		failf("Init after Finalize = %v, want ErrFinalized", err)
	}
	fmt.Printf("PASS rank %d/%d %s\n", r, n, Flavor())
	return 0
}

var allOps = []Op{Sum, Prod, Min, Max, LAnd, LOr, BAnd, BOr}

type elem interface {
	~float64 | ~float32 | ~int64 | ~int32 | ~byte
}

// gen is the value rank r contributes at index i: small, non-negative,
// exact in every element type, sometimes zero (for the logical ops).
func gen(r, i int) int64 { return int64((r*3 + i*5) % 7) }

// reference reduces the values every rank contributes at index i, in
// int64; converting to the element type afterwards gives the same result
// as reducing in that type (wrap-around included) for these values.
func reference(op Op, n, i int) int64 {
	acc := gen(0, i)
	for r := 1; r < n; r++ {
		v := gen(r, i)
		switch op {
		case Sum:
			acc += v
		case Prod:
			acc *= v
		case Min:
			acc = min(acc, v)
		case Max:
			acc = max(acc, v)
		case LAnd:
			acc = b2i(acc != 0 && v != 0)
		case LOr:
			acc = b2i(acc != 0 || v != 0)
		case BAnd:
			acc &= v
		case BOr:
			acc |= v
		}
	}
	return acc
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func checkAllreduce[T elem](r, n int, ops []Op, failf func(string, ...any)) {
	const length = 9
	for _, op := range ops {
		send := make([]T, length)
		for i := range send {
			send[i] = T(gen(r, i))
		}
		recv := make([]T, length)
		if err := Allreduce(send, recv, op); err != nil {
			failf("Allreduce %T %v: %v", send, op, err)
		}
		for i, got := range recv {
			// With one rank MPI returns a logical op's operand as is,
			// and the reference does the same.
			if want := T(reference(op, n, i)); got != want {
				failf("Allreduce %T %v [%d] = %v, want %v", send, op, i, got, want)
			}
		}
		// The same buffer as send and recv: MPI_IN_PLACE.
		if err := Allreduce(send, send, op); err != nil {
			failf("in-place Allreduce %T %v: %v", send, op, err)
		}
		if !slices.Equal(send, recv) {
			failf("in-place Allreduce %T %v = %v, want %v", send, op, send, recv)
		}
	}
}

func checkBcast(r, n int, failf func(string, ...any)) {
	root := n - 1
	want := []int32{7, -3, 1 << 30, int32(n)}
	buf := make([]int32, len(want))
	if r == root {
		copy(buf, want)
	}
	if err := Bcast(buf, root); err != nil {
		failf("Bcast: %v", err)
	}
	if !slices.Equal(buf, want) {
		failf("Bcast = %v, want %v", buf, want)
	}
	bytesBuf := []byte("........")
	if r == 0 {
		copy(bytesBuf, "ipp-hpc!")
	}
	if err := Bcast(bytesBuf, 0); err != nil || string(bytesBuf) != "ipp-hpc!" {
		failf("Bcast bytes = %q, %v", bytesBuf, err)
	}
	if err := Bcast([]float64{}, 0); err != nil {
		failf("Bcast of an empty slice: %v", err)
	}
}

func checkReduceAndScalars(r, n int, failf func(string, ...any)) {
	root := n / 2
	send := []float64{float64(r), 1, float64(-r)}
	var recv []float64
	if r == root {
		recv = make([]float64, 3)
	}
	// recv is nil off root: MPI ignores it there.
	if err := Reduce(send, recv, Max, root); err != nil {
		failf("Reduce: %v", err)
	}
	if r == root && !slices.Equal(recv, []float64{float64(n - 1), 1, 0}) {
		failf("Reduce Max = %v", recv)
	}
	// In place at the root.
	inout := []int64{int64(r + 1)}
	var other any
	if r == root {
		other = inout
	}
	if err := Reduce(inout, other, Sum, root); err != nil {
		failf("in-place Reduce: %v", err)
	}
	if r == root && inout[0] != int64(n*(n+1)/2) {
		failf("in-place Reduce Sum = %d, want %d", inout[0], n*(n+1)/2)
	}

	s, err := AllreduceFloat64(float64(r)+0.5, Sum)
	if want := float64(n*(n-1))/2 + 0.5*float64(n); err != nil || s != want {
		failf("AllreduceFloat64 Sum = %v, %v; want %v", s, err, want)
	}
	m, err := AllreduceInt64(int64(1)<<r, BOr)
	if want := int64(1)<<n - 1; err != nil || m != want {
		failf("AllreduceInt64 BOr = %v, %v; want %v", m, err, want)
	}
}

func checkGatherScatter(r, n int, failf func(string, ...any)) {
	root := n - 1
	send := []int64{int64(r), int64(r * 10)}
	var recv []int64
	if r == root {
		recv = make([]int64, 2*n)
	}
	if err := Gather(send, recv, root); err != nil {
		failf("Gather: %v", err)
	}
	if r == root {
		for k := 0; k < n; k++ {
			if recv[2*k] != int64(k) || recv[2*k+1] != int64(k*10) {
				failf("Gather = %v", recv)
			}
		}
	}

	all := make([]float32, n)
	if err := Allgather([]float32{float32(r) / 4}, all); err != nil {
		failf("Allgather: %v", err)
	}
	for k, v := range all {
		if v != float32(k)/4 {
			failf("Allgather = %v", all)
		}
	}

	var whole []byte
	if r == 0 {
		whole = make([]byte, 3*n)
		for i := range whole {
			whole[i] = byte(i)
		}
	}
	part := make([]byte, 3)
	if err := Scatter(whole, part, 0); err != nil {
		failf("Scatter: %v", err)
	}
	if !slices.Equal(part, []byte{byte(3 * r), byte(3*r + 1), byte(3*r + 2)}) {
		failf("Scatter part = %v", part)
	}
}

func checkGonum(r, n int, failf func(string, ...any)) {
	a := mat.NewDense(2, 3, []float64{1, 2, 3, 4, 5, float64(r)})
	sum := mat.NewDense(2, 3, nil)
	if err := Allreduce(a, sum, Sum); err != nil {
		failf("Allreduce Dense: %v", err)
	}
	want := mat.NewDense(2, 3, []float64{float64(n), float64(2 * n), float64(3 * n), float64(4 * n), float64(5 * n), float64(n * (n - 1) / 2)})
	if !mat.Equal(sum, want) {
		failf("Allreduce Dense = %v, want %v", mat.Formatted(sum), mat.Formatted(want))
	}

	// A view whose rows are not adjacent goes through a copy; the
	// elements around it must stay untouched.
	big := mat.NewDense(3, 4, nil)
	for i := range 3 {
		for j := range 4 {
			big.Set(i, j, -1)
		}
	}
	view := big.Slice(1, 3, 1, 3).(*mat.Dense)
	if r == 0 {
		view.Copy(mat.NewDense(2, 2, []float64{10, 20, 30, 40}))
	}
	if err := Bcast(view, 0); err != nil {
		failf("Bcast strided Dense: %v", err)
	}
	wantBig := mat.NewDense(3, 4, []float64{-1, -1, -1, -1, -1, 10, 20, -1, -1, 30, 40, -1})
	if !mat.Equal(big, wantBig) {
		failf("Bcast strided Dense left %v", mat.Formatted(big))
	}

	v := mat.NewVecDense(2, []float64{float64(r), 1})
	g := mat.NewVecDense(2*n, nil)
	if err := Allgather(v, g); err != nil {
		failf("Allgather VecDense: %v", err)
	}
	for k := 0; k < n; k++ {
		if g.AtVec(2*k) != float64(k) || g.AtVec(2*k+1) != 1 {
			failf("Allgather VecDense = %v", g.RawVector().Data)
		}
	}
	// A strided vector (a column) as the receive buffer.
	col := mat.NewDense(2, 2, nil).ColView(1).(*mat.VecDense)
	if err := Allreduce(mat.NewVecDense(2, []float64{1, float64(r)}), col, Max); err != nil {
		failf("Allreduce into a column: %v", err)
	}
	if col.AtVec(0) != 1 || col.AtVec(1) != float64(n-1) {
		failf("Allreduce into a column = %v, %v", col.AtVec(0), col.AtVec(1))
	}
}

func checkSendRecv(r, n int, failf func(string, ...any)) {
	// Pairs (0,1), (2,3), …: the even rank sends first, so the blocking
	// calls cannot form a cycle. An unpaired last rank sits this out.
	peer := r ^ 1
	if peer >= n {
		return
	}
	msg := []float64{float64(r), 1.5, 2.5}
	got := make([]float64, 5)
	if r%2 == 0 {
		if err := Send(msg, peer, 40+r); err != nil {
			failf("Send: %v", err)
		}
		st, err := Recv(got, peer, 40+peer)
		if err != nil || st != (Status{Source: peer, Tag: 40 + peer, Count: 3}) {
			failf("Recv = %+v, %v", st, err)
		}
	} else {
		st, err := Recv(got, AnySource, AnyTag)
		if err != nil || st != (Status{Source: peer, Tag: 40 + peer, Count: 3}) {
			failf("Recv(AnySource, AnyTag) = %+v, %v", st, err)
		}
		if err := Send(msg, peer, 40+r); err != nil {
			failf("Send: %v", err)
		}
	}
	if !slices.Equal(got[:3], []float64{float64(peer), 1.5, 2.5}) {
		failf("Recv data = %v", got)
	}

	// A message longer than the buffer is an MPI error, not a crash.
	if r%2 == 0 {
		if err := Send([]int32{1, 2, 3, 4}, peer, 9); err != nil {
			failf("Send long: %v", err)
		}
	} else {
		_, err := Recv(make([]int32, 2), peer, 9)
		var mpiErr *Error
		if !errors.As(err, &mpiErr) {
			failf("Recv into a short buffer = %v, want an *mpi.Error", err)
		}
	}
	if err := Barrier(); err != nil {
		failf("Barrier after truncation: %v", err)
	}
}

// checkRefusals calls every function with arguments it must refuse before
// reaching MPI; all ranks get the same errors, so no rank is left waiting.
func checkRefusals(r, n int, failf func(string, ...any)) {
	f := []float64{1, 2}
	i := []int32{1, 2}
	cases := map[string]error{
		"type mismatch":        Allreduce(f, i, Sum),
		"length mismatch":      Allreduce(f, make([]float64, 3), Sum),
		"bitwise on floats":    Allreduce(f, make([]float64, 2), BAnd),
		"logical on float32s":  Allreduce([]float32{1}, []float32{0}, LOr),
		"invalid op":           Allreduce(i, make([]int32, 2), Op(0)),
		"scalar bitwise float": func() error { _, err := AllreduceFloat64(1, BOr); return err }(),
		"unsupported type":     Bcast([]int{1}, 0),
		"nil Dense":            Bcast((*mat.Dense)(nil), 0),
		"nil recv":             Allreduce(f, nil, Sum),
		"root out of range":    Bcast(f, n),
		"negative root":        Reduce(f, f, Sum, -1),
		"partial overlap":      Allreduce(f[:2], f[1:], Sum),
		// Every rank is the root in its own call, so all refuse.
		"gather recv size":  Gather(f, make([]float64, 2*n+1), r),
		"scatter send size": Scatter(make([]float64, 2*n-1), f, r),
		"allgather size":    Allgather(f, make([]float64, n)),
		"bad dest":          Send(f, n, 0),
		"bad tag":           Send(f, 0, -5),
		"bad source":        func() error { _, err := Recv(f, n, 0); return err }(),
	}
	for name, err := range cases {
		if err == nil {
			failf("%s was accepted", name)
		}
		var mpiErr *Error
		if errors.As(err, &mpiErr) {
			failf("%s reached MPI: %v", name, err)
		}
	}
}

// checkThreads checks the thread level Init settled on against the one
// the environment asked for, that calls run where that level says (on the
// caller's thread under SERIALIZED, on the MPI goroutine's under
// FUNNELED), and that collectives called from several goroutines at once
// all complete, also while a Run holds the MPI goroutine.
func checkThreads(r, n int, failf func(string, ...any)) {
	wantSerialized := os.Getenv(levelEnv) != "funneled"
	level := ThreadLevel()
	if serialized != wantSerialized || (serialized && level != "serialized" && level != "multiple") {
		failf("ThreadLevel() = %q, serialized %v; want serialized %v ($%s=%q)", level, serialized, wantSerialized, levelEnv, os.Getenv(levelEnv))
	}
	// A goroutine locked to a thread of its own is certainly not on the
	// MPI goroutine's thread.
	type answer struct {
		main bool
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		m, err := callIsThreadMain()
		got <- answer{m, err}
	}()
	if a := <-got; a.err != nil || a.main == serialized {
		failf("a call from another thread ran on the MPI thread: %v (serialized %v), %v", a.main, serialized, a.err)
	}

	// Identical collectives pair up whatever order the goroutines of one
	// rank reach MPI in, so every call must return the full sum.
	const workers, calls = 4, 50
	errs := make(chan error, workers+1)
	for range workers {
		go func() {
			for range calls {
				v, err := AllreduceInt64(1, Sum)
				if err == nil && v != int64(n) {
					err = fmt.Errorf("sum %d, want %d", v, n)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	// One more worker holds the MPI goroutine with Run meanwhile; the
	// others wait for it and then go on. Its calls are not collectives:
	// inside Run they would be MPI's blocking forms, which MPI never
	// pairs with the nonblocking ones the other ranks' workers make.
	go func() {
		var err error
		if rerr := Run(func() {
			for range calls {
				var main bool
				if main, err = callIsThreadMain(); err == nil && !main {
					err = fmt.Errorf("a call inside Run did not run on the MPI thread")
				}
				if err != nil {
					return
				}
			}
		}); rerr != nil {
			err = rerr
		}
		errs <- err
	}()
	for range workers + 1 {
		if err := <-errs; err != nil {
			failf("concurrent Allreduce: %v", err)
		}
	}
	if err := Barrier(); err != nil {
		failf("Barrier after the concurrent calls: %v", err)
	}
}

// checkInterrupt leaves the last rank out of a Barrier, interrupts the
// others, and checks that they refuse other collectives with the reason,
// that one Barrier on every rank brings them back in step, and that an
// interrupted receive is withdrawn.
func checkInterrupt(r, n int, failf func(string, ...any)) {
	if n < 2 {
		return
	}
	last := n - 1
	if r != last {
		done := make(chan error, 1)
		go func() { done <- Barrier() }()
		deadline := time.Now().Add(time.Minute)
		for waiting.Load() == 0 {
			if time.Now().After(deadline) {
				failf("Barrier never started waiting")
			}
			runtime.Gosched()
		}
		// Another goroutine's collective waits its turn behind the
		// Barrier (for the mutex, or in the hand-off queue): the interrupt
		// must not leave it stuck there.
		queued := make(chan error, 1)
		go func() { _, err := AllreduceInt64(1, Sum); queued <- err }()
		Interrupt()
		err := <-done
		var ie *InterruptedError
		if !errors.As(err, &ie) || ie.Op != "MPI_Barrier" || ie.Withdrawn {
			failf("interrupted Barrier = %v, want an InterruptedError for MPI_Barrier", err)
		}
		ResetInterrupt()
		// It either saw the interrupt or found the Barrier pending.
		qerr := <-queued
		var qpe *PendingError
		var qie *InterruptedError
		if !errors.As(qerr, &qpe) && !errors.As(qerr, &qie) {
			failf("Allreduce queued behind the interrupted Barrier = %v, want a PendingError or InterruptedError", qerr)
		}
		_, err = AllreduceInt64(1, Sum)
		var pe *PendingError
		if !errors.As(err, &pe) || pe.Pending != "MPI_Barrier" || pe.Op != "MPI_Allreduce" {
			failf("Allreduce with a Barrier pending = %v, want a PendingError", err)
		}
		// Point-to-point still works, and tells the last rank it may now
		// complete the Barrier.
		if err := Send([]int64{int64(r)}, last, 78); err != nil {
			failf("Send with a Barrier pending: %v", err)
		}
	} else {
		for i := 0; i < last; i++ {
			if _, err := Recv([]int64{0}, AnySource, 78); err != nil {
				failf("Recv of the go-ahead: %v", err)
			}
		}
	}
	// Every rank's next Barrier pairs with the pending one.
	if err := Barrier(); err != nil {
		failf("Barrier to get back in step: %v", err)
	}
	if v, err := AllreduceInt64(1, Sum); err != nil || v != int64(n) {
		failf("Allreduce after recovery = %d, %v; want %d", v, err, n)
	}
	// A receive that nothing matches is withdrawn by the interrupt; the
	// message sent later must go to the next receive, not the cancelled one.
	buf := []int64{-1}
	if r == 0 {
		done := make(chan error, 1)
		go func() { _, err := Recv(buf, 1, 77); done <- err }()
		deadline := time.Now().Add(time.Minute)
		for waiting.Load() == 0 {
			if time.Now().After(deadline) {
				failf("Recv never started waiting")
			}
			runtime.Gosched()
		}
		Interrupt()
		err := <-done
		var ie *InterruptedError
		if !errors.As(err, &ie) || !ie.Withdrawn {
			failf("interrupted Recv = %v, want a withdrawn InterruptedError", err)
		}
		ResetInterrupt()
	}
	if err := Barrier(); err != nil {
		failf("Barrier after the interrupted Recv: %v", err)
	}
	switch r {
	case 0:
		if st, err := Recv(buf, 1, 77); err != nil || buf[0] != 42 || st.Count != 1 {
			failf("Recv after the interrupted one = %v %v %v", buf, st, err)
		}
	case 1:
		if err := Send([]int64{42}, 0, 77); err != nil {
			failf("Send: %v", err)
		}
	}
}

// bench compares n Allreduces of one float64 through the API (a closure
// handed to the MPI goroutine per call) with the same loop inside one C
// call, and the bare hand-off with no MPI call at all.
func bench(r, n int, failf func(string, ...any)) {
	iters := 5000
	if Flavor() == "mpich" && n > 2 {
		iters = 50 // oversubscribed MPICH busy-polls; keep it short
	}
	goLoop := func() time.Duration {
		if err := Barrier(); err != nil {
			failf("Barrier: %v", err)
		}
		t0 := time.Now()
		for range iters {
			if _, err := AllreduceFloat64(1, Sum); err != nil {
				failf("AllreduceFloat64: %v", err)
			}
		}
		return time.Since(t0)
	}
	goLoop() // warm-up
	g1 := goLoop()
	// The same loop inside Run: the calls skip the hand-off.
	var g0 time.Duration
	if err := Run(func() { g0 = goLoop() }); err != nil {
		failf("Run: %v", err)
	}
	if err := Barrier(); err != nil {
		failf("Barrier: %v", err)
	}
	c, err := allreduceLoopC(iters)
	if err != nil {
		failf("C loop: %v", err)
	}
	g2 := goLoop()
	t0 := time.Now()
	for range iters {
		if _, err := isThreadMain(); err != nil {
			failf("hand-off: %v", err)
		}
	}
	h := time.Since(t0)
	if r == 0 {
		per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(iters) / 1000 }
		fmt.Printf("BENCH %s n=%d Allreduce(1 float64) x%d: API %.2f / %.2f µs/op, API inside Run %.2f µs/op, C loop %.2f µs/op; bare hand-off to the MPI goroutine %.2f µs\n",
			Flavor(), n, iters, per(g1), per(g2), per(g0), per(c), per(h))
	}
}
