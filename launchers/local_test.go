package launchers

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/wire"
)

func TestLocalControllerStartStopReattach(t *testing.T) {
	cfg := testConfig(t, "sleep")
	l, err := NewLocalController(cfg)
	if err != nil {
		t.Fatal(err)
	}
	killPIDs(t, l.PIDs)
	ctx := context.Background()
	if err := l.Start(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if st := l.Status(); st.State != StateRunning || st.Running != 1 {
		t.Fatalf("status after start = %+v", st)
	}
	pid := l.PIDs()[0]
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		t.Errorf("child pgid = %d, %v; want its own group %d", pgid, err, pid)
	}
	logFile := filepath.Join(wire.LogDir(cfg.ProfileDir), "ipcontroller-cid-"+strconv.Itoa(os.Getpid())+".log")
	testutil.Eventually(t, 10*time.Second, func() bool {
		data, _ := os.ReadFile(logFile)
		return strings.Contains(string(data), "child sleeping")
	}, "controller output")

	// Another process would rebuild the launcher from the saved handle.
	state, err := l.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"version":1`, `"pid":` + strconv.Itoa(pid), `"state":"running"`, `"output_file":`, `"start_time":`} {
		if !strings.Contains(string(state), want) {
			t.Errorf("state %s lacks %s", state, want)
		}
	}
	again, err := Restore(KindController, "LOCAL", Config{StopGrace: time.Second}, state)
	if err != nil {
		t.Fatal(err)
	}
	if st := again.Status(); st.State != StateRunning || st.Running != 1 {
		t.Fatalf("reattached status = %+v", st)
	}
	if err := again.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Wait(withTimeout(t, 5*time.Second)); err != nil {
		t.Fatal("original handle did not see the exit:", err)
	}
	if PIDAlive(pid) {
		t.Fatal("controller still alive after stop")
	}
	if st := l.Status(); st.State != StateAfter || st.ExitCode != 0 {
		t.Errorf("status after stop = %+v, want after/0 (SIGTERM handled)", st)
	}
	if _, err := os.Stat(logFile); !os.IsNotExist(err) {
		t.Errorf("log of a stopped controller was kept: %v", err)
	}
	// The handle now points at nothing.
	if _, err := Restore(KindController, "local", Config{}, state); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("restore of a stopped controller: %v, want ErrNotRunning", err)
	}
}

func TestStopEscalatesToSIGKILL(t *testing.T) {
	cfg := testConfig(t, "ignore-term")
	cfg.StopGrace = 200 * time.Millisecond
	l, err := NewLocalController(cfg)
	if err != nil {
		t.Fatal(err)
	}
	killPIDs(t, l.PIDs)
	if err := l.Start(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		return strings.Contains(strings.Join(values(l.Output(0)), ""), "ignoring")
	}, "child to ignore SIGTERM")
	start := time.Now()
	if err := l.Stop(withTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < cfg.StopGrace {
		t.Errorf("stopped in %v, before the grace period", took)
	}
	if code := l.Status().ExitCode; code != 128+int(syscall.SIGKILL) {
		t.Errorf("exit code %d, want SIGKILL's %d", code, 128+int(syscall.SIGKILL))
	}
}

func TestStopSweepsTheProcessGroup(t *testing.T) {
	cfg := testConfig(t, "spawn")
	pidFile := filepath.Join(t.TempDir(), "grandchild")
	cfg.Env[pidFileEnv] = pidFile
	l, err := NewLocalController(cfg)
	if err != nil {
		t.Fatal(err)
	}
	killPIDs(t, l.PIDs)
	if err := l.Start(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	var grandchild int
	testutil.Eventually(t, 10*time.Second, func() bool {
		data, _ := os.ReadFile(pidFile)
		grandchild, _ = strconv.Atoi(string(data))
		return grandchild > 0
	}, "grandchild pid")
	killPIDs(t, func() []int { return []int{grandchild} })
	if err := l.Stop(withTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return !PIDAlive(grandchild) }, "grandchild to die")
}

func TestLocalEngineSet(t *testing.T) {
	cfg := testConfig(t, "env")
	cfg.EngineSetID = "1700000000"
	cfg.ConnectionInfo = []byte(`{"registration": 1}`)
	cfg.Env["EXTRA"] = "x"
	cfg.Env[protocol.EnvClusterID] = "overridden-by-extra-env"
	l, err := NewLocalEngineSet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	killPIDs(t, l.PIDs)
	if err := l.Start(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	if got := len(l.PIDs()); got != 3 {
		t.Fatalf("%d pids, want 3", got)
	}
	logDir := wire.LogDir(cfg.ProfileDir)
	for i := range 3 {
		path := filepath.Join(logDir, "ipengine-cid-1700000000-"+strconv.Itoa(i)+".log")
		testutil.Eventually(t, 10*time.Second, func() bool {
			data, _ := os.ReadFile(path)
			return strings.Contains(string(data), "EXTRA=x")
		}, "%s", path)
		data, _ := os.ReadFile(path)
		for _, want := range []string{
			protocol.EnvClusterID + "=overridden-by-extra-env", // Config.Env wins
			protocol.EnvProfileDir + "=" + cfg.ProfileDir,
			`IPP_CONNECTION_INFO={"registration": 1}`,
		} {
			if !strings.Contains(string(data), want) {
				t.Errorf("%s: missing %q in\n%s", path, want, data)
			}
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", path, fi.Mode().Perm())
		}
	}
	if st := l.Status(); st.Running != 3 || st.Total != 3 || st.State != StateRunning {
		t.Errorf("status %+v", st)
	}

	state, err := l.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	// Kill one engine behind the launcher's back: reattaching keeps two.
	first := l.PIDs()[0]
	syscall.Kill(first, syscall.SIGKILL)
	testutil.Eventually(t, 5*time.Second, func() bool { return !PIDAlive(first) }, "engine 0 to die")
	again, err := Restore(KindEngines, "local", Config{StopGrace: time.Second}, state)
	if err != nil {
		t.Fatal(err)
	}
	if st := again.Status(); st.Running != 2 {
		t.Errorf("reattached status %+v, want 2 running", st)
	}
	if err := again.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := again.Wait(withTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := l.Stop(withTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, pid := range l.PIDs() {
		if PIDAlive(pid) {
			t.Errorf("engine %d alive after stop", pid)
		}
	}
	// The killed engine keeps its log for inspection.
	if _, err := os.Stat(filepath.Join(logDir, "ipengine-cid-1700000000-0.log")); err != nil {
		t.Errorf("log of an engine that died on its own was removed: %v", err)
	}
	if _, err := Restore(KindEngines, "local", Config{}, state); !errors.Is(err, ErrNotRunning) {
		t.Errorf("restore of a stopped set: %v, want ErrNotRunning", err)
	}
}

func TestAttachRefusesAnotherProcess(t *testing.T) {
	cfg := testConfig(t, "sleep")
	l, err := NewLocalController(cfg)
	if err != nil {
		t.Fatal(err)
	}
	killPIDs(t, l.PIDs)
	if err := l.Start(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	defer l.Stop(context.Background())
	pid := l.PIDs()[0]
	start := l.procs[0].proc.StartTime()
	r := OSRunner{}
	if _, err := r.Attach(pid, start, cfg.Command[0]); err != nil {
		t.Fatalf("attach to our own child: %v", err)
	}
	if start != 0 {
		if _, err := r.Attach(pid, start+1, ""); !errors.Is(err, ErrNotRunning) {
			t.Errorf("attach with another start time: %v, want ErrNotRunning (recycled pid)", err)
		}
	}
	if _, err := r.Attach(pid, 0, "/usr/bin/some-other-program"); !errors.Is(err, ErrNotRunning) {
		t.Errorf("attach with another program: %v, want ErrNotRunning", err)
	}
	if _, err := r.Attach(0, 0, ""); !errors.Is(err, ErrNotRunning) {
		t.Errorf("attach to pid 0: %v", err)
	}
}

func TestWaitConnection(t *testing.T) {
	t.Run("files written", func(t *testing.T) {
		cfg := testConfig(t, "controller")
		// Files left by an earlier controller must not be taken.
		if err := writeFakeConnection(cfg.ProfileDir, cfg.ClusterID); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-time.Hour)
		os.Chtimes(wire.ClientFile(cfg.ProfileDir, cfg.ClusterID), old, old)
		os.Chtimes(wire.EngineFile(cfg.ProfileDir, cfg.ClusterID), old, old)
		l, err := NewLocalController(cfg)
		if err != nil {
			t.Fatal(err)
		}
		killPIDs(t, l.PIDs)
		if err := l.Start(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
		defer l.Stop(context.Background())
		info, err := l.WaitConnection(withTimeout(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if info.Engine.HBPing != 1008 || info.Client.TaskScheme != "leastload" || !strings.Contains(string(info.EngineJSON), `"hb_pong": 1009`) {
			t.Errorf("connection info %+v / %s", info, info.EngineJSON)
		}
		if fi, _ := os.Stat(wire.EngineFile(cfg.ProfileDir, cfg.ClusterID)); fi.ModTime().Before(time.Now().Add(-time.Minute)) {
			t.Error("returned before the new controller rewrote the files")
		}
	})
	t.Run("controller dies", func(t *testing.T) {
		cfg := testConfig(t, "fail")
		l, err := NewLocalController(cfg)
		if err != nil {
			t.Fatal(err)
		}
		killPIDs(t, l.PIDs)
		if err := l.Start(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
		_, err = l.WaitConnection(withTimeout(t, 10*time.Second))
		if err == nil || !strings.Contains(err.Error(), "exited before") || !strings.Contains(err.Error(), "failing on purpose") {
			t.Fatalf("err = %v, want the early exit with the log tail", err)
		}
		if st := l.Status(); st.ExitCode != 3 {
			t.Errorf("exit code %d, want 3", st.ExitCode)
		}
	})
}

func TestStartFailureReportsCommand(t *testing.T) {
	cfg := testConfig(t, "sleep")
	cfg.Command = []string{filepath.Join(t.TempDir(), "no-such-program")}
	l, err := NewLocalEngineSet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(context.Background(), 2); err == nil || !strings.Contains(err.Error(), "no-such-program") {
		t.Fatalf("err = %v", err)
	}
}

func TestCatalog(t *testing.T) {
	if _, err := Lookup("Local"); err != nil {
		t.Error(err)
	}
	if _, err := Lookup("slu"); !errors.Is(err, ErrUnknownLauncher) {
		t.Errorf("prefix accepted: %v", err)
	}
	if got := Names(KindEngines); !slices.Equal(got, []string{"htcondor", "local", "lsf", "mpiexec", "pbs", "sge", "slurm", "srun", "ssh"}) {
		t.Errorf("Names = %v", got)
	}
	// ipyparallel's spellings.
	for alias, name := range map[string]string{"MPI": "mpiexec", "Slurm": "slurm", "SGE": "sge", "PBS": "pbs", "torque": "pbs", "LSF": "lsf", "HTCondor": "htcondor", "SSH": "ssh"} {
		if e, err := Lookup(alias); err != nil || e.Name != name {
			t.Errorf("Lookup(%q) = %v %v, want %s", alias, e, err, name)
		}
	}
	// ipyparallel's SSH proxy is our `ipcluster start --ssh HOST`.
	if _, err := Lookup("sshproxy"); !errors.Is(err, ErrUnknownLauncher) || !strings.Contains(err.Error(), "--ssh HOST") {
		t.Errorf("sshproxy: %v", err)
	}
	if _, err := New(KindController, "nope", Config{}); !errors.Is(err, ErrUnknownLauncher) {
		t.Errorf("New(nope) = %v", err)
	}
}

func TestTailFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	os.WriteFile(path, []byte("a\nb\nc\nd\n"), 0o600)
	if got, _ := tailFile(path, 2); got != "c\nd\n" {
		t.Errorf("tail 2 = %q", got)
	}
	if got, _ := tailFile(path, 0); got != "a\nb\nc\nd\n" {
		t.Errorf("tail all = %q", got)
	}
}

func withTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func values(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestLocalEnginesDropRankVariables: local engines started by an
// ipcluster that runs as an MPI rank or a Slurm step task must not take
// themselves for that rank.
func TestLocalEnginesDropRankVariables(t *testing.T) {
	t.Setenv("OMPI_COMM_WORLD_RANK", "3")
	t.Setenv("PMIX_RANK", "3")
	t.Setenv("SLURM_STEP_ID", "0")
	t.Setenv("SLURM_PROCID", "3")
	t.Setenv("SLURM_JOB_ID", "77")
	r := newFakeRunner()
	cfg := fakeMPIConfig(t, r)
	cfg.Options = nil
	l, err := NewLocalEngineSet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	env := envOf(r.started[0])
	for _, k := range []string{"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_STEP_ID", "SLURM_PROCID"} {
		if v, ok := env[k]; ok {
			t.Errorf("local engine inherited %s=%s", k, v)
		}
	}
	if env["SLURM_JOB_ID"] != "77" {
		t.Errorf("the allocation's SLURM_JOB_ID was dropped too")
	}
}

// Every process we start asks glibc for huge pages (libzmq's message
// buffers), keeping the other tunables it inherits, and a user who set
// the tunable either way keeps their choice.
func TestEnvironAddsHugePageTunable(t *testing.T) {
	for _, c := range []struct {
		inherited string // "" = unset
		cfgEnv    string // Config.Env value; "" = none
		want      string
	}{
		{"", "", "glibc.malloc.hugetlb=1"},
		{"glibc.malloc.arena_max=2", "", "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"},
		{"glibc.malloc.hugetlb=0", "", "glibc.malloc.hugetlb=0"},
		{"glibc.malloc.arena_max=2", "glibc.malloc.hugetlb=2", "glibc.malloc.hugetlb=2"},
		{"", "glibc.malloc.tcache_count=0", "glibc.malloc.tcache_count=0:glibc.malloc.hugetlb=1"},
	} {
		if c.inherited == "" {
			t.Setenv("GLIBC_TUNABLES", "")
			os.Unsetenv("GLIBC_TUNABLES")
		} else {
			t.Setenv("GLIBC_TUNABLES", c.inherited)
		}
		cfg := &Config{ClusterID: "x", ProfileDir: t.TempDir()}
		if c.cfgEnv != "" {
			cfg.Env = map[string]string{"GLIBC_TUNABLES": c.cfgEnv}
		}
		var got []string
		for _, kv := range cfg.Environ(nil) {
			if strings.HasPrefix(kv, "GLIBC_TUNABLES=") {
				got = append(got, strings.TrimPrefix(kv, "GLIBC_TUNABLES="))
			}
		}
		if len(got) != 1 || got[0] != c.want {
			t.Errorf("inherited %q, Config.Env %q: GLIBC_TUNABLES %q, want exactly [%q]", c.inherited, c.cfgEnv, got, c.want)
		}
	}
}

// Local engines share the CPUs: each gets GOMAXPROCS = CPUs / engines (at
// least 1) unless the user chose a GOMAXPROCS, in the environment or the
// launcher's Env, which is then what every engine gets.
func TestLocalEnginesShareCPUs(t *testing.T) {
	cpus := runtime.NumCPU()
	for _, c := range []struct {
		n                 int
		inherited, cfgEnv string // "" = unset
		want              string
	}{
		{1, "", "", strconv.Itoa(cpus)},
		{2, "", "", strconv.Itoa(max(1, cpus/2))},
		{2*cpus + 1, "", "", "1"},
		{4, "3", "", "3"},
		{4, "", "5", "5"},
	} {
		if c.inherited == "" {
			t.Setenv(envGOMAXPROCS, "")
			os.Unsetenv(envGOMAXPROCS)
		} else {
			t.Setenv(envGOMAXPROCS, c.inherited)
		}
		r := newFakeRunner()
		cfg := fakeMPIConfig(t, r)
		cfg.Options = nil
		if c.cfgEnv != "" {
			cfg.Env = map[string]string{envGOMAXPROCS: c.cfgEnv}
		}
		l, err := NewLocalEngineSet(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Start(context.Background(), c.n); err != nil {
			t.Fatal(err)
		}
		if len(r.started) != c.n {
			t.Fatalf("%d engines started, want %d", len(r.started), c.n)
		}
		for i, cmd := range r.started {
			if got := envOf(cmd)[envGOMAXPROCS]; got != c.want {
				t.Errorf("%d engines on %d CPUs (inherited %q, Env %q): engine %d has GOMAXPROCS=%q, want %q",
					c.n, cpus, c.inherited, c.cfgEnv, i, got, c.want)
			}
		}
	}
}
