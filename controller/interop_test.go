package controller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/testutil"
)

// startPythonEngine starts an ipyparallel engine on engineFile, with its
// log in dir/logName, and stops it when the test ends, showing the log if
// the test failed. It returns the log's path.
func startPythonEngine(t *testing.T, ctx context.Context, py, engineFile, dir, logName, level string) string {
	t.Helper()
	eng := exec.CommandContext(ctx, py, "-m", "ipyparallel.engine", "--file="+engineFile, "--log-level="+level)
	eng.Env = append(os.Environ(), "IPYTHONDIR="+filepath.Join(dir, "ipython"))
	logf, err := os.Create(filepath.Join(dir, logName))
	if err != nil {
		t.Fatal(err)
	}
	eng.Stdout, eng.Stderr = logf, logf
	if err := eng.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		eng.Process.Kill()
		eng.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("engine log:\n%s", b)
		}
	})
	return logf.Name()
}

// pythonPeers starts our controller and n real Python engines on it, for
// the tests that drive it with the real Python client. It returns the
// Python interpreter, the profile directory and a context that bounds the
// test.
func pythonPeers(t *testing.T, n int) (py, dir string, c *controller.Controller, ctx context.Context) {
	t.Helper()
	py = testutil.NeedPython(t, "ipyparallel", "zmq")
	dir = t.TempDir()
	c, err := controller.New(controller.Config{ProfileDir: dir, HeartbeatPeriod: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	for i := 0; i < n; i++ {
		startPythonEngine(t, ctx, py, c.EngineFile(), dir, fmt.Sprintf("engine%d.log", i), "WARN")
	}
	return py, dir, c, ctx
}

// TestPythonPeers runs the real ipyparallel 7.1 client and two Python
// engines against our controller: direct, load-balanced and broadcast
// views, errors, dependencies, queries and an engine shutdown.
func TestPythonPeers(t *testing.T) {
	const n = 2
	py, dir, c, ctx := pythonPeers(t, n)
	for _, f := range []string{c.ClientFile(), c.EngineFile()} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	cmd := exec.CommandContext(ctx, py, "testdata/python_client.py", c.ClientFile(), fmt.Sprint(n))
	cmd.Env = append(os.Environ(), "IPYTHONDIR="+filepath.Join(dir, "ipython"))
	cmd.Stderr = os.Stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("python client: %v\n%s", err, raw)
	}
	var got struct {
		IDs           []int    `json:"ids"`
		Stdout        []string `json:"stdout"`
		Apply         []int    `json:"apply"`
		LBMap         []int    `json:"lb_map"`
		Pull          []int    `json:"pull"`
		RemoteError   string   `json:"remote_error"`
		Composite     int      `json:"composite"`
		BcastApply    []int    `json:"bcast_apply"`
		BcastStdout   []string `json:"bcast_stdout"`
		Coalesced     []int    `json:"coalesced"`
		After         int      `json:"after"`
		InvalidDep    string   `json:"invalid_dep"`
		QueueKeys     []string `json:"queue_status_keys"`
		ResultStatus  []string `json:"result_status"`
		AfterShutdown []int    `json:"after_shutdown"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	check := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	wantMap := make([]int, 50)
	for i := range wantMap {
		wantMap[i] = i + 1
	}
	check("ids", got.IDs, []int{0, 1})
	check("stdout", got.Stdout, []string{"hello 42\n", "hello 42\n"})
	check("apply", got.Apply, []int{42, 42})
	check("lb map", got.LBMap, wantMap)
	check("pull", got.Pull, []int{5, 5})
	check("remote error", got.RemoteError, "ZeroDivisionError")
	check("composite", got.Composite, 2)
	check("broadcast apply", got.BcastApply, []int{3, 3})
	check("broadcast stdout", got.BcastStdout, []string{"b\n", "b\n"})
	check("coalesced", got.Coalesced, []int{4, 4})
	check("after", got.After, 2)
	check("invalid dependency", got.InvalidDep, "InvalidDependency")
	check("queue status keys", got.QueueKeys, []string{"0", "1", "unassigned"})
	check("result status", len(got.ResultStatus), 1)
	check("after shutdown", got.AfterShutdown, []int{0})
}
