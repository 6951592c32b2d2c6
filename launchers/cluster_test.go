package launchers

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/wire"
)

func testClusterOptions(t *testing.T) ClusterOptions {
	t.Helper()
	return ClusterOptions{
		ProfileDir:    filepath.Join(t.TempDir(), "profile_default"),
		ClusterID:     "c1",
		ControllerCmd: childCmd(t, "controller"),
		EngineCmd:     childCmd(t, "sleep"),
		N:             2,
		Env:           map[string]string{"GORACE": "atexit_sleep_ms=0"},
		StopGrace:     2 * time.Second,
	}
}

func TestClusterLifecycleAcrossProcesses(t *testing.T) {
	ctx := withTimeout(t, 30*time.Second)
	opts := testClusterOptions(t)
	c, err := NewCluster(opts)
	if err != nil {
		t.Fatal(err)
	}
	var all []int
	killPIDs(t, func() []int { return all })
	if err := c.StartController(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartEngines(ctx, 0); err != nil {
		t.Fatal(err)
	}
	all = c.PIDs()
	if len(all) != 3 {
		t.Fatalf("pids %v, want controller + 2 engines", all)
	}

	// A second start of the same cluster is refused.
	c2, _ := NewCluster(opts)
	if err := c2.StartController(ctx); !errors.Is(err, ErrAlreadyStarted) {
		t.Fatalf("second start: %v, want ErrAlreadyStarted", err)
	}

	// "ipcluster engines" in another process: options come from the file.
	other, err := LoadCluster(ctx, ClusterOptions{ProfileDir: opts.ProfileDir, ClusterID: "c1", Runner: opts.Runner})
	if err != nil {
		t.Fatal(err)
	}
	if other.Options().N != 2 || len(other.Options().EngineCmd) != 2 {
		t.Errorf("options from file: %+v", other.Options())
	}
	if _, err := other.StartEngines(ctx, 1); err != nil {
		t.Fatal(err)
	}
	all = append(all, other.EngineSets()[firstKey(other.EngineSets())].(ProcessLister).PIDs()...)
	f, err := ReadClusterFile(c.File())
	if err != nil {
		t.Fatal(err)
	}
	if f.Controller == nil || len(f.Engines.Sets) != 2 {
		t.Fatalf("file after engines: controller %v, sets %v (must merge, not overwrite)", f.Controller != nil, f.SetIDs())
	}

	// "ipcluster stop" in a third process stops everything.
	stopper, err := LoadCluster(ctx, ClusterOptions{ProfileDir: opts.ProfileDir, ClusterID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(stopper.PIDs()); got != 4 {
		t.Errorf("reattached %d pids, want 4", got)
	}
	if err := stopper.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, pid := range all {
		if PIDAlive(pid) {
			t.Errorf("pid %d alive after stop", pid)
		}
	}
	if _, err := os.Stat(c.File()); !os.IsNotExist(err) {
		t.Errorf("cluster file still there: %v", err)
	}
	if _, err := LoadCluster(ctx, ClusterOptions{ProfileDir: opts.ProfileDir, ClusterID: "c1"}); !errors.Is(err, ErrNoCluster) {
		t.Errorf("load after stop: %v, want ErrNoCluster", err)
	}
}

func TestClusterStopAdoptsEnginesAddedElsewhere(t *testing.T) {
	ctx := withTimeout(t, 30*time.Second)
	opts := testClusterOptions(t)
	c, _ := NewCluster(opts)
	var all []int
	killPIDs(t, func() []int { return all })
	if err := c.StartController(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartEngines(ctx, 1); err != nil {
		t.Fatal(err)
	}
	other, err := LoadCluster(ctx, ClusterOptions{ProfileDir: opts.ProfileDir, ClusterID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.StartEngines(ctx, 2); err != nil {
		t.Fatal(err)
	}
	all = append(c.PIDs(), other.PIDs()...)
	// The foreground process (c) stops on Ctrl-C: the other set goes too.
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, pid := range all {
		if PIDAlive(pid) {
			t.Errorf("pid %d alive after stop", pid)
		}
	}
}

func TestClusterReplacesStaleFile(t *testing.T) {
	ctx := withTimeout(t, 30*time.Second)
	opts := testClusterOptions(t)
	c, _ := NewCluster(opts)
	var all []int
	killPIDs(t, func() []int { return all })
	if err := c.StartController(ctx); err != nil {
		t.Fatal(err)
	}
	all = c.PIDs()
	// The controller dies without cleaning up (kill -9).
	syscall.Kill(all[0], syscall.SIGKILL)
	c.Controller().Wait(ctx)

	loaded, err := LoadCluster(ctx, ClusterOptions{ProfileDir: opts.ProfileDir, ClusterID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Running() {
		t.Error("a dead cluster reports running")
	}
	if _, err := os.Stat(c.File()); !os.IsNotExist(err) {
		t.Errorf("stale cluster file kept after load: %v", err)
	}
	c2, _ := NewCluster(opts)
	if err := c2.StartController(ctx); err != nil {
		t.Fatalf("start over a stale cluster: %v", err)
	}
	all = append(all, c2.PIDs()...)
	if err := c2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestStartEnginesFailsWhenControllerDies(t *testing.T) {
	ctx := withTimeout(t, 30*time.Second)
	opts := testClusterOptions(t)
	opts.ControllerCmd = childCmd(t, "fail")
	c, _ := NewCluster(opts)
	killPIDs(t, c.PIDs)
	if err := c.StartController(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartEngines(ctx, 1); err == nil {
		t.Fatal("engines started without a controller")
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func firstKey[V any](m map[string]V) string {
	for k := range m {
		return k
	}
	return ""
}

// recordingRunner is a Runner that records what it is asked to start.
type recordingRunner struct {
	OSRunner
	mu       sync.Mutex
	commands []Command
}

func (r *recordingRunner) Start(c Command) (Process, error) {
	r.mu.Lock()
	r.commands = append(r.commands, c)
	r.mu.Unlock()
	return r.OSRunner.Start(c)
}

func TestClusterCommandsGoThroughTheRunner(t *testing.T) {
	ctx := withTimeout(t, 30*time.Second)
	opts := testClusterOptions(t)
	rec := &recordingRunner{}
	opts.Runner = rec
	opts.IP, opts.Location = "*", "node1"
	opts.ControllerArgs = []string{"--scheme=lru"}
	c, _ := NewCluster(opts)
	killPIDs(t, c.PIDs)
	if err := c.StartController(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartEngines(ctx, 1); err != nil {
		t.Fatal(err)
	}
	defer c.Stop(ctx)
	if len(rec.commands) != 2 {
		t.Fatalf("runner saw %d commands, want 2", len(rec.commands))
	}
	ctl, eng := rec.commands[0], rec.commands[1]
	if got := strings.Join(ctl.Args, " "); got != "child:controller --ip=* --location=node1 --scheme=lru" {
		t.Errorf("controller args %q", got)
	}
	env := strings.Join(eng.Env, "\n")
	for _, want := range []string{protocol.EnvClusterID + "=c1", protocol.EnvProfileDir + "=" + opts.ProfileDir, `IPP_CONNECTION_INFO={`} {
		if !strings.Contains(env, want) {
			t.Errorf("engine environment lacks %s", want)
		}
	}
	if !strings.HasSuffix(eng.OutputFile, "ipengine-c1-"+firstKey(c.EngineSets())+"-0.log") {
		t.Errorf("engine log %s", eng.OutputFile)
	}
}

// TestClusterAfterControllerKilled: a controller killed with SIGKILL leaves
// its connection files and engines. Loading the cluster reports it not
// running (its engines still do) and removes the connection files; a new
// start replaces it and stops the engines it left.
func TestClusterAfterControllerKilled(t *testing.T) {
	ctx := withTimeout(t, 30*time.Second)
	opts := testClusterOptions(t)
	c, _ := NewCluster(opts)
	var all []int
	killPIDs(t, func() []int { return all })
	if err := c.StartController(ctx); err != nil {
		t.Fatal(err)
	}
	all = c.PIDs()
	if _, err := c.StartEngines(ctx, 1); err != nil {
		t.Fatal(err)
	}
	all = c.PIDs()
	clientFile := wire.ClientFile(opts.ProfileDir, opts.ClusterID)
	syscall.Kill(all[0], syscall.SIGKILL)
	c.Controller().Wait(ctx)
	if _, err := os.Stat(clientFile); err != nil {
		t.Fatalf("the killed controller should have left its connection file: %v", err)
	}

	loaded, err := LoadCluster(ctx, ClusterOptions{ProfileDir: opts.ProfileDir, ClusterID: opts.ClusterID})
	if err != nil {
		t.Fatal(err)
	}
	if loaded.ControllerRunning() || !loaded.Running() || !errors.Is(loaded.ControllerGone(), ErrNotRunning) || !loaded.Stale() {
		t.Errorf("after the kill: controller running %v, running %v, gone %v, stale %v",
			loaded.ControllerRunning(), loaded.Running(), loaded.ControllerGone(), loaded.Stale())
	}
	for _, p := range []string{clientFile, wire.EngineFile(opts.ProfileDir, opts.ClusterID)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s kept after its controller died: %v", p, err)
		}
	}
	f, err := ReadClusterFile(c.File())
	if err != nil || f.Controller != nil || len(f.Engines.Sets) != 1 {
		t.Fatalf("cluster file after load: %+v %v", f, err)
	}

	c2, _ := NewCluster(opts)
	if err := c2.StartController(ctx); err != nil {
		t.Fatalf("start over a cluster whose controller died: %v", err)
	}
	all = append(all, c2.PIDs()...)
	if PIDAlive(all[1]) {
		t.Errorf("engine %d of the dead controller still runs after the new start", all[1])
	}
	if err := c2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestClusterLogFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "profile_x")
	logs := wire.LogDir(dir)
	if got, err := ClusterLogFiles(dir, ""); err != nil || len(got) != 0 {
		t.Fatalf("no log dir: %v %v", got, err)
	}
	os.MkdirAll(logs, 0o700)
	names := []string{
		"ipcontroller-123.log", "ipengine-1765000000-0.log", "ipengine-1765000000-1-3.log", "ipengine-1765000000.log", // ''
		"ipcontroller-k-123.log", "ipengine-k-1765000000-0.log", "ipengine-k-1765000000.log", // k
		"ipcontroller-k-2-123.log", "ipengine-k-2-1765000000-0.log", // k-2
		"other.log",
	}
	for _, n := range names {
		os.WriteFile(filepath.Join(logs, n), nil, 0o600)
	}
	for id, want := range map[string][]string{"": names[:4], "k": names[4:7], "k-2": names[7:9], "none": nil} {
		got, err := ClusterLogFiles(dir, id)
		if err != nil {
			t.Fatal(err)
		}
		var base []string
		for _, p := range got {
			base = append(base, filepath.Base(p))
		}
		slices.Sort(base)
		w := slices.Sorted(slices.Values(want))
		if !slices.Equal(base, w) {
			t.Errorf("logs of %q: %v, want %v", id, base, w)
		}
	}
}

// TestClusterRestartController: RestartController refuses without a
// cluster file and while the recorded controller lives; after a kill it
// starts a controller with --restore and keeps the engine set running and
// recorded.
func TestClusterRestartController(t *testing.T) {
	ctx := withTimeout(t, 30*time.Second)
	opts := testClusterOptions(t)
	none, _ := NewCluster(opts)
	if err := none.RestartController(ctx); !errors.Is(err, ErrNoCluster) {
		t.Fatalf("restart without a cluster file: %v, want ErrNoCluster", err)
	}
	c, _ := NewCluster(opts)
	var all []int
	killPIDs(t, func() []int { return all })
	if err := c.StartController(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartEngines(ctx, 1); err != nil {
		t.Fatal(err)
	}
	all = c.PIDs()
	live, _ := NewCluster(opts)
	if err := live.RestartController(ctx); !errors.Is(err, ErrAlreadyStarted) {
		t.Fatalf("restart while the controller lives: %v, want ErrAlreadyStarted", err)
	}
	syscall.Kill(all[0], syscall.SIGKILL)
	c.Controller().Wait(ctx)

	r, _ := NewCluster(opts)
	if err := r.RestartController(ctx); err != nil {
		t.Fatal(err)
	}
	all = append(all, r.PIDs()...)
	if !PIDAlive(all[1]) {
		t.Errorf("engine %d stopped by the restart", all[1])
	}
	if sets := r.EngineSets(); len(sets) != 1 {
		t.Errorf("engine sets after the restart: %v", sets)
	}
	f, err := ReadClusterFile(r.File())
	if err != nil || f.Controller == nil || len(f.Engines.Sets) != 1 {
		t.Fatalf("cluster file after the restart: %+v %v", f, err)
	}
	// The recorded arguments are the cluster's own; --restore is only
	// this start's.
	if slices.Contains(f.Cluster.ControllerArgs, "--restore") {
		t.Errorf("--restore leaked into the recorded controller args: %v", f.Cluster.ControllerArgs)
	}
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}
