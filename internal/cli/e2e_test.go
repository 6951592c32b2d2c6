package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/launchers"
)

// TestEndToEnd drives the built ipcluster binary: the real controller and
// engines, started, used, grown and stopped from separate processes.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ipcluster binary")
	}
	bin := filepath.Join(t.TempDir(), "ipcluster")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/ipcluster")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ipy := t.TempDir()
	profile := filepath.Join(ipy, "profile_default")
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, childEnv+"=") && !strings.HasPrefix(kv, "IPP_") {
			env = append(env, kv)
		}
	}
	env = append(env, "IPYTHONDIR="+ipy, "IPP_NONINTERACTIVE=1")

	ipcluster := func(args ...string) (stdout, stderr string, code int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = env
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var exitErr *exec.ExitError
		switch {
		case errors.As(err, &exitErr):
			code = exitErr.ExitCode()
		case err != nil:
			t.Fatalf("ipcluster %v: %v", args, err)
		}
		return o.String(), e.String(), code
	}
	var pids []int
	t.Cleanup(func() {
		for _, pid := range pids {
			if launchers.PIDAlive(pid) {
				syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
	})
	dumpLogs := func() {
		logs, _ := filepath.Glob(filepath.Join(wire.LogDir(profile), "*"))
		for _, l := range logs {
			data, _ := os.ReadFile(l)
			t.Logf("--- %s ---\n%s", l, data)
		}
	}
	must := func(wantCode int, args ...string) (string, string) {
		t.Helper()
		out, errOut, code := ipcluster(args...)
		if code != wantCode {
			dumpLogs()
			t.Fatalf("ipcluster %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, wantCode, out, errOut)
		}
		return out, errOut
	}
	listRow := func() string {
		t.Helper()
		out, _ := must(0, "list")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			t.Fatalf("list:\n%s", out)
		}
		return strings.Join(strings.Fields(lines[1]), " ")
	}

	start := time.Now()
	_, errOut := must(0, "start", "-n", "2", "--daemonize", "--wait-timeout", "60")
	clusterFile := wire.ClusterFile(profile, "")
	if !strings.Contains(errOut, "Leaving cluster running: "+clusterFile) {
		t.Errorf("start did not print the cluster file:\n%s", errOut)
	}
	t.Logf("start -n 2 --daemonize: %v", time.Since(start))
	pids = recordedPIDs(t, clusterFile)
	if len(pids) != 3 {
		t.Fatalf("recorded pids %v, want controller + 2 engines", pids)
	}
	if row := listRow(); row != "default '' True 2/2 Local" {
		t.Errorf("list row %q", row)
	}

	out, _ := must(0, "exec", "fmt.Println(6*7)")
	if out != "[stdout:0]\n42\n[stdout:1]\n42\n" {
		t.Errorf("exec output:\n%s", out)
	}
	_, errOut, code := ipcluster("exec", `panic("boom")`)
	if code != 1 || !strings.Contains(errOut, "[0:execute]") || !strings.Contains(errOut, "[1:execute]") {
		t.Errorf("failing exec: exit %d\n%s", code, errOut)
	}

	must(10, "start", "-n", "1", "--daemonize")

	must(0, "engines", "-n", "1", "--wait-timeout", "60")
	pids = recordedPIDs(t, clusterFile)
	if len(pids) != 4 {
		t.Fatalf("recorded pids after engines %v, want 4", pids)
	}
	if row := listRow(); row != "default '' True 3/3 Local" {
		t.Errorf("list row after engines %q", row)
	}
	if out, _ := must(0, "exec", "--targets", "2", "fmt.Println(6*7)"); out != "[stdout:2]\n42\n" {
		t.Errorf("exec on the new engine:\n%s", out)
	}

	start = time.Now()
	must(0, "stop")
	t.Logf("stop: %v", time.Since(start))
	for _, pid := range pids {
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
