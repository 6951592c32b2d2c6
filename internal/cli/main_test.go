package cli

import (
	"context"
	"fmt"
	"io"
	"iter"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp"
	"github.com/ipp-hpc/ipp/internal/testutil"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// The test binary doubles as the processes ipcluster starts (Nomad style):
// with childEnv=role it plays the role named by its first argument — a fake
// controller that writes connection files, or an engine that sleeps or
// fails (engineModeEnv). With childEnv=real it runs the real ipcluster
// instead, for tests that need a working controller and engines.
const (
	childEnv      = "CLI_TEST_CHILD"
	engineModeEnv = "CLI_TEST_ENGINE"
	rankDirEnv    = "CLI_TEST_RANK_DIR"
	childLife     = 60 * time.Second
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "role" && len(os.Args) > 1 {
		os.Exit(fakeRole(os.Args[1]))
	}
	if os.Getenv(childEnv) == "real" {
		os.Exit(Main())
	}
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

func fakeRole(role string) int {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, os.Interrupt)
	wait := func() int {
		select {
		case <-term:
			return 0
		case <-time.After(childLife):
			return 3
		}
	}
	switch role {
	case "controller":
		profile, cid := os.Getenv(protocol.EnvProfileDir), os.Getenv(protocol.EnvClusterID)
		common := wire.Common{Interface: "tcp://127.0.0.1", Registration: 1, Control: 2, Mux: 3, Task: 4, IOPub: 5, Key: "k"}
		common.Defaults()
		wire.WritePrivateJSON(wire.ClientFile(profile, cid), wire.ClientInfo{Common: common, Notification: 6, Broadcast: 7})
		wire.WritePrivateJSON(wire.EngineFile(profile, cid), wire.EngineInfo{Common: common, HBPing: 8, HBPong: 9, Broadcast: []int{10}})
		fmt.Println("fake controller up")
		code := wait()
		os.Remove(wire.ClientFile(profile, cid))
		os.Remove(wire.EngineFile(profile, cid))
		return code
	case "engine":
		if os.Getenv(engineModeEnv) == "fail" {
			fmt.Fprintln(os.Stderr, "fake engine: cannot reach the controller")
			return 1
		}
		if os.Getenv(protocol.EnvConnectionInfo) == "" {
			fmt.Fprintln(os.Stderr, "fake engine: no IPP_CONNECTION_INFO")
			return 1
		}
		if dir := os.Getenv(rankDirEnv); dir != "" {
			// An MPI rank: record pid, IPP_MPI_SIZE and IPP_ENGINE_ID_BASE.
			info := os.Getenv(protocol.EnvMPISize) + " " + os.Getenv(protocol.EnvEngineIDBase)
			if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(os.Getpid())), []byte(info), 0o600); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		return wait()
	}
	fmt.Fprintln(os.Stderr, "unknown role", role)
	return 2
}

// fakeClient stands in for the ipp client.
type fakeClient struct {
	mu      sync.Mutex
	ids     []int
	waitErr error
	results []ExecResult
	code    string
	targets []int
	// signals records Signal calls; signalErr is what they return.
	signals   []string
	signalErr error
	// register makes WaitForEngines "register" the engines it waits for.
	register bool
}

func (c *fakeClient) IDs() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.ids...)
}

func (c *fakeClient) WaitForEngines(ctx context.Context, n int, out io.Writer, _ func() string) error {
	if c.waitErr != nil {
		return c.waitErr
	}
	if !c.register {
		<-ctx.Done()
		return ctx.Err()
	}
	c.mu.Lock()
	for len(c.ids) < n {
		c.ids = append(c.ids, len(c.ids))
	}
	c.mu.Unlock()
	return nil
}

func (c *fakeClient) Execute(ctx context.Context, code string, targets []int, failed func(int, *RemoteError)) ([]ExecResult, error) {
	c.code, c.targets = code, targets
	if failed != nil {
		for _, r := range c.results {
			if r.Err != nil {
				failed(r.Engine, r.Err)
			}
		}
	}
	return c.results, nil
}

func (c *fakeClient) Submit(ctx context.Context, code string, targets []int) (ExecRun, error) {
	c.mu.Lock()
	c.code, c.targets = code, targets
	c.mu.Unlock()
	return &fakeRun{c: c}, nil
}

func (c *fakeClient) Signal(ctx context.Context, sig string, targets []int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.signals = append(c.signals, sig)
	return c.signalErr
}

func (c *fakeClient) Close() error { return nil }

// fakeRun replays the fake client's results: their output streams first,
// engine by engine, then the results.
type fakeRun struct{ c *fakeClient }

func (r *fakeRun) Outputs(ctx context.Context) iter.Seq[ipp.Output] {
	return func(yield func(ipp.Output) bool) {
		for _, res := range r.c.results {
			if res.Stdout != "" && !yield(ipp.Output{Engine: res.Engine, Stream: "stdout", Text: res.Stdout}) {
				return
			}
			if res.Stderr != "" && !yield(ipp.Output{Engine: res.Engine, Stream: "stderr", Text: res.Stderr}) {
				return
			}
		}
	}
}

func (r *fakeRun) Running() []int                      { return nil }
func (r *fakeRun) Interrupt(ctx context.Context) error { return nil }
func (r *fakeRun) Abort(ctx context.Context) error     { return nil }

func (r *fakeRun) Results(ctx context.Context, failed func(int, *RemoteError)) ([]ExecResult, error) {
	if failed != nil {
		for _, res := range r.c.results {
			if res.Err != nil {
				failed(res.Engine, res.Err)
			}
		}
	}
	return r.c.results, nil
}

// testEnv is a Factory with captured output, the test binary as the
// program of both roles, a fake client, and IPYTHONDIR in a temp dir.
type testEnv struct {
	f        *Factory
	out, err *testutil.SyncBuffer
	client   *fakeClient
	ipython  string
	sigs     chan os.Signal
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	ipy := t.TempDir()
	t.Setenv("IPYTHONDIR", ipy)
	t.Setenv(childEnv, "role")
	t.Setenv("GORACE", "atexit_sleep_ms=0")
	e := &testEnv{out: &testutil.SyncBuffer{}, err: &testutil.SyncBuffer{}, client: &fakeClient{register: true}, ipython: ipy,
		sigs: make(chan os.Signal, 4)}
	f := NewFactory()
	f.IO = IOStreams{In: strings.NewReader(""), Out: e.out, ErrOut: e.err}
	f.Connect = func(ctx context.Context, path string) (Client, error) {
		if _, err := os.Stat(path); err != nil {
			return nil, err
		}
		return e.client, nil
	}
	f.Signals = func(context.Context) (<-chan os.Signal, func()) { return e.sigs, func() {} }
	e.f = f
	return e
}

func (e *testEnv) profileDir() string { return filepath.Join(e.ipython, "profile_default") }

// testutil.SyncBuffer is a bytes.Buffer safe for the goroutines that log.
