package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/launchers"
)

// The ipcluster binary is built once per test run, into builtDir (removed
// by TestMain).
var (
	buildOnce sync.Once
	builtDir  string
	builtBin  string
	buildErr  error
)

// e2e drives the built ipcluster binary with IPYTHONDIR in a temp dir.
type e2e struct {
	t       *testing.T
	bin     string
	env     []string
	profile string
	pids    []int
}

func newE2E(t *testing.T) *e2e {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the ipcluster binary")
	}
	buildOnce.Do(func() {
		if builtDir, buildErr = os.MkdirTemp("", "ipcluster-e2e-"); buildErr != nil {
			return
		}
		builtBin = filepath.Join(builtDir, "ipcluster")
		if out, err := exec.Command("go", "build", "-o", builtBin, "../../cmd/ipcluster").CombinedOutput(); err != nil {
			buildErr = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	ipy := t.TempDir()
	e := &e2e{t: t, bin: builtBin, profile: filepath.Join(ipy, "profile_default")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, childEnv+"=") && !strings.HasPrefix(kv, protocol.EnvPrefix) {
			e.env = append(e.env, kv)
		}
	}
	e.env = append(e.env, "IPYTHONDIR="+ipy, protocol.EnvNonInteractive+"=1")
	t.Cleanup(func() {
		for _, pid := range e.pids {
			if launchers.PIDAlive(pid) {
				syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
	})
	return e
}

// command prepares `ipcluster args...` with its output captured.
func (e *e2e) command(ctx context.Context, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	// The tests compare exec's labelled lines, which exec prints into a
	// pipe only when asked (TestManyLocalEngines checks the bare default
	// with commandAsTyped).
	if len(args) > 0 && args[0] == "exec" && !slices.Contains(args, "--bare") && !slices.Contains(args, "--prefix") {
		args = append([]string{"exec", "--prefix"}, args[1:]...)
	}
	return e.commandAsTyped(ctx, args...)
}

// commandAsTyped is command with the arguments exactly as given.
func (e *e2e) commandAsTyped(ctx context.Context, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Env = e.env
	var o, er bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &er
	return cmd, &o, &er
}

// exitCode is the exit status of a finished command.
func (e *e2e) exitCode(args []string, err error) int {
	e.t.Helper()
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		return exitErr.ExitCode()
	case err != nil:
		e.t.Fatalf("ipcluster %v: %v", args, err)
	}
	return 0
}

func (e *e2e) run(args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd, o, er := e.command(ctx, args...)
	err := cmd.Run()
	return o.String(), er.String(), e.exitCode(args, err)
}

func (e *e2e) dumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(wire.LogDir(e.profile), "*"))
	for _, l := range logs {
		data, _ := os.ReadFile(l)
		e.t.Logf("--- %s ---\n%s", l, data)
	}
}

func (e *e2e) must(wantCode int, args ...string) (string, string) {
	e.t.Helper()
	out, errOut, code := e.run(args...)
	if code != wantCode {
		e.dumpLogs()
		e.t.Fatalf("ipcluster %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, wantCode, out, errOut)
	}
	return out, errOut
}

// listRows runs list and returns its rows without the header, blanks
// squeezed.
func (e *e2e) listRows() []string {
	e.t.Helper()
	out, _ := e.must(0, "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var rows []string
	for _, l := range lines[1:] {
		rows = append(rows, strings.Join(strings.Fields(l), " "))
	}
	return rows
}

// TestEndToEnd drives the built ipcluster binary: the real controller and
// engines, started, used, grown and stopped from separate processes.
func TestEndToEnd(t *testing.T) {
	e := newE2E(t)
	must := e.must
	listRow := func() string {
		t.Helper()
		rows := e.listRows()
		if len(rows) != 1 {
			t.Fatalf("list rows %q", rows)
		}
		return rows[0]
	}

	start := time.Now()
	_, errOut := must(0, "start", "-n", "2", "--daemonize", "--wait-timeout", "60")
	clusterFile := wire.ClusterFile(e.profile, "")
	if !strings.Contains(errOut, "Leaving cluster running: "+clusterFile) {
		t.Errorf("start did not print the cluster file:\n%s", errOut)
	}
	t.Logf("start -n 2 --daemonize: %v", time.Since(start))
	e.pids = recordedPIDs(t, clusterFile)
	if len(e.pids) != 3 {
		t.Fatalf("recorded pids %v, want controller + 2 engines", e.pids)
	}
	if row := listRow(); row != "default '' True 2/2 Local -" {
		t.Errorf("list row %q", row)
	}

	out, _ := must(0, "exec", "fmt.Println(6*7)")
	if byEngine(out) != "[stdout:0] 42\n[stdout:1] 42\n" {
		t.Errorf("exec output:\n%s", out)
	}
	_, errOut, code := e.run("exec", `panic("boom")`)
	if code != 1 || !strings.Contains(errOut, "[0:execute]") || !strings.Contains(errOut, "[1:execute]") {
		t.Errorf("failing exec: exit %d\n%s", code, errOut)
	}

	must(10, "start", "-n", "1", "--daemonize")

	must(0, "engines", "-n", "1", "--wait-timeout", "60")
	e.pids = recordedPIDs(t, clusterFile)
	if len(e.pids) != 4 {
		t.Fatalf("recorded pids after engines %v, want 4", e.pids)
	}
	if row := listRow(); row != "default '' True 3/3 Local -" {
		t.Errorf("list row after engines %q", row)
	}
	if out, _ := must(0, "exec", "--targets", "2", "fmt.Println(6*7)"); out != "[stdout:2] 42\n" {
		t.Errorf("exec on the new engine:\n%s", out)
	}

	start = time.Now()
	must(0, "stop")
	t.Logf("stop: %v", time.Since(start))
	for _, pid := range e.pids {
		if launchers.PIDAlive(pid) {
			t.Errorf("pid %d still running after stop", pid)
		}
	}
	if _, err := os.Stat(clusterFile); !os.IsNotExist(err) {
		t.Errorf("cluster file left after stop: %v", err)
	}
	must(11, "stop")
	if out, _ := must(0, "list"); strings.Count(out, "\n") != 1 {
		t.Errorf("list after stop:\n%s", out)
	}
}
