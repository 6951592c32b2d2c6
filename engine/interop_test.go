//go:build unix

package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/interp"
	"github.com/ipp-hpc/ipp/internal/testutil"
)

// interopClient is run by Debian's Python with the real ipyparallel 7.1
// client against the real controller our engine registered with. It
// prints one JSON object with what it saw.
const interopClient = `
import json, sys
import ipyparallel as ipp

out = {}
rc = ipp.Client(profile_dir=sys.argv[1], timeout=30)
rc.wait_for_engines(1, timeout=60)
out["ids"] = rc.ids
dv = rc[:]

dv.execute("x := 6 * 7").get(timeout=30)
# As the brief has it: a blocking execute, then its stdout.
ar = dv.execute("fmt.Println(x)", block=True)
ar.wait_for_output(timeout=30)
out["stdout"] = ar.stdout

try:
    rc[0].apply_sync(lambda: 1)
    out["apply"] = "no error"
except ipp.RemoteError as e:
    out["apply"] = type(e).__name__
    out["apply_ename"] = e.ename
    out["apply_evalue"] = e.evalue

try:
    dv.apply(lambda: 1).get(timeout=30)
    out["composite"] = "no error"
except ipp.CompositeError as e:
    out["composite"] = [list(x[:2]) for x in e.elist]

try:
    dv.execute("undefinedName + 1").get(timeout=30)
    out["exec_error"] = "no error"
except ipp.CompositeError as e:
    out["exec_error"] = e.elist[0][0]

bv = rc.broadcast_view()
bar = bv.execute('fmt.Println("via broadcast", x)')
bar.get(timeout=30)
bar.wait_for_output(timeout=30)
out["broadcast_stdout"] = bar.stdout

rc.clear(block=True)
try:
    dv.execute("fmt.Println(x)").get(timeout=30)
    out["after_clear"] = "x still defined"
except ipp.CompositeError as e:
    out["after_clear"] = "error"

rc.shutdown(hub=True)
print(json.dumps(out))
`

// TestPythonInterop registers our engine with the real Python controller
// and drives it with the real Python client.
func TestPythonInterop(t *testing.T) {
	py := testutil.NeedPython(t, "ipyparallel", "zmq")
	const attempts = 3
	for i := 1; ; i++ {
		if interopAttempt(t, py, i == attempts) {
			return
		}
		t.Logf("attempt %d: the Python controller lost a port race (it picks free ports, then binds them in child processes); retrying", i)
	}
}

// interopAttempt runs one controller, engine and client. It returns false
// without failing the test when the controller could not bind its ports
// and this is not the last attempt.
func interopAttempt(t *testing.T, py string, last bool) bool {
	dir := t.TempDir()
	profile := filepath.Join(dir, "profile_interop")
	env := append(os.Environ(), "IPYTHONDIR="+filepath.Join(dir, "ipython"))

	var ctlLog testutil.SyncBuffer
	ctl := exec.Command(py, "-m", "ipyparallel.controller", "--ip=127.0.0.1", "--profile-dir="+profile, "--ping=200", "--log-level=INFO")
	ctl.Env = env
	ctl.Stdout, ctl.Stderr = &ctlLog, &ctlLog
	// Its own process group, so that its scheduler processes go with it.
	ctl.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	ctlDone := make(chan struct{})
	go func() {
		ctl.Wait()
		close(ctlDone)
	}()
	portRace := func() bool { return strings.Contains(ctlLog.String(), "Address already in use") }
	defer func() {
		select {
		case <-ctlDone:
		default:
			syscall.Kill(-ctl.Process.Pid, syscall.SIGTERM)
			select {
			case <-ctlDone:
			case <-time.After(5 * time.Second):
				syscall.Kill(-ctl.Process.Pid, syscall.SIGKILL)
				<-ctlDone
			}
		}
		if t.Failed() {
			t.Logf("controller log:\n%s", ctlLog.String())
		}
	}()

	info, err := LoadConnection("", profile, "", 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logSink{t: t}
	defer logs.stop()
	ctx, cancel := context.WithCancel(context.Background())
	var runErr error
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		runErr = Run(ctx, Config{Info: info, Logger: slog.New(logs), RequestedID: -1, Functions: NewRegistry()})
	}()
	defer func() {
		cancel()
		select {
		case <-runDone:
		case <-time.After(waitTimeout):
			t.Errorf("engine did not stop")
		}
	}()

	cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer ccancel()
	client := exec.CommandContext(cctx, py, "-c", interopClient, profile)
	client.Env = env
	var stderr bytes.Buffer
	client.Stderr = &stderr
	stdout, err := client.Output()
	if err != nil {
		if portRace() && !last {
			return false
		}
		t.Fatalf("python client: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(stdout)), "\n")
	var got struct {
		IDs             []int      `json:"ids"`
		Stdout          []string   `json:"stdout"`
		Apply           string     `json:"apply"`
		ApplyEName      string     `json:"apply_ename"`
		ApplyEValue     string     `json:"apply_evalue"`
		Composite       [][]string `json:"composite"`
		ExecError       string     `json:"exec_error"`
		BroadcastStdout []string   `json:"broadcast_stdout"`
		AfterClear      string     `json:"after_clear"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("client output %q: %v\nstderr:\n%s", stdout, err, stderr.String())
	}
	t.Logf("python client saw: %s", lines[len(lines)-1])

	if len(got.IDs) != 1 {
		t.Errorf("engine ids %v", got.IDs)
	}
	if len(got.Stdout) != 1 || got.Stdout[0] != "42\n" {
		t.Errorf("stdout %q, want [\"42\\n\"]", got.Stdout)
	}
	if got.Apply != "RemoteError" || got.ApplyEName != "NotImplementedError" || !strings.Contains(got.ApplyEValue, "Python") {
		t.Errorf("apply_sync(lambda: 1): %s %s %q", got.Apply, got.ApplyEName, got.ApplyEValue)
	}
	if len(got.Composite) != 1 || got.Composite[0][0] != "NotImplementedError" {
		t.Errorf("rc[:].apply_sync: %v", got.Composite)
	}
	if got.ExecError != interp.NameCompile {
		t.Errorf("execute error: %q, want %s", got.ExecError, interp.NameCompile)
	}
	if len(got.BroadcastStdout) != 1 || got.BroadcastStdout[0] != "via broadcast 42\n" {
		t.Errorf("broadcast stdout %q", got.BroadcastStdout)
	}
	if got.AfterClear != "error" {
		t.Errorf("after clear: %s", got.AfterClear)
	}

	// rc.shutdown(hub=True) sent our engine a shutdown_request.
	select {
	case <-runDone:
		if runErr != nil {
			t.Errorf("Run after the client's shutdown: %v", runErr)
		}
	case <-time.After(waitTimeout):
		t.Errorf("engine did not stop after shutdown_request")
	}
	if !logs.contains("assuming a controller without ready probes") {
		t.Errorf("the engine did not notice the Python controller")
	}
	return true
}

// testutil.SyncBuffer is a bytes.Buffer safe for the writer goroutines of os/exec
// and a reading test.
