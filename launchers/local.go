package launchers

import (
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// StateVersion is the version of the handles the local launchers save.
const StateVersion = 1

// Roles given to the default command (this binary) for each kind.
const (
	ControllerRole = "controller"
	EngineRole     = "engine"
)

// ipclusterPackage is the main package our ipcluster is built from; its
// build information is how a binary is recognised as ours.
const ipclusterPackage = "github.com/ipp-hpc/ipp/cmd/ipcluster"

// DefaultCommand is the program that plays role ("controller" or
// "engine"): FindIPCluster's binary with the role as first argument.
func DefaultCommand(role string) ([]string, error) {
	exe, err := FindIPCluster()
	if err != nil {
		return nil, err
	}
	return []string{exe, role}, nil
}

// FindIPCluster returns this project's ipcluster: $IPP_IPCLUSTER, else
// the running program when it is ipcluster, else ipcluster in PATH. What
// is found must be ours: on Debian with python3-ipyparallel installed the
// ipcluster in PATH is Python's, which would fail later with its help
// text in a log nobody reads.
func FindIPCluster() (string, error) {
	if p := os.Getenv(protocol.EnvIPCluster); p != "" {
		if err := CheckIPCluster(p); err != nil {
			return "", fmt.Errorf("$%s: %w", protocol.EnvIPCluster, err)
		}
		return p, nil
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Path == ipclusterPackage {
		if exe, err := os.Executable(); err == nil {
			return exe, nil
		}
	}
	p, err := exec.LookPath("ipcluster")
	if err != nil {
		return "", fmt.Errorf("cannot find this project's ipcluster: it is not in PATH; set $%s to its path (or give the commands explicitly)", protocol.EnvIPCluster)
	}
	if err := CheckIPCluster(p); err != nil {
		return "", fmt.Errorf("the ipcluster in PATH is not this project's: %w; set $%s to ours (e.g. bin/ipcluster after `make build`)", err, protocol.EnvIPCluster)
	}
	return p, nil
}

// CheckIPCluster checks that path is a build of this project's ipcluster.
func CheckIPCluster(path string) error {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s is not a Go program built from %s (%v); Python ipyparallel's ipcluster cannot play our roles", path, ipclusterPackage, err)
	}
	if bi.Path != ipclusterPackage {
		return fmt.Errorf("%s is a Go program built from %s, not %s", path, bi.Path, ipclusterPackage)
	}
	return nil
}

// procRecord is one local process as saved in the cluster file. The
// names pid, output_file, state, profile_dir and cluster_id are
// ipyparallel's LocalProcessLauncher traits, so Python's ipcluster can read
// the file too.
type procRecord struct {
	PID        int      `json:"pid"`
	StartTime  uint64   `json:"start_time,omitempty"`
	OutputFile string   `json:"output_file"`
	State      State    `json:"state"`
	ProfileDir string   `json:"profile_dir"`
	ClusterID  string   `json:"cluster_id"`
	Cmd        []string `json:"cmd,omitempty"`
}

// localRegistrationTimeout is how long engines started on this host wait
// for the controller's registration_reply (IPP_REGISTRATION_TIMEOUT),
// instead of an engine's 5 s default (ipyparallel's), which suits a
// controller that may be gone. Here the controller was seen up before
// the engines started, and hundreds of engines starting at once on two
// cores starve it: it answered some registrations after more than 5 s,
// and each such engine gave up and failed the whole start (300 engines,
// 2026-12-06).
const localRegistrationTimeout = 60 * time.Second

// localProc is one process of a local launcher.
type localProc struct {
	rec  procRecord
	proc Process // nil when it was gone at reattach
	// stopping is set once Stop has signalled the process; its exit is
	// then expected and its log is removed.
	stopping bool
}

func (p *localProc) alive() bool { return p.proc != nil && p.proc.Alive() }

// localGroup is what the local controller and engine-set launchers share:
// a list of processes on this host, started with the same command.
type localGroup struct {
	cfg  Config
	argv []string
	// drop filters the inherited environment (local engines lose the
	// rank variables of an MPI job or Slurm step ipcluster runs in).
	drop    func(string) bool
	mu      sync.Mutex
	procs   []*localProc
	started bool
	// sameSession starts the processes in our session (see
	// Command.SameSession): engines, not the controller.
	sameSession bool
}

func newLocalGroup(cfg Config, role string) (*localGroup, error) {
	if cfg.ProfileDir == "" {
		return nil, errors.New("launchers: no profile directory")
	}
	argv := slices.Clone(cfg.Command)
	if len(argv) == 0 {
		var err error
		if argv, err = DefaultCommand(role); err != nil {
			return nil, err
		}
	}
	argv = append(argv, cfg.Args...)
	if role == EngineRole {
		argv = withClusterArgs(argv, cfg.ProfileDir, cfg.ClusterID)
	}
	return &localGroup{cfg: cfg, argv: argv}, nil
}

// spawn starts one process logging to output.
func (g *localGroup) spawn(output string, extra map[string]string) (*localProc, error) {
	lp, err := g.start(output, extra)
	if err != nil {
		return nil, err
	}
	g.add(lp)
	return lp, nil
}

// add makes started processes part of the group, in order.
func (g *localGroup) add(lps ...*localProc) {
	g.mu.Lock()
	g.procs = append(g.procs, lps...)
	g.started = true
	g.mu.Unlock()
}

// start starts one process logging to output, without adding it.
func (g *localGroup) start(output string, extra map[string]string) (*localProc, error) {
	cmd := Command{
		Path:        g.argv[0],
		Args:        g.argv[1:],
		Env:         g.cfg.environ(extra, g.drop),
		Dir:         g.cfg.WorkDir,
		OutputFile:  output,
		SameSession: g.sameSession,
	}
	p, err := g.cfg.runner().Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", cmd, err)
	}
	g.cfg.logger().Info("started process", "pid", p.PID(), "cmd", cmd.String(), "log", output)
	lp := &localProc{proc: p, rec: procRecord{
		PID:        p.PID(),
		StartTime:  p.StartTime(),
		OutputFile: output,
		State:      StateRunning,
		ProfileDir: g.cfg.ProfileDir,
		ClusterID:  g.cfg.ClusterID,
		Cmd:        g.argv,
	}}
	return lp, nil
}

// attach reattaches to a saved process; a gone process is kept with a nil
// handle so its pid is still reported.
func (g *localGroup) attach(rec procRecord) *localProc {
	lp := &localProc{rec: rec}
	program := ""
	if len(rec.Cmd) > 0 {
		program = rec.Cmd[0]
	}
	p, err := g.cfg.runner().Attach(rec.PID, rec.StartTime, program)
	if err == nil {
		lp.proc = p
	} else {
		lp.rec.State = StateAfter
		g.cfg.logger().Debug("saved process is gone", "pid", rec.PID, "err", err)
	}
	g.mu.Lock()
	g.procs = append(g.procs, lp)
	g.started = true
	g.mu.Unlock()
	return lp
}

func (g *localGroup) isStarted() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.started
}

func (g *localGroup) snapshot() []*localProc {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.procs)
}

// Stop implements Launcher: SIGTERM to every process group, SIGKILL to
// those still alive after the grace period, then a SIGKILL sweep of each
// group so that no child of theirs survives.
func (g *localGroup) Stop(ctx context.Context) error {
	procs := g.snapshot()
	trees := g.descendants(procs)
	var wg sync.WaitGroup
	errs := make([]error, len(procs))
	for i, lp := range procs {
		if lp.proc == nil {
			continue
		}
		g.mu.Lock()
		wasAlive := lp.proc.Alive()
		lp.stopping = lp.stopping || wasAlive
		g.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = g.stopOne(ctx, lp, trees[i])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// descendants lists the descendants of each live process of procs, before
// any is stopped. Children in sessions of their own escape the group's
// SIGKILL sweep (a Python engine's nanny, ipyparallel 7.x, lingers a minute
// or more after its engine); they are found while their parent lives
// (they are reparented when it dies) and killed after it. One look at the
// process table serves the whole group when the runner can (GroupTreeRunner).
func (g *localGroup) descendants(procs []*localProc) [][]Process {
	trees := make([][]Process, len(procs))
	tr, ok := g.cfg.runner().(TreeRunner)
	if !ok {
		return trees
	}
	var live []Process
	var at []int
	for i, lp := range procs {
		if lp.proc != nil && lp.proc.Alive() {
			live = append(live, lp.proc)
			at = append(at, i)
		}
	}
	if gt, ok := tr.(GroupTreeRunner); ok {
		for j, ds := range gt.DescendantsOf(live) {
			trees[at[j]] = ds
		}
		return trees
	}
	for j, p := range live {
		trees[at[j]] = tr.Descendants(p)
	}
	return trees
}

func (g *localGroup) stopOne(ctx context.Context, lp *localProc, tree []Process) error {
	log := g.cfg.logger().With("pid", lp.rec.PID)
	p := lp.proc
	if err := stopProcess(ctx, log, fmt.Sprintf("pid %d", lp.rec.PID), p, g.cfg.stopGrace(), nil); err != nil {
		return err
	}
	for _, d := range tree {
		if d.Alive() {
			log.Debug("killing a descendant left in another session", "descendant", d.PID())
			_ = d.Signal(syscall.SIGKILL)
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := d.Wait(wctx); err != nil {
				log.Warn("a descendant survived SIGKILL", "descendant", d.PID(), "err", err)
			}
			cancel()
		}
	}
	g.mu.Lock()
	lp.rec.State = StateAfter
	stopping := lp.stopping
	g.mu.Unlock()
	if code := p.ExitCode(); code > 0 && !stopping {
		log.Warn("process had exited with an error", "exit_code", code, "log", lp.rec.OutputFile)
	}
	if stopping && lp.rec.OutputFile != "" {
		// Like ipyparallel: a process we stopped leaves no log behind;
		// one that died on its own keeps it for inspection.
		if err := os.Remove(lp.rec.OutputFile); err != nil && !os.IsNotExist(err) {
			log.Debug("removing log", "err", err)
		}
	}
	return nil
}

// Signal implements Launcher.
func (g *localGroup) Signal(sig syscall.Signal) error {
	var errs []error
	for _, lp := range g.snapshot() {
		if lp.alive() {
			errs = append(errs, lp.proc.Signal(sig))
		}
	}
	return errors.Join(errs...)
}

// Status implements Launcher.
func (g *localGroup) Status() Status {
	procs := g.snapshot()
	st := Status{State: StateBefore, Total: len(procs), ExitCode: -1}
	if len(procs) == 0 {
		return st
	}
	known := true
	for _, lp := range procs {
		if lp.alive() {
			st.Running++
			continue
		}
		st.Exited++
		code := -1
		if lp.proc != nil {
			code = lp.proc.ExitCode()
		}
		if code < 0 {
			known = false
		} else if code != 0 && st.ExitCode <= 0 {
			st.ExitCode = code
		}
	}
	switch {
	case st.Running > 0:
		st.State = StateRunning
		st.ExitCode = -1
	default:
		st.State = StateAfter
		if st.ExitCode < 0 && known {
			st.ExitCode = 0
		}
	}
	return st
}

// Wait implements Launcher.
func (g *localGroup) Wait(ctx context.Context) error {
	for _, lp := range g.snapshot() {
		if lp.proc == nil {
			continue
		}
		if err := lp.proc.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// PIDs implements ProcessLister.
func (g *localGroup) PIDs() []int {
	var pids []int
	for _, lp := range g.snapshot() {
		pids = append(pids, lp.rec.PID)
	}
	return pids
}

// Output implements OutputReader.
func (g *localGroup) Output(maxLines int) map[string]string {
	out := map[string]string{}
	for _, lp := range g.snapshot() {
		if lp.rec.OutputFile == "" {
			continue
		}
		if text, err := tailFile(lp.rec.OutputFile, maxLines); err == nil {
			out[lp.rec.OutputFile] = text
		}
	}
	return out
}

func (g *localGroup) records() []procRecord {
	g.mu.Lock()
	defer g.mu.Unlock()
	recs := make([]procRecord, len(g.procs))
	for i, lp := range g.procs {
		recs[i] = lp.rec
		if lp.rec.State == StateRunning && !lp.alive() {
			recs[i].State = StateAfter
		}
	}
	return recs
}

// tailFile returns the last n lines of a file (all when n <= 0).
func tailFile(path string, n int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	const window = 64 << 10
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	off := max(0, fi.Size()-window)
	buf := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return "", err
	}
	lines := strings.SplitAfter(string(buf), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if n > 0 && len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, ""), nil
}

// LocalController runs the controller as a child process of this host.
type LocalController struct {
	*localGroup
	stale [2]fileStamp // the connection files as they were before Start
}

// NewLocalController returns a local controller launcher.
func NewLocalController(cfg Config) (*LocalController, error) {
	g, err := newLocalGroup(cfg, ControllerRole)
	if err != nil {
		return nil, err
	}
	return &LocalController{localGroup: g}, nil
}

// Start implements Launcher; n must be 0 or 1.
func (l *LocalController) Start(ctx context.Context, n int) error {
	if n > 1 {
		return fmt.Errorf("a controller launcher starts one controller, not %d", n)
	}
	if l.isStarted() {
		return errors.New("controller already started")
	}
	l.stale = [2]fileStamp{
		stampOf(wire.ClientFile(l.cfg.ProfileDir, l.cfg.ClusterID)),
		stampOf(wire.EngineFile(l.cfg.ProfileDir, l.cfg.ClusterID)),
	}
	name := joinNonEmpty("-", "ipcontroller", l.cfg.ClusterID, strconv.Itoa(os.Getpid())) + ".log"
	_, err := l.spawn(filepath.Join(wire.LogDir(l.cfg.ProfileDir), name), nil)
	return err
}

// WaitConnection implements ConnectionWaiter: it polls for both
// connection files, ignoring files left over from an earlier controller,
// and fails early if the controller exits first.
func (l *LocalController) WaitConnection(ctx context.Context) (*ConnectionInfo, error) {
	clientPath := wire.ClientFile(l.cfg.ProfileDir, l.cfg.ClusterID)
	enginePath := wire.EngineFile(l.cfg.ProfileDir, l.cfg.ClusterID)
	var info *ConnectionInfo
	var lastErr error
	// Two stat calls every 10 ms: the engines' start (and so the whole
	// cluster's) waits on this, so no growing interval here.
	err := pollGrowing(ctx, 10*time.Millisecond, 10*time.Millisecond, func() bool {
		if l.Status().State == StateAfter {
			lastErr = fmt.Errorf("controller exited before writing its connection files%s", l.outputHint())
			return true
		}
		if stampOf(clientPath) == l.stale[0] || stampOf(enginePath) == l.stale[1] {
			return false
		}
		info, lastErr = ReadConnection(l.cfg.ProfileDir, l.cfg.ClusterID)
		return lastErr == nil
	})
	if err != nil {
		if lastErr != nil {
			return nil, fmt.Errorf("waiting for the controller's connection files: %w (last error: %v)", err, lastErr)
		}
		return nil, fmt.Errorf("waiting for the controller's connection files %s: %w", enginePath, err)
	}
	return info, lastErr
}

func (l *LocalController) outputHint() string {
	var b strings.Builder
	for path, text := range l.Output(20) {
		if text != "" {
			fmt.Fprintf(&b, "\n--- %s ---\n%s", path, text)
		}
	}
	return b.String()
}

// ReadConnection reads a cluster's two connection files.
func ReadConnection(profileDir, clusterID string) (*ConnectionInfo, error) {
	client, err := wire.LoadClientInfo(wire.ClientFile(profileDir, clusterID))
	if err != nil {
		return nil, err
	}
	enginePath := wire.EngineFile(profileDir, clusterID)
	engine, err := wire.LoadEngineInfo(enginePath)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(enginePath)
	if err != nil {
		return nil, err
	}
	return &ConnectionInfo{Client: client, Engine: engine, EngineJSON: raw}, nil
}

// localControllerState is the LocalController handle.
type localControllerState struct {
	Version int `json:"version"`
	procRecord
}

// MarshalState implements Stateful.
func (l *LocalController) MarshalState() (json.RawMessage, error) {
	recs := l.records()
	if len(recs) != 1 {
		return nil, errors.New("controller not started")
	}
	return json.Marshal(localControllerState{Version: StateVersion, procRecord: recs[0]})
}

func restoreLocalController(cfg Config, state json.RawMessage) (Launcher, error) {
	var st localControllerState
	if err := decodeState("local controller", state, &st); err != nil {
		return nil, err
	}
	cfg.restored(st.ProfileDir, "", st.Cmd)
	l, err := NewLocalController(cfg)
	if err != nil {
		return nil, err
	}
	if st.State == StateAfter || l.attach(st.procRecord).proc == nil {
		return nil, fmt.Errorf("controller pid %d: %w", st.PID, ErrNotRunning)
	}
	return l, nil
}

// LocalEngineSet runs n engines as child processes of this host.
type LocalEngineSet struct {
	*localGroup
	requested int
}

// NewLocalEngineSet returns a local engine-set launcher.
func NewLocalEngineSet(cfg Config) (*LocalEngineSet, error) {
	g, err := newLocalGroup(cfg, EngineRole)
	if err != nil {
		return nil, err
	}
	g.drop = isRankVariable
	g.sameSession = true
	return &LocalEngineSet{localGroup: g}, nil
}

// Start implements Launcher: n engines, each with its own log
// <profile>/log/ipengine-<cluster id>-<set id>-<i>.log. If one fails to
// start, those already started are stopped.
func (l *LocalEngineSet) Start(ctx context.Context, n int) error {
	if n < 1 {
		return fmt.Errorf("cannot start %d engines", n)
	}
	if l.isStarted() {
		return errors.New("engine set already started")
	}
	l.requested = n
	extra := l.cfg.engineEnv()
	if _, set := os.LookupEnv(protocol.EnvRegistrationTimeout); !set {
		extra[protocol.EnvRegistrationTimeout] = strconv.Itoa(int(localRegistrationTimeout.Seconds()))
	}
	if v, ok := l.cfg.cpuShare(n); ok {
		extra[envGOMAXPROCS] = v
	}
	if l.cfg.Delay <= 0 && n > 1 {
		return l.startParallel(ctx, n, extra)
	}
	for i := range n {
		if i > 0 && l.cfg.Delay > 0 {
			t := time.NewTimer(l.cfg.Delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return errors.Join(ctx.Err(), l.Stop(context.Background()))
			case <-t.C:
			}
		}
		name := joinNonEmpty("-", "ipengine", l.cfg.ClusterID, l.cfg.EngineSetID, strconv.Itoa(i)) + ".log"
		if _, err := l.spawn(filepath.Join(wire.LogDir(l.cfg.ProfileDir), name), extra); err != nil {
			return errors.Join(err, l.Stop(context.Background()))
		}
	}
	return nil
}

// envGOMAXPROCS is the Go runtime's variable for how many threads run Go
// code at once.
const envGOMAXPROCS = "GOMAXPROCS"

// cpuShare is the GOMAXPROCS for each of n engines started on this host:
// its share of the CPUs this process may use, at least 1. Each Go engine
// would otherwise size its scheduler for every CPU, and n of them on a
// node oversubscribe it: idle processors spin looking for work and wake
// threads nobody needs. By hand, 1,000 engines on 2 CPUs with GOMAXPROCS=1
// started in 27.5-33.6 s against 34.3-38.0 s, four and five runs
// (docs/performance.md). Batch and MPI ranks are left alone: their
// launcher places them (Slurm and Open MPI bind each rank to its CPUs, and
// Go counts only those). A GOMAXPROCS the user set (in the environment or
// the launcher's Env) is kept.
func (c *Config) cpuShare(n int) (string, bool) {
	if _, set := os.LookupEnv(envGOMAXPROCS); set {
		return "", false
	}
	if _, set := c.Env[envGOMAXPROCS]; set {
		return "", false
	}
	return strconv.Itoa(max(1, runtime.NumCPU()/max(n, 1))), true
}

// spawners is how many engines a local engine set starts at once. The
// launcher shares its session's CPU with the engines it started (see
// Command.SameSession); one spawning thread among a thousand starting
// engines got 240 ms per spawn at load 85, several get several shares.
const spawners = 8

// startParallel is Start without a delay: spawners goroutines start the
// engines, which keep their index order in the group (and the state).
func (l *LocalEngineSet) startParallel(ctx context.Context, n int, extra map[string]string) error {
	procs := make([]*localProc, n)
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(spawners, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				name := joinNonEmpty("-", "ipengine", l.cfg.ClusterID, l.cfg.EngineSetID, strconv.Itoa(i)) + ".log"
				procs[i], errs[i] = l.start(filepath.Join(wire.LogDir(l.cfg.ProfileDir), name), extra)
			}
		}()
	}
	failed := ctx.Err()
	for i := 0; i < n && failed == nil; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
			failed = ctx.Err()
		}
	}
	close(next)
	wg.Wait()
	var started []*localProc
	for i, lp := range procs {
		if lp != nil {
			started = append(started, lp)
		} else if errs[i] != nil && failed == nil {
			failed = errs[i]
		}
	}
	l.add(started...)
	if failed != nil {
		return errors.Join(failed, l.Stop(context.Background()))
	}
	return nil
}

// Requested is the number of engines asked for.
func (l *LocalEngineSet) Requested() int { return l.requested }

// localEngineSetState is the LocalEngineSet handle; "engines" maps the
// engine index to its process, as ipyparallel's LocalEngineSetLauncher.
type localEngineSetState struct {
	Version     int                   `json:"version"`
	N           int                   `json:"n"`
	EngineSetID string                `json:"engine_set_id"`
	State       State                 `json:"state"`
	ProfileDir  string                `json:"profile_dir"`
	ClusterID   string                `json:"cluster_id"`
	Engines     map[string]procRecord `json:"engines"`
}

// MarshalState implements Stateful.
func (l *LocalEngineSet) MarshalState() (json.RawMessage, error) {
	st := localEngineSetState{
		Version:     StateVersion,
		N:           l.requested,
		EngineSetID: l.cfg.EngineSetID,
		State:       l.Status().State,
		ProfileDir:  l.cfg.ProfileDir,
		ClusterID:   l.cfg.ClusterID,
		Engines:     map[string]procRecord{},
	}
	for i, rec := range l.records() {
		st.Engines[strconv.Itoa(i)] = rec
	}
	return json.Marshal(st)
}

func restoreLocalEngineSet(cfg Config, state json.RawMessage) (Launcher, error) {
	var st localEngineSetState
	if err := decodeState("local engine set", state, &st); err != nil {
		return nil, err
	}
	cfg.restored(st.ProfileDir, st.EngineSetID, nil)
	keys := make([]string, 0, len(st.Engines))
	for k := range st.Engines {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, _ := strconv.Atoi(keys[i])
		b, _ := strconv.Atoi(keys[j])
		return a < b
	})
	l, err := NewLocalEngineSet(cfg)
	if err != nil {
		return nil, err
	}
	l.requested = st.N
	alive := 0
	for _, k := range keys {
		rec := st.Engines[k]
		if rec.State == StateAfter {
			continue
		}
		if l.attach(rec).proc != nil {
			alive++
		}
	}
	if alive == 0 {
		return nil, fmt.Errorf("engine set %s: %w", st.EngineSetID, ErrNotRunning)
	}
	return l, nil
}

func joinNonEmpty(sep string, parts ...string) string {
	var keep []string
	for _, p := range parts {
		if p != "" {
			keep = append(keep, p)
		}
	}
	return strings.Join(keep, sep)
}

// fileStamp tells one version of a file from another.
type fileStamp struct {
	exists bool
	mod    int64
	size   int64
	ino    uint64
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{exists: true, mod: fi.ModTime().UnixNano(), size: fi.Size(), ino: inode(fi)}
}
