package ipp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// pyCluster is a real Python ipyparallel 7.1 controller with engines, each
// in its own process group so that cleanup reaches the engines' nannies.
type pyCluster struct {
	root       string
	dir        string // profile dir
	env        []string
	controller *exec.Cmd
	mu         sync.Mutex
	engines    []*exec.Cmd
	started    map[int]string // engine pid -> its start time (startTime)
	nannies    []int
}

// newPyCluster starts a controller and n engines under root and returns
// once the connection files exist (engines may still be registering).
func newPyCluster(root string, n int) (*pyCluster, error) {
	pc := &pyCluster{root: root, dir: filepath.Join(root, "profile_test")}
	// A private IPYTHONDIR keeps the tests out of the user's profiles.
	pc.env = append(os.Environ(), "IPYTHONDIR="+filepath.Join(root, "ipython"), protocol.EnvNonInteractive+"=1")
	var err error
	pc.controller, err = pc.spawn("controller", "-m", "ipyparallel.controller", "--ip=127.0.0.1", "--profile-dir="+pc.dir)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err1 := os.Stat(wire.EngineFile(pc.dir, ""))
		_, err2 := os.Stat(wire.ClientFile(pc.dir, ""))
		if err1 == nil && err2 == nil {
			break
		}
		if time.Now().After(deadline) {
			pc.stop()
			return nil, fmt.Errorf("python controller wrote no connection files in 30s (log: %s)", pc.logPath("controller"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := 0; i < n; i++ {
		if _, err := pc.addEngine(); err != nil {
			pc.stop()
			return nil, err
		}
	}
	return pc, nil
}

// startPyCluster is newPyCluster for one test, stopped at its end.
func startPyCluster(t *testing.T, n int) *pyCluster {
	t.Helper()
	testutil.NeedPython(t, "ipyparallel", "zmq")
	pc, err := newPyCluster(t.TempDir(), n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pc.stop)
	return pc
}

func (pc *pyCluster) logPath(name string) string { return filepath.Join(pc.root, name+".log") }

func (pc *pyCluster) spawn(name string, args ...string) (*exec.Cmd, error) {
	log, err := os.Create(pc.logPath(name))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(testutil.Python, args...)
	cmd.Env = pc.env
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	go func() { cmd.Wait(); log.Close() }()
	return cmd, nil
}

// addEngine starts one more Python engine.
func (pc *pyCluster) addEngine() (*exec.Cmd, error) {
	pc.mu.Lock()
	i := len(pc.engines)
	pc.mu.Unlock()
	cmd, err := pc.spawn("engine"+strconv.Itoa(i), "-m", "ipyparallel.engine", "--profile-dir="+pc.dir)
	if err != nil {
		return nil, err
	}
	pc.mu.Lock()
	pc.engines = append(pc.engines, cmd)
	if pc.started == nil {
		pc.started = map[int]string{}
	}
	pc.started[cmd.Process.Pid] = startTime(cmd.Process.Pid)
	pc.mu.Unlock()
	return cmd, nil
}

// startTime is a process's start time in clock ticks since boot (field 22
// of /proc/PID/stat), "" if it is gone. A pid with another start time
// belongs to a newer process.
func startTime(pid int) string {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return ""
	}
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// noteNannies records the engines' nanny processes (children that run in
// a session of their own, so killing an engine's group misses them).
func (pc *pyCluster) noteNannies() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for _, e := range pc.engines {
		pid := e.Process.Pid
		if st := startTime(pid); st == "" || st != pc.started[pid] {
			// Exited, and its pid maybe reused since: the children of
			// whatever has that pid now are none of ours to kill.
			continue
		}
		for _, pid := range childPIDs(pid) {
			if !slices.Contains(pc.nannies, pid) {
				pc.nannies = append(pc.nannies, pid)
			}
		}
	}
}

// childPIDs lists the processes whose parent is pid.
func childPIDs(pid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the parenthesised command: state ppid ...
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// stop kills what this cluster started: process groups, and the nannies
// by pid.
func (pc *pyCluster) stop() {
	pc.noteNannies()
	pc.mu.Lock()
	cmds := append([]*exec.Cmd{pc.controller}, pc.engines...)
	nannies := pc.nannies
	pc.mu.Unlock()
	for _, c := range cmds {
		if c != nil && c.Process != nil {
			syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		}
	}
	for _, pid := range nannies {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// client connects to the cluster and waits for n engines.
func (pc *pyCluster) client(t testing.TB, n int) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := testOptions()
	if os.Getenv("IPP_TEST_DEBUG") != "1" {
		opts = []Option{WithLogger(testutil.FailureLog(t, 16<<10))}
	}
	c, err := ConnectProfile(ctx, pc.dir, "", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.WaitForEngines(ctx, n, WaitOptions{Progress: ProgressOff}); err != nil {
		t.Fatalf("waiting for %d python engines: %v (logs in %s)", n, err, pc.root)
	}
	pc.noteNannies()
	return c
}

// The shared Python cluster (two engines) serves every test that does not
// disturb it; it is started by the first such test and stopped by
// TestMain.
var (
	sharedPyOnce sync.Once
	sharedPy     *pyCluster
	sharedPyErr  error
)

func sharedPython(t *testing.T) *Client {
	t.Helper()
	testutil.NeedPython(t, "ipyparallel", "zmq")
	sharedPyOnce.Do(func() {
		root, err := os.MkdirTemp("", "ipp-pytest-")
		if err != nil {
			sharedPyErr = err
			return
		}
		sharedPy, sharedPyErr = newPyCluster(root, 2)
	})
	if sharedPyErr != nil {
		t.Fatalf("python cluster: %v", sharedPyErr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			sharedPy.logTails(t)
		}
	})
	return sharedPy.client(t, 2)
}

// logTails prints the end of every log of the cluster: the shared
// cluster's files are gone once the test binary exits, and CI keeps only
// what the test printed.
func (pc *pyCluster) logTails(t testing.TB) {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(pc.root, "*.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		const keep = 4 << 10
		if len(b) > keep {
			b = b[len(b)-keep:]
		}
		t.Logf("--- end of %s:\n%s", filepath.Base(l), b)
	}
}

func TestMain(m *testing.M) {
	if code, ok := childRole(); ok {
		os.Exit(code)
	}
	code := m.Run()
	if sharedPy != nil {
		sharedPy.stop()
		os.RemoveAll(sharedPy.root)
	}
	os.Exit(code)
}

// testLogger discards logs unless IPP_TEST_DEBUG=1, which shows them all.
func testLogger() *slog.Logger {
	if os.Getenv("IPP_TEST_DEBUG") != "1" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testOptions are the client options of every test.
func testOptions() []Option { return []Option{WithLogger(testLogger())} }

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestPythonExecuteStdout(t *testing.T) {
	c := sharedPython(t)
	ctx := ctxT(t, 30*time.Second)
	ar, err := c.All().Execute(ctx, "import sys, os\nprint('hello', os.getpid())\nprint('oops', file=sys.stderr)")
	if err != nil {
		t.Fatal(err)
	}
	v, err := ar.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	replies := v.([]any)
	if len(replies) != 2 {
		t.Fatalf("want 2 replies, got %d", len(replies))
	}
	for i, r := range replies {
		er := r.(*ExecuteReply)
		if !strings.HasPrefix(er.Stdout, "hello ") || er.Stderr != "oops\n" {
			t.Errorf("engine %d: stdout %q stderr %q", i, er.Stdout, er.Stderr)
		}
		if er.Engine != c.IDs()[i] {
			t.Errorf("reply %d from engine %d, want %d", i, er.Engine, c.IDs()[i])
		}
	}
	if got := ar.Stdout(); len(got) != 2 || got[0] == got[1] {
		t.Errorf("Stdout() = %q: want two different pids", got)
	}
	for _, md := range ar.Metadata() {
		if md.Status != "ok" || md.Started.IsZero() || md.Completed.IsZero() || md.Submitted.IsZero() || md.Received.IsZero() {
			t.Errorf("incomplete metadata: %+v", md)
		}
		if !md.OutputComplete {
			t.Errorf("output not complete (no idle?) for %s", md.MsgID)
		}
		if md.Completed.Before(md.Started) {
			t.Errorf("completed %v before started %v", md.Completed, md.Started)
		}
	}
}

func TestPythonExecuteResultNotSilent(t *testing.T) {
	c := sharedPython(t)
	ctx := ctxT(t, 30*time.Second)
	id := c.IDs()[0]
	ar, err := c.View(id).Execute(ctx, "40+2", Silent(false))
	if err != nil {
		t.Fatal(err)
	}
	v, err := ar.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	er := v.(*ExecuteReply)
	if er.Text() != "42" || er.Engine != id {
		t.Errorf("got %+v", er)
	}
	if md := ar.Metadata()[0]; md.ExecuteInput != "40+2" || md.ExecutionCount == 0 {
		t.Errorf("metadata %+v", md)
	}
}

func TestPythonRemoteError(t *testing.T) {
	c := sharedPython(t)
	ctx := ctxT(t, 30*time.Second)
	ids := c.IDs()
	// Single engine: the RemoteError itself.
	ar, err := c.View(ids[1]).Execute(ctx, "1/0")
	if err != nil {
		t.Fatal(err)
	}
	_, err = ar.Get(ctx)
	var re *RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("want *RemoteError, got %T %v", err, err)
	}
	if re.EName != "ZeroDivisionError" || re.EValue != "division by zero" || re.Engine != ids[1] || len(re.Traceback) == 0 {
		t.Errorf("bad RemoteError %+v", re)
	}
	if !strings.Contains(re.Error(), "ZeroDivisionError: division by zero") {
		t.Errorf("Error() = %q", re.Error())
	}
	// Both engines, one failing: a CompositeError with the other's result.
	ar, err = c.All().Execute(ctx, "import os\nif os.getpid() % 1 == 0 and "+strconv.Quote("x")+" and engine_fail: raise ValueError('bad')\nprint('fine')", Silent(true))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = ar.Get(ctx) // engine_fail is undefined everywhere: both fail with NameError
	if _, err := c.View(ids[0]).Execute(ctx, "engine_fail = True"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.View(ids[1]).Execute(ctx, "engine_fail = False"); err != nil {
		t.Fatal(err)
	}
	ar, err = c.All().Execute(ctx, "if engine_fail: raise ValueError('bad')\nprint('fine')")
	if err != nil {
		t.Fatal(err)
	}
	v, err := ar.Get(ctx)
	var ce *CompositeError
	if !errors.As(err, &ce) {
		t.Fatalf("want *CompositeError, got %T %v", err, err)
	}
	if len(ce.Errors) != 1 || ce.Errors[0].EName != "ValueError" || ce.Errors[0].Engine != ids[0] {
		t.Fatalf("errors: %+v", ce.Errors)
	}
	list := v.([]any)
	if list[0] != nil || list[1].(*ExecuteReply).Stdout != "fine\n" {
		t.Errorf("partial results %v", list)
	}
	if !errors.As(err, &re) || re.EName != "ValueError" {
		t.Errorf("errors.As through CompositeError failed")
	}
}

func TestPythonQueueStatusAndHub(t *testing.T) {
	c := sharedPython(t)
	ctx := ctxT(t, 30*time.Second)
	ar, err := c.All().Execute(ctx, "x = 1")
	if err != nil {
		t.Fatal(err)
	}
	if err := ar.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	// The Python hub learns of completions through its monitor socket,
	// asynchronously: it may still count the request as queued just after
	// the client has the reply. Poll until it catches up.
	var qs *QueueStatus
	settled := func() bool {
		if qs, err = c.QueueStatus(ctx); err != nil {
			return false
		}
		for _, id := range c.IDs() {
			if qs.Engines[id].Completed < 1 || qs.Engines[id].Queue != 0 {
				return false
			}
		}
		return true
	}
	testutil.Eventually(t, 10*time.Second, settled, "the hub counts every request completed and none queued")
	rs, err := c.ResultStatus(ctx, ar.MsgIDs()...)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Completed) != 2 || len(rs.Pending) != 0 {
		t.Errorf("result status %+v", rs)
	}
	hist, err := c.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) < 2 {
		t.Errorf("history %v", hist)
	}
	engines, err := c.Engines(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(engines) != 2 || engines[0].UUID == "" {
		t.Errorf("engines %+v", engines)
	}
	if _, err := c.QueueStatus(ctx, 999); err == nil {
		t.Error("queue status of an unknown engine should fail")
	}
	if err := c.Purge(ctx, ar.MsgIDs()); err != nil {
		t.Fatal(err)
	}
	if err := c.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	// After clear_request the namespace is empty: x is gone.
	ar, err = c.All().Execute(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.Get(ctx); !errors.As(err, new(*CompositeError)) {
		t.Errorf("x survived clear: %v", err)
	}
}

func TestPythonLoadBalanced(t *testing.T) {
	c := sharedPython(t)
	ctx := ctxT(t, 30*time.Second)
	lb := c.LoadBalanced()
	var ars []*AsyncResult
	for i := 0; i < 6; i++ {
		ar, err := lb.Execute(ctx, "import time, os\ntime.sleep(0.05)\nprint(os.getpid())")
		if err != nil {
			t.Fatal(err)
		}
		ars = append(ars, ar)
	}
	engines := map[int]bool{}
	for _, ar := range ars {
		v, err := ar.Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		engines[v.(*ExecuteReply).Engine] = true
		if ar.Metadata()[0].EngineID < 0 {
			t.Errorf("no engine id in task metadata")
		}
	}
	if len(engines) != 2 {
		t.Errorf("tasks ran on %v, want both engines", engines)
	}
	// A dependency on a failed task is impossible: the scheduler fails the
	// task itself (no engine_info, no IOPub).
	bad, err := lb.Execute(ctx, "1/0")
	if err != nil {
		t.Fatal(err)
	}
	bad.Wait(ctx)
	dep, err := lb.WithAfter(bad).Execute(ctx, "print('never')")
	if err != nil {
		t.Fatal(err)
	}
	_, err = dep.Get(ctx)
	var re *RemoteError
	if !errors.As(err, &re) || re.EName != "ImpossibleDependency" {
		t.Fatalf("want ImpossibleDependency, got %v", err)
	}
	// Targets restrict placement.
	id := c.IDs()[1]
	ar, err := c.LoadBalanced(id).Execute(ctx, "pass")
	if err != nil {
		t.Fatal(err)
	}
	v, err := ar.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.(*ExecuteReply).Engine != id {
		t.Errorf("targeted task ran on %d, want %d", v.(*ExecuteReply).Engine, id)
	}
}

func TestPythonAbort(t *testing.T) {
	c := sharedPython(t)
	ctx := ctxT(t, 30*time.Second)
	v := c.View(c.IDs()[0])
	slow, err := v.Execute(ctx, "import time; time.sleep(1)")
	if err != nil {
		t.Fatal(err)
	}
	queued, err := v.Execute(ctx, "print('should not run')")
	if err != nil {
		t.Fatal(err)
	}
	if err := queued.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := slow.Get(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = queued.Get(ctx)
	var re *RemoteError
	if !errors.As(err, &re) || re.EName != "TaskAborted" {
		t.Fatalf("want TaskAborted, got %v", err)
	}
}

// TestPythonEngineDeath kills an engine with SIGKILL while it runs a direct
// request; the request must fail with an EngineError instead of hanging.
func TestPythonEngineDeath(t *testing.T) {
	pc := startPyCluster(t, 2)
	c := pc.client(t, 2)
	ctx := ctxT(t, 60*time.Second)
	ar, err := c.All().Execute(ctx, "import os; print(os.getpid())")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ar.Get(ctx); err != nil {
		t.Fatal(err)
	}
	pids := map[int]int{} // pid -> engine id
	for i, out := range ar.Stdout() {
		pid, _ := strconv.Atoi(strings.TrimSpace(out))
		pids[pid] = ar.EngineIDs()[i]
	}
	victim := pc.engines[0]
	vid, ok := pids[victim.Process.Pid]
	if !ok {
		t.Fatalf("engine pids %v do not include %d", pids, victim.Process.Pid)
	}
	long, err := c.View(vid).Execute(ctx, "import time; time.sleep(60)")
	if err != nil {
		t.Fatal(err)
	}
	// Wait until it is running (the engine reported started) before killing.
	testutil.Eventually(t, 10*time.Second, func() bool {
		rs, err := c.QueueStatus(ctx, vid)
		return err == nil && rs.Engines[vid].Queue == 1
	}, "request never queued")
	victim.Process.Signal(syscall.SIGKILL)
	_, err = long.Get(ctx)
	if !IsEngineError(err) {
		t.Fatalf("want EngineError, got %v", err)
	}
	var re *RemoteError
	errors.As(err, &re)
	if re.Engine != vid {
		t.Errorf("EngineError names engine %d, want %d", re.Engine, vid)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return len(c.IDs()) == 1 }, "dead engine still listed: %v", c.IDs())
	// WaitForEngines fails fast when an engine unregisters while waiting.
	other := c.IDs()[0]
	errc := make(chan error, 1)
	go func() { errc <- c.WaitForEngines(ctx, 5, WaitOptions{Progress: ProgressOff}) }()
	for _, cmd := range pc.engines[1:] {
		if pids[cmd.Process.Pid] == other {
			// Kill only once WaitForEngines watches the registrations,
			// so that it sees the unregistration arrive.
			testutil.Eventually(t, 10*time.Second, func() bool {
				c.mu.Lock()
				defer c.mu.Unlock()
				return len(c.watchers) > 0
			}, "WaitForEngines never started watching")
			cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	select {
	case err := <-errc:
		if !IsEngineError(err) {
			t.Fatalf("WaitForEngines: want EngineError, got %v", err)
		}
	case <-ctx.Done():
		t.Fatal("WaitForEngines did not fail fast")
	}
}

func TestPythonBroadcast(t *testing.T) {
	c := sharedPython(t)
	ctx := ctxT(t, 30*time.Second)
	ar, err := c.Broadcast().Execute(ctx, "import os\nprint(os.getpid())")
	if err != nil {
		t.Fatal(err)
	}
	v, err := ar.Get(ctx)
	if err != nil {
		// Which engines answered tells a lost request from lost output.
		t.Fatalf("%v (complete %d of 2; metadata %+v)", err, ar.Progress(), ar.Metadata())
	}
	out := ar.Stdout()
	if len(v.([]any)) != 2 || out[0] == "" || out[0] == out[1] {
		t.Errorf("broadcast stdout %q", out)
	}
	if ids := ar.EngineIDs(); !slices.Equal(ids, c.IDs()) {
		t.Errorf("broadcast engines %v, want %v", ids, c.IDs())
	}
}
