package launchers

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/testutil"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// fakeProc is a process that exists only in the test.
type fakeProc struct {
	mu      sync.Mutex
	pid     int
	alive   bool
	signals []syscall.Signal // group signals
	pidSigs []syscall.Signal // signals to the process alone
	// dieOn ends the process when it receives this signal.
	dieOn syscall.Signal
}

func (p *fakeProc) PID() int          { return p.pid }
func (p *fakeProc) StartTime() uint64 { return uint64(p.pid) * 10 }
func (p *fakeProc) Alive() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.alive
}
func (p *fakeProc) ExitCode() int {
	if p.Alive() {
		return -1
	}
	return 0
}
func (p *fakeProc) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.signals = append(p.signals, sig)
	if sig == p.dieOn || sig == syscall.SIGKILL {
		p.alive = false
	}
	return nil
}
func (p *fakeProc) SignalPID(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pidSigs = append(p.pidSigs, sig)
	return nil
}
func (p *fakeProc) Wait(ctx context.Context) error {
	return pollUntil(ctx, func() bool { return !p.Alive() })
}
func (p *fakeProc) sent() ([]syscall.Signal, []syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.signals), slices.Clone(p.pidSigs)
}

// fakeRunner records the commands it starts and hands out fakeProcs;
// children are the descendants it reports for every process.
type fakeRunner struct {
	mu       sync.Mutex
	started  []Command
	procs    map[int]*fakeProc
	next     int
	children []*fakeProc
	dieOn    syscall.Signal
}

func newFakeRunner() *fakeRunner {
	return &fakeRunner{procs: map[int]*fakeProc{}, next: 4000, dieOn: syscall.SIGTERM}
}

func (r *fakeRunner) Run(context.Context, Command) (Result, error) {
	return Result{}, errors.New("fakeRunner runs nothing")
}

func (r *fakeRunner) Start(c Command) (Process, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	p := &fakeProc{pid: r.next, alive: true, dieOn: r.dieOn}
	r.procs[p.pid] = p
	r.started = append(r.started, c)
	return p, nil
}

func (r *fakeRunner) Attach(pid int, start uint64, program string) (Process, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.procs[pid]
	if p == nil || !p.Alive() || (start != 0 && start != p.StartTime()) {
		return nil, ErrNotRunning
	}
	return p, nil
}

func (r *fakeRunner) Descendants(Process) []Process {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Process
	for _, c := range r.children {
		if c.Alive() {
			out = append(out, c)
		}
	}
	return out
}

func envOf(c Command) map[string]string {
	m := map[string]string{}
	for _, kv := range c.Env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func fakeMPIConfig(t *testing.T, r Runner) Config {
	t.Helper()
	return Config{
		ProfileDir:     filepath.Join(t.TempDir(), "profile_mpi"),
		ClusterID:      "cid",
		EngineSetID:    "set1",
		Command:        []string{"/opt/bin/ipcluster", "engine"},
		Args:           []string{"--log-level=debug"},
		Env:            map[string]string{"EXTRA": "x"},
		ConnectionInfo: []byte(`{"key":"k"}`),
		Options:        &MPIExecOptions{MPIExec: []string{"mpiexec.openmpi", "--bind-to", "none"}, MPIArgs: []string{"-x", "FOO"}},
		EngineIDBase:   4,
		StopGrace:      50 * time.Millisecond,
		Runner:         r,
	}
}

func TestMPIExecCommandLineAndEnvironment(t *testing.T) {
	r := newFakeRunner()
	l, err := New(KindEngines, "mpiexec", fakeMPIConfig(t, r))
	if err != nil {
		t.Fatal(err)
	}
	m := l.(*MPIExecEngineSet)
	m.geteuid = func() int { return 0 }
	m.numCPU = func() int { return 2 }
	if err := l.Start(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	if len(r.started) != 1 {
		t.Fatalf("started %d processes, want one mpiexec", len(r.started))
	}
	c := r.started[0]
	got := append([]string{c.Path}, c.Args...)
	want := []string{"mpiexec.openmpi", "--bind-to", "none", "-x", "FOO", "-n", "3", "/opt/bin/ipcluster", "engine", "--log-level=debug"}
	if !slices.Equal(got, want) {
		t.Errorf("command line\n got %q\nwant %q", got, want)
	}
	env := envOf(c)
	for k, v := range map[string]string{
		protocol.EnvMPISize: "3", protocol.EnvEngineIDBase: "4", protocol.EnvConnectionInfo: `{"key":"k"}`,
		protocol.EnvClusterID: "cid", "EXTRA": "x",
		"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_rmaps_base_oversubscribe": "1",
	} {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	if wantLog := filepath.Join(wire.LogDir(m.cfg.ProfileDir), "ipengine-cid-set1.log"); c.OutputFile != wantLog {
		t.Errorf("log %q, want %q", c.OutputFile, wantLog)
	}
	if st := l.Status(); st.State != StateRunning || st.Running != 3 || st.Total != 3 {
		t.Errorf("status %+v, want 3 of 3 running", st)
	}
}

func TestMPIExecNoOpenMPIVariablesForUsers(t *testing.T) {
	r := newFakeRunner()
	cfg := fakeMPIConfig(t, r)
	cfg.Options = nil
	m, err := NewMPIExecEngineSet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.geteuid = func() int { return 1000 }
	m.numCPU = func() int { return 64 }
	if err := m.Start(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	c := r.started[0]
	if c.Path != "mpiexec" {
		t.Errorf("default mpiexec is %q", c.Path)
	}
	env := envOf(c)
	for _, k := range []string{"OMPI_ALLOW_RUN_AS_ROOT", "OMPI_MCA_rmaps_base_oversubscribe"} {
		if _, ok := env[k]; ok && os.Getenv(k) == "" {
			t.Errorf("%s set for a non-root user within the CPU count", k)
		}
	}
}

func TestMPIExecStateRoundTripAndReattach(t *testing.T) {
	r := newFakeRunner()
	cfg := fakeMPIConfig(t, r)
	m, err := NewMPIExecEngineSet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	raw, err := m.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	if fields["version"] != float64(StateVersion) || fields["n"] != float64(2) || fields["pid"] != float64(4001) ||
		fields["engine_id_base"] != float64(4) || fields["state"] != "running" {
		t.Errorf("state %s", raw)
	}

	// Another process (fresh config, same runner) reattaches by pid.
	l2, err := Restore(KindEngines, "mpiexec", Config{Runner: r, StopGrace: 50 * time.Millisecond}, raw)
	if err != nil {
		t.Fatal(err)
	}
	m2 := l2.(*MPIExecEngineSet)
	if st := m2.Status(); st.Running != 2 || st.Total != 2 {
		t.Errorf("reattached status %+v", st)
	}
	raw2, err := m2.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	var a, b mpiexecState
	_ = json.Unmarshal(raw, &a)
	_ = json.Unmarshal(raw2, &b)
	if a.PID != b.PID || a.StartTime != b.StartTime || !slices.Equal(a.Cmd, b.Cmd) || a.N != b.N ||
		a.IDBase != b.IDBase || a.ProfileDir != b.ProfileDir || a.EngineSetID != b.EngineSetID {
		t.Errorf("state changed over a round trip:\n%s\n%s", raw, raw2)
	}

	// Signals go to mpiexec alone; stop ends its group and the ranks.
	rank := &fakeProc{pid: 9001, alive: true}
	r.children = []*fakeProc{rank}
	if err := l2.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	proc := r.procs[4001]
	if grp, alone := proc.sent(); len(grp) != 0 || !slices.Equal(alone, []syscall.Signal{syscall.SIGUSR1}) {
		t.Errorf("Signal sent group %v, alone %v; want SIGUSR1 to mpiexec alone", grp, alone)
	}
	if err := l2.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if grp, _ := proc.sent(); len(grp) == 0 || grp[0] != syscall.SIGTERM {
		t.Errorf("mpiexec's group got %v, want SIGTERM first", grp)
	}
	if rank.Alive() {
		t.Error("a rank outside mpiexec's group survived Stop")
	}
	if st := l2.Status(); st.State != StateAfter || st.Running != 0 {
		t.Errorf("status after stop %+v", st)
	}

	// Nothing left: restoring fails with ErrNotRunning.
	if _, err := Restore(KindEngines, "mpiexec", Config{Runner: r}, raw); !errors.Is(err, ErrNotRunning) {
		t.Errorf("restore of a stopped set: %v, want ErrNotRunning", err)
	}
}

func TestMPIExecStopKillsAfterGrace(t *testing.T) {
	r := newFakeRunner()
	r.dieOn = syscall.SIGKILL // mpiexec ignores SIGTERM
	m, err := NewMPIExecEngineSet(fakeMPIConfig(t, r))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	grp, _ := r.procs[4001].sent()
	if len(grp) < 2 || grp[0] != syscall.SIGTERM || grp[1] != syscall.SIGKILL {
		t.Errorf("signals %v, want SIGTERM then SIGKILL", grp)
	}
}

func TestMPIExecInCluster(t *testing.T) {
	r := newFakeRunner()
	dir := filepath.Join(t.TempDir(), "profile_c")
	c, err := NewCluster(ClusterOptions{ProfileDir: dir, ClusterID: "m", Engines: "mpiexec", Runner: r,
		EngineCmd: []string{"eng"}, EngineOptions: &MPIExecOptions{MPIExec: []string{"mpx"}, MPIArgs: []string{"-v"}}, NoConnectionEnv: true,
		StopGrace: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id, err := c.StartEnginesAt(ctx, 2, 7)
	if err != nil {
		t.Fatal(err)
	}
	if got := append([]string{r.started[0].Path}, r.started[0].Args...); !slices.Equal(got, []string{"mpx", "-v", "-n", "2", "eng"}) {
		t.Errorf("command %q", got)
	}
	if env := envOf(r.started[0]); env[protocol.EnvEngineIDBase] != "7" {
		t.Errorf("IPP_ENGINE_ID_BASE=%q, want 7", env[protocol.EnvEngineIDBase])
	}
	// A second set without an explicit base follows the first set's ranks.
	if _, err := c.StartEngines(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if env := envOf(r.started[1]); env[protocol.EnvEngineIDBase] != "2" {
		t.Errorf("second set IPP_ENGINE_ID_BASE=%q, want 2", env[protocol.EnvEngineIDBase])
	}
	other, err := LoadCluster(ctx, ClusterOptions{ProfileDir: dir, ClusterID: "m", Runner: r})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := other.EngineSets()[id].(*MPIExecEngineSet); !ok || other.Options().Engines != "mpiexec" {
		t.Fatalf("reloaded sets %v (engines %q)", other.EngineSets(), other.Options().Engines)
	}
	if o, _ := other.Options().EngineOptions.(*MPIExecOptions); o == nil || !slices.Equal(o.MPIExec, []string{"mpx"}) || !slices.Equal(o.MPIArgs, []string{"-v"}) {
		t.Errorf("reloaded cluster has mpiexec settings %+v, want the recorded mpx -v", o)
	}
	if err := other.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for pid, p := range r.procs {
		if p.Alive() {
			t.Errorf("pid %d alive after stop", pid)
		}
	}
}

// TestMPIExecRealJobs runs the test binary as the ranks of real Open MPI
// and MPICH jobs and checks that Stop leaves no process of the job.
func TestMPIExecRealJobs(t *testing.T) {
	for _, impl := range []string{"mpiexec.openmpi", "mpiexec.mpich"} {
		for _, mode := range []string{"rank", "rank-ignore-term"} {
			t.Run(impl+"/"+mode, func(t *testing.T) { testRealMPIJob(t, impl, mode) })
		}
	}
}

func testRealMPIJob(t *testing.T, impl, mode string) {
	path, err := exec.LookPath(impl)
	if err != nil {
		testutil.Missing(t, "%s not found (apt-get install openmpi-bin mpich): %v", impl, err)
		return
	}
	pidDir := t.TempDir()
	cfg := testConfig(t, mode)
	cfg.Env[pidDirEnv] = pidDir
	cfg.EngineSetID = "real"
	cfg.Options = &MPIExecOptions{MPIExec: []string{path}}
	if mode == "rank" {
		cfg.StopGrace = 10 * time.Second
	}
	m, err := NewMPIExecEngineSet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var seen []int
	killPIDs(t, func() []int { return seen })
	if err := m.Start(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	rankPIDs := func() []int {
		var pids []int
		entries, _ := os.ReadDir(pidDir)
		for _, e := range entries {
			if s, ok := strings.CutPrefix(e.Name(), "pid-"); ok {
				pid, _ := strconv.Atoi(s)
				pids = append(pids, pid)
			}
		}
		return pids
	}
	outputHint := func() string {
		var b strings.Builder
		for p, text := range m.Output(30) {
			b.WriteString("\n--- " + p + " ---\n" + text)
		}
		return b.String()
	}
	testutil.Eventually(t, 30*time.Second, func() bool {
		return len(rankPIDs()) == 2 || m.Status().State == StateAfter
	}, "2 ranks did not start%s", outputHint())
	if m.Status().State == StateAfter {
		t.Fatalf("mpiexec exited early (code %d)%s", m.Status().ExitCode, outputHint())
	}
	ranks := rankPIDs()
	seen = append(seen, ranks...)
	for _, f := range ranks {
		// The rank creates its file before it writes to it, and ends what
		// it writes with a newline: wait for that, not for the name.
		var data string
		testutil.Eventually(t, 30*time.Second, func() bool {
			b, _ := os.ReadFile(filepath.Join(pidDir, "pid-"+strconv.Itoa(f)))
			data = string(b)
			return strings.HasSuffix(data, "\n")
		}, "rank %d did not finish writing its pid file", f)
		data = strings.TrimSuffix(data, "\n")
		if data != "2" {
			t.Errorf("rank %d saw IPP_MPI_SIZE=%q, want 2", f, data)
		}
	}
	job := m.JobPIDs()
	seen = append(seen, job...)
	for _, r := range ranks {
		if !slices.Contains(job, r) {
			t.Errorf("rank %d is not among the job's processes %v", r, job)
		}
	}

	if mode == "rank" && strings.Contains(impl, "openmpi") {
		// Open MPI's mpiexec forwards SIGUSR1 to every rank (spec §2.2).
		if err := m.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, func() bool {
			for _, r := range ranks {
				if _, err := os.Stat(filepath.Join(pidDir, "usr1-"+strconv.Itoa(r))); err != nil {
					return false
				}
			}
			return true
		}, "SIGUSR1 did not reach both ranks")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, pid := range seen {
		if PIDAlive(pid) {
			t.Errorf("pid %d of the MPI job is alive after Stop", pid)
		}
	}
	if st := m.Status(); st.State != StateAfter {
		t.Errorf("status after stop %+v", st)
	}
}
