package controller_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/testutil"
)

// curvePyClient is a Python client's view of a CURVE cluster: it must
// find the engine, run code on it and see its output.
const curvePyClient = `
import sys, ipyparallel as ipp
c = ipp.Client(sys.argv[1], timeout=30)
assert c.curve_serverkey, "the client did not pick up curve_serverkey"
c.wait_for_engines(1, timeout=60)
dv = c[:]
ar = dv.execute("print('curve', 6*7)", block=True)
print(dv.apply_sync(lambda: 6 * 7)[0], ar.stdout[0].strip())
`

// TestCurvePython71 runs Debian's ipyparallel 7.1 (engine and client)
// against a CURVE controller. 7.x already speaks CURVE (curve_serverkey in
// the connection files, IPP_CURVE_* variables); only older releases
// cannot, which is what the CLI's notice says.
func TestCurvePython71(t *testing.T) {
	needCurve(t)
	py := testutil.NeedPython(t, "ipyparallel", "zmq")
	dir := t.TempDir()
	c, _ := startController(t, controller.Config{ProfileDir: dir, Curve: controller.CurveOn, HeartbeatPeriod: 500 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env := append(os.Environ(), "IPYTHONDIR="+filepath.Join(dir, "ipython"))
	engineLog := startPythonEngine(t, ctx, py, c.EngineFile(), dir, "engine.log", "INFO")
	cmd := exec.CommandContext(ctx, py, "-c", curvePyClient, c.ClientFile())
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python client over CURVE: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if got := lines[len(lines)-1]; got != "42 curve 42" {
		t.Fatalf("python client printed %q, want %q", out, "42 curve 42")
	}
	b, _ := os.ReadFile(engineLog)
	if !strings.Contains(string(b), "Using CurveZMQ security") {
		t.Errorf("the Python engine did not report using CURVE:\n%s", b)
	}
}
