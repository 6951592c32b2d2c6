package cli

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// byEngine sorts exec's streamed "[stdout:N] text" lines by engine,
// keeping each engine's lines in their order: engines' lines interleave in
// arrival order, which varies from run to run.
func byEngine(out string) string {
	lines := strings.SplitAfter(out, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	engineOf := func(l string) int {
		_, rest, ok := strings.Cut(l, ":")
		if !ok || !strings.HasPrefix(l, "[std") {
			return 1 << 30
		}
		head, _, _ := strings.Cut(rest, "]")
		n, err := strconv.Atoi(head)
		if err != nil {
			return 1 << 30
		}
		return n
	}
	slices.SortStableFunc(lines, func(a, b string) int { return engineOf(a) - engineOf(b) })
	return strings.Join(lines, "")
}

func TestByEngine(t *testing.T) {
	in := "[stdout:1] b1\n[stdout:0] a1\n[stdout:1] b2\n[stdout:0] a2\nOut[0:1]: 3\n"
	if got, want := byEngine(in), "[stdout:0] a1\n[stdout:0] a2\n[stdout:1] b1\n[stdout:1] b2\nOut[0:1]: 3\n"; got != want {
		t.Errorf("byEngine:\n%s\nwant\n%s", got, want)
	}
}

func TestLinePrinter(t *testing.T) {
	var out, errOut testutil.SyncBuffer
	p := newLinePrinter(IOStreams{Out: &out, ErrOut: &errOut})
	// Chunks of two engines interleave mid-line: each line must still
	// come out whole, under its own engine.
	for _, c := range []struct {
		e        int
		s, t     string
		wantOut  string
		wantErrs string
	}{
		{0, "stdout", "hel", "", ""},
		{1, "stdout", "wor", "", ""},
		{0, "stdout", "lo\nsec", "[stdout:0] hello\n", ""},
		{1, "stderr", "oops\n\nx", "[stdout:0] hello\n", "[stderr:1] oops\n[stderr:1]\n"},
		{1, "stdout", "ld\n", "[stdout:0] hello\n[stdout:1] world\n", "[stderr:1] oops\n[stderr:1]\n"},
	} {
		p.add(ipp.Output{Engine: c.e, Stream: c.s, Text: c.t})
		if out.String() != c.wantOut || errOut.String() != c.wantErrs {
			t.Fatalf("after %q: out %q err %q, want %q %q", c.t, out.String(), errOut.String(), c.wantOut, c.wantErrs)
		}
	}
	p.flush()
	if want := "[stdout:0] hello\n[stdout:1] world\n[stdout:0] sec\n"; out.String() != want {
		t.Errorf("after flush: %q, want %q", out.String(), want)
	}
	if want := "[stderr:1] oops\n[stderr:1]\n[stderr:1] x\n"; errOut.String() != want {
		t.Errorf("stderr after flush: %q, want %q", errOut.String(), want)
	}
}

func TestSignalNames(t *testing.T) {
	for in, want := range map[string]string{
		"SIGINT": "2", "int": "2", "Int": "2", "sigterm": "15", "KILL": "9", "2": "2", "10": "10",
		"usr1": "SIGUSR1", "SIGUSR2": "SIGUSR2", "cont": "SIGCONT",
	} {
		if got, err := normalizeSignal(in); err != nil || got != want {
			t.Errorf("normalizeSignal(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "SIGFOO", "0", "-3", "interrupt"} {
		if got, err := normalizeSignal(bad); err == nil {
			t.Errorf("normalizeSignal(%q) = %q, want an error", bad, got)
		}
	}
	if signalLabel("2") != "SIGINT" || signalLabel("SIGUSR1") != "SIGUSR1" || signalLabel("40") != "signal 40" {
		t.Errorf("labels %q %q %q", signalLabel("2"), signalLabel("SIGUSR1"), signalLabel("40"))
	}
}

func TestSignalCommand(t *testing.T) {
	e := newTestEnv(t)
	os.MkdirAll(wire.SecurityDir(e.profileDir()), 0o700)
	os.WriteFile(wire.ClientFile(e.profileDir(), ""), []byte("{}"), 0o600)
	e.client.ids = []int{0, 1, 2, 3}
	cmd := NewRootCmd(e.f)
	cmd.SetArgs([]string{"signal", "--targets", "0,2-3", "int"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(e.client.signals, []string{"2"}) || e.out.String() != "SIGINT sent to engine(s) 0,2,3\n" {
		t.Errorf("signals %v, out %q", e.client.signals, e.out.String())
	}
	cmd = NewRootCmd(e.f)
	cmd.SetArgs([]string{"signal", "SIGNOPE"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), `unknown signal "SIGNOPE"`) {
		t.Errorf("unknown signal: %v", err)
	}
}

// steerRun is an `ipcluster exec` started in the background.
type steerRun struct {
	t           *testing.T
	pid         int
	out, errOut *testutil.SyncBuffer
	exited      chan int
}

func (e *e2e) startExec(ctx context.Context, args ...string) *steerRun {
	e.t.Helper()
	cmd, _, _ := e.command(ctx, append([]string{"exec", "--cluster-id", "st"}, args...)...)
	r := &steerRun{t: e.t, out: &testutil.SyncBuffer{}, errOut: &testutil.SyncBuffer{}, exited: make(chan int, 1)}
	cmd.Stdout, cmd.Stderr = r.out, r.errOut
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	r.pid = cmd.Process.Pid
	go func() { r.exited <- e.exitCode(args, cmd.Wait()) }()
	return r
}

// waitOut waits until stdout holds every string of want.
func (r *steerRun) waitOut(what string, want ...string) {
	r.t.Helper()
	testutil.Eventually(r.t, 60*time.Second, func() bool {
		for _, w := range want {
			if !strings.Contains(r.out.String(), w) {
				return false
			}
		}
		return true
	}, "%s: stdout %q, stderr %q", what, r.out, r.errOut)
}

func (r *steerRun) wait(what string) int {
	r.t.Helper()
	select {
	case code := <-r.exited:
		return code
	case <-time.After(60 * time.Second):
		r.t.Fatalf("%s: exec still running; stdout %q stderr %q", what, r.out, r.errOut)
	}
	return -1
}

func (r *steerRun) running() bool {
	select {
	case code := <-r.exited:
		r.exited <- code
		return false
	default:
		return true
	}
}

// TestExecSteering drives the real binary: output streams while the code
// runs, Ctrl-C interrupts a busy loop and the engines answer the next exec
// at once, a second Ctrl-C abandons an engine that does not answer, and
// --timeout interrupts and names the engines.
func TestExecSteering(t *testing.T) {
	e := newE2E(t)
	e.must(0, "start", "-n", "2", "--daemonize", "--cluster-id", "st", "--wait-timeout", "60")
	e.pids = recordedPIDs(t, wire.ClusterFile(e.profile, "st"))
	defer e.run("stop", "--cluster-id", "st")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Streaming: each engine's first line is on exec's stdout while the
	// engines still wait for a file that only appears after we saw it.
	gate := filepath.Join(t.TempDir(), "gate")
	r := e.startExec(ctx, "fmt.Println(\"waiting\")\nvar err error\nfor {\n_, err = os.Stat("+strconv.Quote(gate)+")\nif err == nil {\nbreak\n}\ntime.Sleep(20 * time.Millisecond)\n}\nfmt.Println(\"done\")")
	r.waitOut("streamed line before the gate", "[stdout:0] waiting\n", "[stdout:1] waiting\n")
	if !r.running() || strings.Contains(r.out.String(), "done") {
		t.Fatalf("exec finished before the gate existed: %q", r.out)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if code := r.wait("gated exec"); code != 0 || byEngine(r.out.String()) != "[stdout:0] waiting\n[stdout:0] done\n[stdout:1] waiting\n[stdout:1] done\n" {
		t.Errorf("gated exec: exit %d, stdout %q, stderr %q", code, r.out, r.errOut)
	}

	// Ctrl-C on a busy loop: every engine replies Interrupted.
	r = e.startExec(ctx, "fmt.Println(\"spin\")\nfor {\n}")
	r.waitOut("busy loop started", "[stdout:0] spin\n", "[stdout:1] spin\n")
	syscall.Kill(r.pid, syscall.SIGINT)
	code := r.wait("interrupted exec")
	errText := r.errOut.String()
	if code != ExitInterrupted || !strings.Contains(errText, "interrupting engine(s) 0,1") ||
		!strings.Contains(errText, "[0:execute] Interrupted") || !strings.Contains(errText, "[1:execute] Interrupted") {
		t.Errorf("interrupted exec: exit %d, want %d; stderr:\n%s", code, ExitInterrupted, errText)
	}
	// The next exec is answered at once: a 4 s limit is below the 5 s an
	// engine still stuck would take to answer Busy.
	if out, _ := e.must(0, "exec", "--cluster-id", "st", "--timeout", "4", "fmt.Println(os.Getpid())"); len(strings.Split(strings.TrimSpace(out), "\n")) != 2 {
		t.Errorf("exec after the interrupt: %q", out)
	}

	// `ipcluster signal` from another process interrupts the run; exec
	// then reports the engines' errors (exit 1: it was not interrupted
	// itself).
	r = e.startExec(ctx, "fmt.Println(\"spin\")\nfor {\n}")
	r.waitOut("busy loop started", "[stdout:0] spin\n", "[stdout:1] spin\n")
	if out, _ := e.must(0, "signal", "--cluster-id", "st", "int"); out != "SIGINT sent to engine(s) 0,1\n" {
		t.Errorf("signal output %q", out)
	}
	code = r.wait("exec interrupted by ipcluster signal")
	if errText = r.errOut.String(); code != ExitError || !strings.Contains(errText, "[0:execute] Interrupted") || !strings.Contains(errText, "[1:execute] Interrupted") {
		t.Errorf("exec interrupted by ipcluster signal: exit %d, want %d; stderr:\n%s", code, ExitError, errText)
	}
	if _, errOut := e.must(ExitError, "signal", "--cluster-id", "st", "--targets", "7", "INT"); !strings.Contains(errOut, "7") {
		t.Errorf("signal to a missing engine: %q", errOut)
	}

	// --timeout on a busy loop: interrupted, named, exit 124.
	r = e.startExec(ctx, "--timeout", "2", "fmt.Println(\"spin\")\nfor {\n}")
	code = r.wait("timed-out exec")
	errText = r.errOut.String()
	if code != ExitTimeout || !strings.Contains(errText, "engine(s) 0,1 had not answered and were interrupted") ||
		!strings.Contains(errText, "[1:execute] Interrupted") {
		t.Errorf("timed-out exec: exit %d, want %d; stderr:\n%s", code, ExitTimeout, errText)
	}

	// An engine that cannot answer (stopped with SIGSTOP): the first
	// Ctrl-C interrupts the other and keeps waiting; the second abandons.
	out, _ := e.must(0, "exec", "--cluster-id", "st", "--targets", "1", "fmt.Println(os.Getpid())")
	_, pidText, _ := strings.Cut(strings.TrimSpace(out), " ")
	pid1, err := strconv.Atoi(pidText)
	if err != nil {
		t.Fatalf("engine 1 pid from %q", out)
	}
	r = e.startExec(ctx, "fmt.Println(\"spin\")\nfor {\n}")
	r.waitOut("busy loop started", "[stdout:0] spin\n", "[stdout:1] spin\n")
	syscall.Kill(pid1, syscall.SIGSTOP)
	defer syscall.Kill(pid1, syscall.SIGCONT)
	syscall.Kill(r.pid, syscall.SIGINT)
	testutil.Eventually(t, 60*time.Second, func() bool { return strings.Contains(r.errOut.String(), "[0:execute] Interrupted") },
		"engine 0 not interrupted: %q", r.errOut)
	if !r.running() {
		t.Fatalf("exec returned before engine 1 answered: %q", r.errOut)
	}
	syscall.Kill(r.pid, syscall.SIGINT)
	code = r.wait("abandoning exec")
	if errText = r.errOut.String(); code != ExitInterrupted || !strings.Contains(errText, "abandoned engine(s) 1,") {
		t.Errorf("abandoning exec: exit %d, want %d; stderr:\n%s", code, ExitInterrupted, errText)
	}
	// --timeout names the engine that did not answer the interrupt.
	r = e.startExec(ctx, "--timeout", "2", "fmt.Println(\"spin\")\nfor {\n}")
	code = r.wait("timed-out exec with a stopped engine")
	if errText = r.errOut.String(); code != ExitTimeout || !strings.Contains(errText, "engine(s) 1 did not answer the interrupt") {
		t.Errorf("timed-out exec with a stopped engine: exit %d, want %d; stderr:\n%s", code, ExitTimeout, errText)
	}
	// Resumed, engine 1 reads the interrupt that waited for it.
	syscall.Kill(pid1, syscall.SIGCONT)
	if out, _ := e.must(0, "exec", "--cluster-id", "st", "--timeout", "60", "fmt.Println(7)"); byEngine(out) != "[stdout:0] 7\n[stdout:1] 7\n" {
		t.Errorf("exec after SIGCONT: %q", out)
	}
}

// TestExecMPIBarrierInterrupt: `ipcluster exec` on MPI engines (the real
// mpiexec launcher) where the last rank never reaches mpi.Barrier(): Ctrl-C
// makes every engine reply, and one Barrier on every rank recovers the set.
func TestExecMPIBarrierInterrupt(t *testing.T) {
	tag := testutil.MPITag()
	if tag == "" {
		testutil.Missing(t, "no MPI installed (pkg-config ompi or mpich)")
		return
	}
	e := newE2E(t)
	e.bin = testutil.IPCluster(t, tag)
	// MPICH's oversubscribed ranks busy-poll; keep them to 2 there.
	n := 4
	if tag == "mpich" {
		n = 2
	}
	e.env = append(e.env, "OMPI_MCA_rmaps_base_oversubscribe=1")
	e.must(0, "start", "--launcher", "mpiexec", "-n", strconv.Itoa(n), "--daemonize", "--cluster-id", "st", "--wait-timeout", "90")
	e.pids = recordedPIDs(t, wire.ClusterFile(e.profile, "st"))
	defer e.run("stop", "--cluster-id", "st")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	last := n - 1
	r := e.startExec(ctx, "fmt.Println(\"in\", mpi.Rank())\nif mpi.Rank() != "+strconv.Itoa(last)+" {\nfmt.Println(mpi.Barrier())\n}")
	var ins []string
	for i := 0; i < n; i++ {
		ins = append(ins, "[stdout:"+strconv.Itoa(i)+"] in ")
	}
	r.waitOut("every rank started", ins...)
	syscall.Kill(r.pid, syscall.SIGINT)
	code := r.wait("interrupted barrier")
	out, errText := r.out.String(), r.errOut.String()
	if code != ExitInterrupted {
		t.Errorf("interrupted barrier: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, ExitInterrupted, out, errText)
	}
	// Engine ids follow ranks in one mpiexec launch.
	for id := 0; id < last; id++ {
		if !strings.Contains(errText, "["+strconv.Itoa(id)+":execute] Interrupted") &&
			!strings.Contains(out, "[stdout:"+strconv.Itoa(id)+"] mpi: MPI_Barrier interrupted on rank") {
			t.Errorf("engine %d did not report the interrupted Barrier\nstdout:\n%s\nstderr:\n%s", id, out, errText)
		}
	}
	if strings.Contains(errText, "["+strconv.Itoa(last)+":execute]") {
		t.Errorf("the last rank, which never waited, failed:\n%s", errText)
	}
	// One Barrier everywhere brings the set back, well within the limit.
	got, _ := e.must(0, "exec", "--cluster-id", "st", "--timeout", "30", "fmt.Println(\"sync\", mpi.Barrier())")
	var want strings.Builder
	for i := 0; i < n; i++ {
		want.WriteString("[stdout:" + strconv.Itoa(i) + "] sync <nil>\n")
	}
	if byEngine(got) != want.String() {
		t.Errorf("Barrier after the interrupt:\n%s\nwant:\n%s", got, want.String())
	}
}
