package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// The shared clusters.
const (
	// fixOurs: our controller (in this process) with two Python engines.
	fixOurs = "our-controller+python-engines"
	// fixPyGo: the Python ipcontroller with two of our Go engines.
	fixPyGo = "python-controller+go-engines"
	// fixOursGo: our controller (in this process) with two of our Go
	// engines (`ipcluster engine` processes).
	fixOursGo = "our-controller+go-engines"
	// fixLaunch: our ipcluster (controller and local launcher) with
	// --cluster-id and Python engines as --engine-cmd.
	fixLaunch = "ipcluster+python-engines"
	// fixCurve: our controller with CURVE on and one Python engine.
	fixCurve = "curve"
	// fixReference: Python's ipcontroller and engines, the judge of the
	// Python rows' expectations (IPP_CONFORMANCE_REFERENCE=1).
	fixReference = "reference"
)

// Directions as the table shows them.
const (
	dirPyOursPy = "Python client → our controller → Python engines"
	dirGoOursPy = "Go client → our controller → Python engines"
	dirPyPyGo   = "Python client → Python ipcontroller → Go engines"
	dirPyOursGo = "Python client → our controller → Go engines"
	dirGoOursGo = "Go client → our controller → Go engines"
	dirGoPyGo   = "Go client → Python ipcontroller → Go engines"
	dirPyLaunch = "Python client → our ipcluster → Python engines (--engine-cmd)"
	dirLaunch   = "our ipcluster → Python engines (--engine-cmd)"
)

func init() {
	addFixture(&Fixture{Name: fixOurs, PyDirection: dirPyOursPy, GoDirection: dirGoOursPy,
		NeedPython: []string{"ipyparallel", "zmq"}, Start: startOurs})
	addFixture(&Fixture{Name: fixPyGo, PyDirection: dirPyPyGo, GoDirection: dirGoPyGo,
		NeedPython: []string{"ipyparallel", "zmq"}, Start: startPyGo})
	addFixture(&Fixture{Name: fixOursGo, PyDirection: dirPyOursGo, GoDirection: dirGoOursGo,
		NeedPython: []string{"ipyparallel", "zmq"}, Start: startOursGo})
	addFixture(&Fixture{Name: fixLaunch, PyDirection: dirPyLaunch, GoDirection: dirLaunch,
		NeedPython: []string{"ipyparallel", "zmq"}, Start: startLaunch})
	addFixture(&Fixture{Name: fixCurve, PyDirection: dirPyOursPy + " (CURVE)", GoDirection: dirGoOursPy + " (CURVE)",
		NeedPython: []string{"ipyparallel", "zmq"}, Start: startCurve})
}

// goClient is a fixture's Go client, connected once.
type goClient struct {
	c   *ipp.Client
	err error
}

func (g *goClient) close() {
	if g.c != nil {
		g.c.Close()
	}
}

// GoClient is the fixture's Go client with all of its engines
// registered; it fails the row if the client cannot connect.
func (f *Fixture) GoClient(r *R) *ipp.Client {
	r.Helper()
	if f.Go == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c, err := ipp.Connect(ctx, f.ClientFile, ipp.WithLogger(quietLogger()))
		if err == nil {
			if err = c.WaitForEngines(ctx, f.Engines, ipp.WaitOptions{Progress: ipp.ProgressOff}); err != nil {
				c.Close()
				c = nil
			}
		}
		f.Go = &goClient{c: c, err: err}
	}
	if f.Go.err != nil {
		r.Fatalf("Go client: %v", f.Go.err)
	}
	return f.Go.c
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// spawn starts a process of the fixture in its own process group, its
// output in Dir/<name>.log, and kills the group when the test ends.
func (f *Fixture) spawn(t *testing.T, name string, argv ...string) (*exec.Cmd, error) {
	logf, err := os.Create(filepath.Join(f.Dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = f.Env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("%s log (tail):\n%s", name, b)
		}
	})
	return cmd, nil
}

// sweep kills every process whose environment holds marker: only this
// fixture's processes carry it, including the nannies Python engines
// fork into sessions of their own and daemonized ipcluster processes.
func sweep(marker string) {
	entries, _ := os.ReadDir("/proc")
	needle := []byte(marker + "\x00")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		if bytes.Contains(env, needle) || bytes.HasSuffix(env, []byte(marker)) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// startOurController runs our controller in this process on loopback.
func startOurController(t *testing.T, f *Fixture, cfg controller.Config) (*controller.Controller, error) {
	cfg.IP = "127.0.0.1"
	cfg.ProfileDir = filepath.Join(f.Dir, "profile_ours")
	cfg.HeartbeatPeriod = 500 * time.Millisecond
	logf, err := os.Create(filepath.Join(f.Dir, "controller.log"))
	if err != nil {
		return nil, err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	c, err := controller.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := c.Start(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close(); logf.Close() })
	return c, nil
}

func startPythonEngines(t *testing.T, f *Fixture, engineFile string, n int) error {
	for i := range n {
		if _, err := f.spawn(t, fmt.Sprintf("python-engine%d", i), testutil.Python, "-m", "ipyparallel.engine",
			"--file="+engineFile, "--log-level=WARN"); err != nil {
			return err
		}
	}
	return nil
}

func startOurs(f *Fixture, t *testing.T) error {
	c, err := startOurController(t, f, controller.Config{})
	if err != nil {
		return err
	}
	f.ClientFile, f.Engines = c.ClientFile(), 2
	return startPythonEngines(t, f, c.EngineFile(), 2)
}

func startOursGo(f *Fixture, t *testing.T) error {
	bin := testutil.IPCluster(t)
	c, err := startOurController(t, f, controller.Config{})
	if err != nil {
		return err
	}
	f.ClientFile, f.Engines = c.ClientFile(), 2
	for i := range 2 {
		if _, err := f.spawn(t, fmt.Sprintf("go-engine%d", i), bin, "engine", "--file="+c.EngineFile()); err != nil {
			return err
		}
	}
	return nil
}

func startCurve(f *Fixture, t *testing.T) error {
	if _, err := transport.Lookup("zmq"); err != nil {
		return fmt.Errorf("CURVE needs the libzmq transport, not in this build: %w", err)
	}
	c, err := startOurController(t, f, controller.Config{Curve: controller.CurveOn})
	if err != nil {
		return err
	}
	f.ClientFile, f.Engines = c.ClientFile(), 1
	return startPythonEngines(t, f, c.EngineFile(), 1)
}

// startPyGo starts the Python ipcontroller and two of our engines
// (`ipcluster engine` processes).
func startPyGo(f *Fixture, t *testing.T) error {
	bin := testutil.IPCluster(t)
	return startPythonController(f, t, func(name, prof string) (*exec.Cmd, error) {
		return f.spawn(t, "go-"+name, bin, "engine", "--profile-dir="+prof)
	})
}

// startReference is the judge: Python's ipcontroller with two Python
// engines, where every expectation of a Python row must hold.
func startReference(f *Fixture, t *testing.T) error {
	return startPythonController(f, t, func(name, prof string) (*exec.Cmd, error) {
		return f.spawn(t, "python-"+name, testutil.Python, "-m", "ipyparallel.engine", "--profile-dir="+prof, "--log-level=WARN")
	})
}

// startPythonController starts the Python ipcontroller and two engines
// from startEngine, and waits until both registered. The Python
// controller picks free ports and binds them later in child processes,
// so it can lose a race for one: then it starts again in a fresh profile.
func startPythonController(f *Fixture, t *testing.T, startEngine func(name, prof string) (*exec.Cmd, error)) error {
	var last error
	for attempt := 1; attempt <= 3; attempt++ {
		prof := filepath.Join(f.Dir, fmt.Sprintf("profile_py%d", attempt))
		name := fmt.Sprintf("python-controller%d", attempt)
		ctl, err := f.spawn(t, name, testutil.Python, "-m", "ipyparallel.controller", "--ip=127.0.0.1",
			"--profile-dir="+prof, "--ping=500", "--log-level=INFO")
		if err != nil {
			return err
		}
		clientFile := wire.ClientFile(prof, "")
		if err := waitFiles(60*time.Second, clientFile, wire.EngineFile(prof, "")); err != nil {
			return err
		}
		var engines []*exec.Cmd
		for i := range 2 {
			e, err := startEngine(fmt.Sprintf("engine%d-%d", attempt, i), prof)
			if err != nil {
				return err
			}
			engines = append(engines, e)
		}
		f.ClientFile, f.Engines = clientFile, 2
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		c, err := ipp.Connect(ctx, clientFile, ipp.WithLogger(quietLogger()))
		if err == nil {
			if err = c.WaitForEngines(ctx, 2, ipp.WaitOptions{Progress: ipp.ProgressOff}); err == nil {
				cancel()
				f.Go = &goClient{c: c}
				return nil
			}
			c.Close()
		}
		cancel()
		last = err
		logb, _ := os.ReadFile(filepath.Join(f.Dir, name+".log"))
		if !bytes.Contains(logb, []byte("Address already in use")) {
			return fmt.Errorf("engines did not register with the Python controller: %w", err)
		}
		t.Logf("attempt %d: the Python controller lost a port race; starting again", attempt)
		for _, p := range append(engines, ctl) {
			syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
		}
	}
	return last
}

// startLaunch runs `ipcluster start --daemonize` with a cluster id and
// Python engines as --engine-cmd (issue 9 item 4).
func startLaunch(f *Fixture, t *testing.T) error {
	bin := testutil.IPCluster(t)
	prof := filepath.Join(f.Dir, "profile_launch")
	const cid = "conform"
	f.Values["ipcluster"], f.Values["profile"], f.Values["cluster_id"] = bin, prof, cid
	where := []string{"--profile-dir=" + prof, "--cluster-id=" + cid}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"stop"}, where...)...)
		cmd.Env = f.Env
		cmd.WaitDelay = time.Second
		cmd.Run()
	})
	out, err := f.ipcluster(90*time.Second, append([]string{"start", "-n", "2", "--daemonize",
		"--engine-cmd", testutil.Python + " -m ipyparallel.engine"}, where...)...)
	if err != nil {
		return fmt.Errorf("ipcluster start: %v\n%s", err, out)
	}
	f.ClientFile, f.Engines = wire.ClientFile(prof, cid), 2
	return nil
}

// ipcluster runs the fixture's ipcluster binary and returns its output.
func (f *Fixture) ipcluster(timeout time.Duration, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, f.Values["ipcluster"], args...)
	cmd.Env = f.Env
	// A daemonized controller keeps the output pipe open.
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("no answer within %v (%v)", timeout, err)
	}
	return out, err
}

// waitFiles waits for every path to exist.
func waitFiles(timeout time.Duration, paths ...string) error {
	deadline := time.Now().Add(timeout)
	for _, p := range paths {
		for {
			if _, err := os.Stat(p); err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s did not appear within %v", p, timeout)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// firstLines shortens command output for a table cell.
func firstLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " / ")
}
