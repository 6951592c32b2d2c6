package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/launchers"
)

func startOpts(e *testEnv, n int) *StartOptions {
	return &StartOptions{F: e.f, N: n, Daemonize: true, Controller: "local", Launcher: "local",
		WaitTimeout: 20 * time.Second, StopGrace: 2 * time.Second}
}

// recordedPIDs reads every pid in a cluster file.
func recordedPIDs(t *testing.T, path string) []int {
	t.Helper()
	f, err := launchers.ReadClusterFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	var ctl struct{ PID int }
	json.Unmarshal(f.Controller.State, &ctl)
	pids = append(pids, ctl.PID)
	for _, st := range f.Engines.Sets {
		var set struct {
			PID     int // an mpiexec set: the mpiexec process
			Engines map[string]struct{ PID int }
		}
		json.Unmarshal(st, &set)
		if set.PID != 0 {
			pids = append(pids, set.PID)
		}
		for _, e := range set.Engines {
			pids = append(pids, e.PID)
		}
	}
	return pids
}

func killAll(t *testing.T, pids *[]int) {
	t.Cleanup(func() {
		for _, pid := range *pids {
			if launchers.PIDAlive(pid) {
				t.Errorf("pid %d left running", pid)
				syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
	})
}

func TestStartEnginesStopDaemonized(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	var pids []int
	killAll(t, &pids)

	if err := startRun(ctx, startOpts(e, 2)); err != nil {
		t.Fatalf("start: %v\n%s", err, e.err)
	}
	file := wire.ClusterFile(e.profileDir(), "")
	if !strings.Contains(e.err.String(), "Leaving cluster running: "+file) {
		t.Errorf("start did not say where the cluster file is:\n%s", e.err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cluster file: %v %v", fi, err)
	}
	pids = recordedPIDs(t, file)
	if len(pids) != 3 {
		t.Fatalf("recorded pids %v, want 3", pids)
	}

	// Starting it again is refused with ALREADY_STARTED.
	err := startRun(ctx, startOpts(e, 1))
	if ExitCode(err) != ExitAlreadyStarted {
		t.Fatalf("second start: %v (exit %d), want exit 10", err, ExitCode(err))
	}

	// engines -n 1 merges a second set into the file.
	eo := &EnginesOptions{F: e.f, N: 1, Daemonize: true, WaitTimeout: 20 * time.Second, StopGrace: 2 * time.Second}
	if err := enginesRun(ctx, eo); err != nil {
		t.Fatalf("engines: %v\n%s", err, e.err)
	}
	pids = recordedPIDs(t, file)
	f, _ := launchers.ReadClusterFile(file)
	if len(pids) != 4 || f.Controller == nil || len(f.Engines.Sets) != 2 {
		t.Fatalf("after engines: pids %v, sets %v", pids, f.SetIDs())
	}

	// list shows it with registered/requested engines.
	e.out = &testutil.SyncBuffer{}
	e.f.IO.Out = e.out
	if err := listRun(ctx, &ListOptions{F: e.f, Output: "text", ProbeTimeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(e.out.String()), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "PROFILE CLUSTER ID RUNNING ENGINES LAUNCHER JOBS" ||
		strings.Join(strings.Fields(lines[1]), " ") != "default '' True 3/3 Local -" {
		t.Errorf("list output:\n%s", e.out)
	}

	if err := stopRun(ctx, &StopOptions{F: e.f, StopGrace: 2 * time.Second}); err != nil {
		t.Fatalf("stop: %v\n%s", err, e.err)
	}
	for _, pid := range pids {
		if launchers.PIDAlive(pid) {
			t.Errorf("pid %d alive after stop", pid)
		}
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("cluster file left: %v", err)
	}
	err = stopRun(ctx, &StopOptions{F: e.f, StopGrace: 2 * time.Second})
	if ExitCode(err) != ExitAlreadyStopped {
		t.Errorf("second stop: %v (exit %d), want 11", err, ExitCode(err))
	}
	err = enginesRun(ctx, eo)
	if ExitCode(err) != ExitNoCluster {
		t.Errorf("engines without a cluster: %v (exit %d), want 12", err, ExitCode(err))
	}
}

func TestStartForegroundStopsOnSignal(t *testing.T) {
	e := newTestEnv(t)
	var pids []int
	killAll(t, &pids)
	o := startOpts(e, 2)
	o.Daemonize = false
	o.ClusterID = "fg"
	done := make(chan error, 1)
	go func() { done <- startRun(context.Background(), o) }()
	file := wire.ClusterFile(e.profileDir(), "fg")
	testutil.Eventually(t, 20*time.Second, func() bool { return strings.Contains(e.err.String(), "Press Ctrl-C") },
		"foreground start to come up: %s", e.err)
	pids = recordedPIDs(t, file)

	// A signal relayed to engines does not stop anything.
	e.sigs <- syscall.SIGUSR1
	e.sigs <- syscall.SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("foreground start did not stop on SIGTERM")
	}
	for _, pid := range pids {
		if launchers.PIDAlive(pid) {
			t.Errorf("pid %d alive after Ctrl-C", pid)
		}
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("cluster file left: %v", err)
	}
}

func TestStartForegroundStopsWhenControllerExits(t *testing.T) {
	e := newTestEnv(t)
	var pids []int
	killAll(t, &pids)
	o := startOpts(e, 1)
	o.Daemonize = false
	done := make(chan error, 1)
	go func() { done <- startRun(context.Background(), o) }()
	testutil.Eventually(t, 20*time.Second, func() bool { return strings.Contains(e.err.String(), "Press Ctrl-C") },
		"foreground start to come up: %s", e.err)
	pids = recordedPIDs(t, wire.ClusterFile(e.profileDir(), ""))
	// `ipcluster stop` elsewhere (here: the same code) stops the controller.
	if err := stopRun(context.Background(), &StopOptions{F: e.f, StopGrace: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("foreground start: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("foreground start did not notice the controller exit")
	}
}

func TestStartFailsFastWhenEnginesDie(t *testing.T) {
	e := newTestEnv(t)
	t.Setenv(engineModeEnv, "fail")
	e.client.register = false
	var pids []int
	killAll(t, &pids)
	start := time.Now()
	err := startRun(context.Background(), startOpts(e, 2))
	if err == nil || !strings.Contains(err.Error(), "exited before registering") ||
		!strings.Contains(err.Error(), "cannot reach the controller") {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 15*time.Second {
		t.Errorf("took %v: did not fail fast", time.Since(start))
	}
	if _, err := os.Stat(wire.ClusterFile(e.profileDir(), "")); !os.IsNotExist(err) {
		t.Errorf("cluster file left after a failed start: %v", err)
	}
}

func TestListJSONAndStaleClusters(t *testing.T) {
	e := newTestEnv(t)
	var pids []int
	killAll(t, &pids)
	o := startOpts(e, 1)
	o.ClusterID = "j"
	if err := startRun(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	file := wire.ClusterFile(e.profileDir(), "j")
	pids = recordedPIDs(t, file)
	// A stale cluster file of a dead cluster is dropped from the list.
	stale := wire.ClusterFile(e.profileDir(), "dead")
	os.WriteFile(stale, []byte(`{"cluster":{"cluster_id":"dead"},"controller":{"class":"local","state":{"pid":999999999,"state":"running"}},"engines":{"class":"local","sets":{}}}`), 0o600)

	e.client.ids = []int{0}
	if err := listRun(context.Background(), &ListOptions{F: e.f, Output: "json", ProbeTimeout: time.Second}); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(e.out.String()), &got); err != nil {
		t.Fatalf("%v\n%s", err, e.out)
	}
	if len(got) != 1 {
		t.Fatalf("%d clusters listed, want 1:\n%s", len(got), e.out)
	}
	status := got[0]["status"].(map[string]any)
	if status["cluster_id"] != "j" || status["engines_registered"] != 1.0 || status["engines_requested"] != 1.0 ||
		got[0]["cluster"] == nil || got[0]["controller"] == nil {
		t.Errorf("entry %v", got[0])
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Error("stale cluster file kept")
	}

	// clean refuses while the cluster runs, then works after stop.
	os.WriteFile(filepath.Join(wire.LogDir(e.profileDir()), "old.log"), []byte("x"), 0o600)
	err := cleanRun(context.Background(), &CleanOptions{F: e.f})
	if err == nil || !strings.Contains(err.Error(), "running") {
		t.Fatalf("clean of a running cluster: %v", err)
	}
	if err := stopRun(context.Background(), &StopOptions{F: e.f, ClusterIDs: []string{"j"}, StopGrace: time.Second}); err != nil {
		t.Fatal(err)
	}
	if err := cleanRun(context.Background(), &CleanOptions{F: e.f}); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(e.profileDir(), "*", "*"))
	if len(left) != 0 {
		t.Errorf("files left after clean: %v", left)
	}
}

func TestStopAll(t *testing.T) {
	e := newTestEnv(t)
	var pids []int
	killAll(t, &pids)
	for _, id := range []string{"a", "b"} {
		o := startOpts(e, 1)
		o.ClusterID = id
		if err := startRun(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, recordedPIDs(t, wire.ClusterFile(e.profileDir(), id))...)
	}
	if err := stopRun(context.Background(), &StopOptions{F: e.f, All: true, StopGrace: time.Second}); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if launchers.PIDAlive(pid) {
			t.Errorf("pid %d alive", pid)
		}
	}
	e.err = &testutil.SyncBuffer{}
	e.f.IO.ErrOut = e.err
	if err := stopRun(context.Background(), &StopOptions{F: e.f, All: true}); err != nil || !strings.Contains(e.err.String(), "No clusters to stop") {
		t.Errorf("stop --all with nothing: %v %q", err, e.err)
	}
	if err := stopRun(context.Background(), &StopOptions{F: e.f, ClusterIDs: []string{"a", "zz"}}); ExitCode(err) != ExitAlreadyStopped {
		t.Errorf("stop of missing ids: %v", err)
	}
}

// newExecTestEnv is a test environment with a client file in place and
// engines 0 and 1 answering exec with results.
func newExecTestEnv(t *testing.T, results ...ExecResult) *testEnv {
	e := newTestEnv(t)
	os.MkdirAll(wire.SecurityDir(e.profileDir()), 0o700)
	os.WriteFile(wire.ClientFile(e.profileDir(), ""), []byte("{}"), 0o600)
	e.client.ids = []int{0, 1}
	e.client.results = results
	return e
}

// TestExecPrefixOnTerminal: by default each stream is prefixed only when it
// goes to a terminal, decided for standard output and standard error apart
// (here a real pty and a buffer).
func TestExecPrefixOnTerminal(t *testing.T) {
	e := newExecTestEnv(t,
		ExecResult{Engine: 0, Stdout: "42\n", Stderr: "warning\n"},
		ExecResult{Engine: 1, Stdout: "42\n"})
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pty here: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	e.f.IO.Out = tty
	if err := execRun(context.Background(), &ExecOptions{F: e.f, Code: "-"}); err != nil {
		t.Fatal(err)
	}
	// The terminal turns each \n into \r\n.
	want := "[stdout:0] 42\r\n[stdout:1] 42\r\n"
	got := make([]byte, 0, len(want))
	ptmx.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(got) < len(want) {
		buf := make([]byte, 256)
		n, err := ptmx.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	if string(got) != want {
		t.Errorf("on the terminal:\n%q\nwant\n%q", got, want)
	}
	if e.err.String() != "warning\n" {
		t.Errorf("stderr into a buffer: %q, want the bare line", e.err.String())
	}
}

func TestExecOutput(t *testing.T) {
	e := newExecTestEnv(t,
		ExecResult{Engine: 0, Stdout: "42\n", ExecutionCount: 1},
		ExecResult{Engine: 1, Stdout: "42\nmore", Stderr: "warning\n", Result: "7", ExecutionCount: 3})
	err := execRun(context.Background(), &ExecOptions{F: e.f, Code: "-", Targets: []int{0, 1}, Prefix: true})
	if err != nil {
		t.Fatal(err)
	}
	wantOut := "[stdout:0] 42\n[stdout:1] 42\n[stdout:1] more\nOut[1:3]: 7\n"
	if e.out.String() != wantOut {
		t.Errorf("stdout:\n%q\nwant\n%q", e.out.String(), wantOut)
	}
	if e.err.String() != "[stderr:1] warning\n" {
		t.Errorf("stderr %q", e.err.String())
	}
	if !slices.Equal(e.client.targets, []int{0, 1}) {
		t.Errorf("targets %v", e.client.targets)
	}

	// --bare, and the default into a pipe or file: the same lines without
	// prefixes, the value still labelled.
	for _, o := range []ExecOptions{{Bare: true}, {}} {
		e.out, e.err = &testutil.SyncBuffer{}, &testutil.SyncBuffer{}
		e.f.IO.Out, e.f.IO.ErrOut = e.out, e.err
		o.F, o.Code, o.Targets = e.f, "-", []int{0, 1}
		if err := execRun(context.Background(), &o); err != nil {
			t.Fatal(err)
		}
		if want := "42\n42\nmore\nOut[1:3]: 7\n"; e.out.String() != want {
			t.Errorf("bare %v: stdout:\n%q\nwant\n%q", o.Bare, e.out.String(), want)
		}
		if e.err.String() != "warning\n" {
			t.Errorf("bare %v: stderr %q", o.Bare, e.err.String())
		}
	}

	e.client.results = []ExecResult{
		{Engine: 0, Stdout: "partial\n", Err: &RemoteError{Name: "panic", Value: "boom", Traceback: []string{"goroutine 1:", "main.f()"}}},
		{Engine: 1},
	}
	e.out, e.err = &testutil.SyncBuffer{}, &testutil.SyncBuffer{}
	e.f.IO.Out, e.f.IO.ErrOut = e.out, e.err
	err = execRun(context.Background(), &ExecOptions{F: e.f, Code: "f()", Prefix: true})
	if err == nil || ExitCode(err) != 1 {
		t.Fatalf("failed engine: err %v", err)
	}
	if e.out.String() != "[stdout:0] partial\n" || e.err.String() != "[0:execute] panic: boom\ngoroutine 1:\nmain.f()\n" {
		t.Errorf("out %q err %q", e.out.String(), e.err.String())
	}
	if e.client.code != "f()" {
		t.Errorf("code %q", e.client.code)
	}

	// Output whose end never arrived is named on stderr; the exit status
	// stays that of the code.
	e.client.results = []ExecResult{{Engine: 0, Stdout: "1\n"}, {Engine: 1, OutputIncomplete: true}, {Engine: 2, OutputIncomplete: true}}
	e.out, e.err = &testutil.SyncBuffer{}, &testutil.SyncBuffer{}
	e.f.IO.Out, e.f.IO.ErrOut = e.out, e.err
	if err := execRun(context.Background(), &ExecOptions{F: e.f, Code: "x", Bare: true}); err != nil {
		t.Fatalf("incomplete output: %v", err)
	}
	if !strings.Contains(e.err.String(), "output of engine(s) 1,2 may be incomplete") {
		t.Errorf("incomplete output not named: stderr %q", e.err.String())
	}

	err = execRun(context.Background(), &ExecOptions{F: e.f, Code: "x", ClusterFlags: ClusterFlags{ClusterID: "none"}})
	if ExitCode(err) != ExitNoCluster {
		t.Errorf("exec without a cluster: %v", err)
	}
	e.client.ids = nil
	if err := execRun(context.Background(), &ExecOptions{F: e.f, Code: "x"}); err == nil || !strings.Contains(err.Error(), "no engines") {
		t.Errorf("exec without engines: %v", err)
	}
}

func TestListTextFormat(t *testing.T) {
	e := newTestEnv(t)
	err := writeListText(e.f, []*ClusterStatus{
		{Profile: "default", ClusterID: "", Running: true, Requested: 4, Registered: 3, Launcher: "Local"},
		{Profile: "/very/long/profile/path/profile_x", ClusterID: "1795661217-jb8d", Running: false, Requested: 2, Registered: -1, Launcher: "Slurm",
			Jobs: []launchers.JobStatus{{ID: "12", State: launchers.JobRunning}, {ID: "13", State: launchers.JobPending, Reason: "Resources"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "" +
		"PROFILE                            CLUSTER ID       RUNNING  ENGINES  LAUNCHER  JOBS\n" +
		"default                            ''               True     3/4      Local     -\n" +
		"/very/long/profile/path/profile_x  1795661217-jb8d  False    2        Slurm     12:RUNNING 13:PENDING(Resources)\n"
	if e.out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", e.out, want)
	}
}

func TestParseTargets(t *testing.T) {
	if ids, err := parseTargets("all"); err != nil || ids != nil {
		t.Errorf("all: %v %v", ids, err)
	}
	if ids, err := parseTargets(" 3, 0-1 "); err != nil || !slices.Equal(ids, []int{3, 0, 1}) {
		t.Errorf("list: %v %v", ids, err)
	}
	for _, bad := range []string{"-1", "a", "2-1", "1,"} {
		if _, err := parseTargets(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestCleanRemovesBufferFiles: clean removes task databases with their
// buffer directories (controller.BlobDir), and only those directories.
func TestCleanRemovesBufferFiles(t *testing.T) {
	e := newTestEnv(t)
	sec := wire.SecurityDir(e.profileDir())
	db := controller.DBFile(e.profileDir(), "c9")
	for _, d := range []string{controller.BlobDir(db), controller.BlobDir(db + ".prev"), filepath.Join(sec, "other.blobs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "0123.req"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(db, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cleanRun(context.Background(), &CleanOptions{F: e.f}); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(sec, "*"))
	if len(left) != 1 || filepath.Base(left[0]) != "other.blobs" {
		t.Errorf("left after clean: %v, want only other.blobs", left)
	}
}
