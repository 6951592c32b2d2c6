package launchers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/ipp-hpc/ipp/internal/wire"
)

// ClusterOptions configure a Cluster. Only ProfileDir is required.
type ClusterOptions struct {
	// ProfileDir and ClusterID locate the cluster file and the
	// connection files.
	ProfileDir string
	ClusterID  string
	// Controller and Engines are catalog names ("" = "local"). Engines
	// is the launcher of the engine sets this Cluster starts; sets
	// recorded by others keep their own.
	Controller string
	Engines    string
	// ControllerOptions and EngineOptions are the two launchers' own
	// settings (nil: defaults; LoadCluster then takes the newest engine
	// set's recorded settings when it used the same launcher).
	ControllerOptions Options
	EngineOptions     Options
	// ControllerCmd and EngineCmd are the programs (empty = this binary
	// or ipcluster in PATH, with the controller / engine role).
	ControllerCmd []string
	EngineCmd     []string
	// ControllerArgs are extra controller arguments, after --ip and
	// --location.
	ControllerArgs []string
	// IP and Location are passed to the controller as --ip and --location
	// when set.
	IP, Location string
	// N is the default number of engines.
	N int
	// Env holds extra environment variables for every process.
	Env map[string]string
	// EngineDelay separates consecutive engine starts.
	EngineDelay time.Duration
	// StopGrace is the SIGTERM-to-SIGKILL delay (default 5 s).
	StopGrace time.Duration
	// ConnectionTimeout bounds the wait for the controller's files
	// (default 60 s).
	ConnectionTimeout time.Duration
	// NoConnectionEnv makes engines find the connection file themselves
	// instead of receiving it in IPP_CONNECTION_INFO.
	NoConnectionEnv bool
	// Runner and Logger are handed to every launcher.
	Runner Runner
	Logger *slog.Logger
}

// Cluster is one controller and its engine sets, kept in step with the
// cluster file. Its methods are safe for concurrent use.
type Cluster struct {
	opts ClusterOptions

	mu         sync.Mutex
	controller Launcher
	sets       map[string]Launcher
	meta       map[string]setMeta // each set's launcher name and settings
	conn       *ConnectionInfo
	// controllerGone is why LoadCluster dropped the recorded controller
	// (its process is gone); stale that it dropped any launcher.
	controllerGone error
	stale          bool
}

// NewCluster returns a Cluster that has started nothing.
func NewCluster(opts ClusterOptions) (*Cluster, error) {
	if opts.ProfileDir == "" {
		return nil, errors.New("launchers: cluster needs a profile directory")
	}
	if opts.Controller == "" {
		opts.Controller = "local"
	}
	if opts.Engines == "" {
		opts.Engines = "local"
	}
	if opts.ConnectionTimeout <= 0 {
		opts.ConnectionTimeout = 60 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	for kind, name := range map[Kind]*string{KindController: &opts.Controller, KindEngines: &opts.Engines} {
		e, err := Lookup(*name)
		if err != nil {
			return nil, err
		}
		if !e.plays(kind) {
			return nil, fmt.Errorf("launcher %q cannot start %s", e.Name, kind)
		}
		*name = e.Name // "MPI" is recorded as "mpiexec"
	}
	return &Cluster{opts: opts, sets: map[string]Launcher{}, meta: map[string]setMeta{}}, nil
}

// Options returns the options in effect (with defaults filled in).
func (c *Cluster) Options() ClusterOptions { return c.opts }

// File is the cluster file's path.
func (c *Cluster) File() string { return wire.ClusterFile(c.opts.ProfileDir, c.opts.ClusterID) }

func (c *Cluster) config() Config {
	return Config{
		ProfileDir: c.opts.ProfileDir,
		ClusterID:  c.opts.ClusterID,
		Env:        c.opts.Env,
		StopGrace:  c.opts.StopGrace,
		Runner:     c.opts.Runner,
		Logger:     c.opts.Logger,
	}
}

func (c *Cluster) info() ClusterInfo {
	return ClusterInfo{
		ClusterID:          c.opts.ClusterID,
		ControllerArgs:     slices.Clone(c.opts.ControllerArgs),
		ControllerIP:       c.opts.IP,
		ControllerLocation: c.opts.Location,
		N:                  c.opts.N,
		ProfileDir:         c.opts.ProfileDir,
		Class:              PythonClusterClass,
		EngineCmd:          c.opts.EngineCmd,
	}
}

// StartController starts the controller and records it in the cluster
// file. It fails with ErrAlreadyStarted when the file shows a running
// controller. A cluster whose controller is gone (killed without cleaning
// up) is replaced: engines it left behind are stopped first (they can
// never reach the new controller), and its connection files are removed.
func (c *Cluster) StartController(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.controller != nil {
		return errors.New("controller already started")
	}
	cfg := c.config()
	cfg.Command = c.opts.ControllerCmd
	cfg.Options = c.opts.ControllerOptions
	if c.opts.IP != "" {
		cfg.Args = append(cfg.Args, "--ip="+c.opts.IP)
	}
	if c.opts.Location != "" {
		cfg.Args = append(cfg.Args, "--location="+c.opts.Location)
	}
	cfg.Args = append(cfg.Args, c.opts.ControllerArgs...)
	l, err := New(KindController, c.opts.Controller, cfg)
	if err != nil {
		return err
	}
	err = UpdateClusterFile(ctx, c.File(), func(cur *ClusterFile) (*ClusterFile, error) {
		if cur != nil {
			old, err := c.restore(cur)
			if err != nil {
				return nil, err
			}
			if old.controllerRunning() {
				return nil, fmt.Errorf("%w: %s (use `ipcluster stop` to stop it)", ErrAlreadyStarted, c.File())
			}
			if old.running() {
				c.opts.Logger.Warn("stopping the engines left by the cluster's dead controller", "pids", old.pids())
				if err := old.stop(ctx); err != nil {
					return nil, fmt.Errorf("stopping the engines left by the cluster's dead controller: %w", err)
				}
			}
			if cur.Controller != nil {
				if err := removeConnectionFiles(c.opts.ProfileDir, c.opts.ClusterID); err != nil {
					return nil, err
				}
			}
			c.opts.Logger.Info("replacing the file of a cluster that is no longer running", "file", c.File())
		}
		if err := l.Start(ctx, 1); err != nil {
			return nil, err
		}
		state, err := marshalState(l)
		if err != nil {
			return nil, errors.Join(err, l.Stop(context.Background()))
		}
		return &ClusterFile{
			Cluster:    c.info(),
			Controller: &LauncherRecord{Class: c.opts.Controller, State: state},
			Engines:    EngineSets{Class: c.opts.Engines, Sets: map[string]json.RawMessage{}},
		}, nil
	})
	if err != nil {
		return err
	}
	c.controller = l
	return nil
}

// RestartController starts a controller that takes over the cluster of
// one that died (the controller role's --restore: same key, ports and
// engine ids, from what the dead one left in the security directory).
// The engine sets recorded in the cluster file are kept, not stopped:
// their engines register again with the new controller. It fails with
// ErrNoCluster without a cluster file, and with ErrAlreadyStarted when
// the recorded controller is alive.
func (c *Cluster) RestartController(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.controller != nil && c.controller.Status().State != StateAfter {
		return errors.New("controller already started")
	}
	var l Launcher
	var snap clusterSnap
	err := UpdateClusterFile(ctx, c.File(), func(cur *ClusterFile) (*ClusterFile, error) {
		if cur == nil {
			return nil, fmt.Errorf("%w: no cluster file %s, nothing to restore", ErrNoCluster, c.File())
		}
		old, err := c.restore(cur)
		if err != nil {
			return nil, err
		}
		if old.controllerRunning() {
			return nil, fmt.Errorf("%w: %s: its controller is alive, nothing to restore", ErrAlreadyStarted, c.File())
		}
		class := c.opts.Controller
		if cur.Controller != nil && isDefaultLauncher(class) {
			class = cur.Controller.Class
		}
		cfg := c.config()
		cfg.Command = c.opts.ControllerCmd
		cfg.Options = c.opts.ControllerOptions
		// The dead controller's files give the address and location; the
		// recorded arguments keep --client-ip, CURVE and the limits.
		cfg.Args = append(slices.Clone(cur.Cluster.ControllerArgs), "--restore")
		if l, err = New(KindController, class, cfg); err != nil {
			return nil, err
		}
		if err := l.Start(ctx, 1); err != nil {
			return nil, err
		}
		state, err := marshalState(l)
		if err != nil {
			return nil, errors.Join(err, l.Stop(context.Background()))
		}
		cur.Controller = &LauncherRecord{Class: class, State: state}
		snap = old
		return cur, nil
	})
	if err != nil {
		return err
	}
	c.controller = l
	c.sets, c.meta = snap.sets, snap.meta
	return nil
}

// Connection waits for the controller's connection files and returns
// them. A Cluster without a controller launcher of its own reads the
// files the running controller left in the profile.
func (c *Cluster) Connection(ctx context.Context) (*ConnectionInfo, error) {
	c.mu.Lock()
	conn, ctl := c.conn, c.controller
	c.mu.Unlock()
	if conn != nil {
		return conn, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.ConnectionTimeout)
	defer cancel()
	var err error
	if w, ok := ctl.(ConnectionWaiter); ok {
		conn, err = w.WaitConnection(ctx)
	} else {
		conn, err = ReadConnection(c.opts.ProfileDir, c.opts.ClusterID)
	}
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.conn = conn
	c.mu.Unlock()
	return conn, nil
}

// StartEngines starts an engine set of n engines (n <= 0: the cluster's
// N) and merges it into the cluster file, whoever else writes it. It
// returns the new set's id. The set's first engine id is the number of
// engines the cluster's known sets requested; StartEnginesAt takes it
// from the caller (who may know the registered engines).
func (c *Cluster) StartEngines(ctx context.Context, n int) (string, error) {
	base := 0
	for _, l := range c.EngineSets() {
		base += l.Status().Total
	}
	return c.StartEnginesAt(ctx, n, base)
}

// StartEnginesAt is StartEngines with the engine id the set's first
// engine should ask for (engines of an MPI launch ask for idBase + rank).
func (c *Cluster) StartEnginesAt(ctx context.Context, n, idBase int) (string, error) {
	if n <= 0 {
		n = c.opts.N
	}
	if n <= 0 {
		return "", errors.New("how many engines? (-n)")
	}
	cfg := c.config()
	cfg.Command = c.opts.EngineCmd
	cfg.Options = c.opts.EngineOptions
	cfg.Delay = c.opts.EngineDelay
	cfg.EngineIDBase = idBase
	if !c.opts.NoConnectionEnv {
		conn, err := c.Connection(ctx)
		if err != nil {
			return "", err
		}
		cfg.ConnectionInfo = conn.EngineJSON
	}
	var id string
	var l Launcher
	err := UpdateClusterFile(ctx, c.File(), func(cur *ClusterFile) (*ClusterFile, error) {
		if cur == nil {
			cur = &ClusterFile{Cluster: c.info()}
		}
		if cur.Engines.Class == "" || len(cur.Engines.Sets) == 0 {
			// ipyparallel keeps one launcher for all sets; ours each
			// record their own, and the file's is the first set's.
			cur.Engines.Class = c.opts.Engines
		}
		if cur.Engines.Sets == nil {
			cur.Engines.Sets = map[string]json.RawMessage{}
		}
		id = cur.NewSetID(time.Now())
		cfg.EngineSetID = id
		var err error
		if l, err = New(KindEngines, c.opts.Engines, cfg); err != nil {
			return nil, err
		}
		if err := l.Start(ctx, n); err != nil {
			return nil, err
		}
		state, err := c.setState(l, c.opts.Engines, c.opts.EngineOptions)
		if err != nil {
			return nil, errors.Join(err, l.Stop(context.Background()))
		}
		cur.Engines.Sets[id] = state
		return cur, nil
	})
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.sets[id] = l
	c.meta[id] = setMeta{Launcher: c.opts.Engines, Options: optionsJSON(c.opts.EngineOptions)}
	c.mu.Unlock()
	return id, nil
}

// Controller is the controller launcher, or nil.
func (c *Cluster) Controller() Launcher {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.controller
}

// EngineSets returns the engine-set launchers by set id.
func (c *Cluster) EngineSets() map[string]Launcher {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.sets)
}

// Running reports whether the controller or any engine set runs: whether
// there is a process to stop.
func (c *Cluster) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snapshot().running()
}

// ControllerRunning reports whether the cluster's controller process
// runs. This is what "the cluster is running" means to ipcluster list and
// start: engines left by a dead controller can do no work and are only
// waiting to be stopped.
func (c *Cluster) ControllerRunning() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snapshot().controllerRunning()
}

// ControllerGone is non-nil when LoadCluster found the recorded
// controller's process gone (killed or crashed without cleaning up), and
// says which process; its record and connection files were removed.
func (c *Cluster) ControllerGone() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.controllerGone
}

// Stale reports that LoadCluster found recorded processes gone and
// dropped them from the cluster file (removing it when nothing was left).
func (c *Cluster) Stale() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stale
}

// PIDs lists the pids of every local process of the cluster.
func (c *Cluster) PIDs() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snapshot().pids()
}

// Save records the current state of this Cluster's launchers in the
// cluster file (ended launchers are dropped), leaving records written by
// other processes alone.
func (c *Cluster) Save(ctx context.Context) error {
	c.mu.Lock()
	snap := c.snapshot()
	c.mu.Unlock()
	return UpdateClusterFile(ctx, c.File(), func(cur *ClusterFile) (*ClusterFile, error) {
		if cur == nil {
			cur = &ClusterFile{Cluster: c.info()}
		}
		if snap.controller != nil {
			cur.Controller = nil
			if snap.controller.Status().State != StateAfter {
				state, err := marshalState(snap.controller)
				if err != nil {
					return nil, err
				}
				cur.Controller = &LauncherRecord{Class: c.opts.Controller, State: state}
			}
		}
		if cur.Engines.Sets == nil {
			cur.Engines.Sets = map[string]json.RawMessage{}
		}
		for id, l := range snap.sets {
			delete(cur.Engines.Sets, id)
			if l.Status().State != StateAfter {
				m := snap.meta[id]
				state, err := annotate(l, m)
				if err != nil {
					return nil, err
				}
				cur.Engines.Sets[id] = state
			}
		}
		return cur, nil
	})
}

// Stop stops the whole cluster: engine sets this Cluster started, those
// other processes added to the cluster file meanwhile, and the
// controller, all at once. It then checks that no recorded process is
// left and removes what it stopped from the cluster file.
func (c *Cluster) Stop(ctx context.Context) error {
	if err := c.adopt(); err != nil {
		c.opts.Logger.Warn("reading the cluster file before stopping", "err", err)
	}
	c.mu.Lock()
	snap := c.snapshot()
	c.mu.Unlock()

	err := snap.stop(ctx)
	if err == nil && snap.controller != nil {
		// A controller that needed SIGKILL left its connection files;
		// remove them before Save lets a new controller start.
		err = removeConnectionFiles(c.opts.ProfileDir, c.opts.ClusterID)
	}
	return errors.Join(err, c.Save(ctx))
}

// stop stops every launcher of the snapshot and checks nothing is left.
func (s clusterSnap) stop(ctx context.Context) error {
	errs := s.stopAll(ctx)
	if left := s.alive(); len(left) > 0 {
		errs = append(errs, fmt.Errorf("still running after stop: %v", left))
	}
	return errors.Join(errs...)
}

// stopAll stops every launcher of the snapshot at once.
func (s clusterSnap) stopAll(ctx context.Context) []error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	stop := func(what string, l Launcher) {
		defer wg.Done()
		if err := l.Stop(ctx); err != nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("stopping %s: %w", what, err))
			mu.Unlock()
		}
	}
	if s.controller != nil {
		wg.Add(1)
		go stop("controller", s.controller)
	}
	for id, l := range s.sets {
		wg.Add(1)
		go stop("engine set "+id, l)
	}
	wg.Wait()
	return errs
}

// StopEngines stops one engine set and drops it from the cluster file.
func (c *Cluster) StopEngines(ctx context.Context, id string) error {
	c.mu.Lock()
	l := c.sets[id]
	c.mu.Unlock()
	if l == nil {
		return fmt.Errorf("no engine set %q", id)
	}
	err := l.Stop(ctx)
	return errors.Join(err, c.Save(ctx))
}

// LoadCluster rebuilds a Cluster from its cluster file, reattached to
// whatever still runs. Options left empty are taken from the file.
// Launchers whose processes are gone are dropped from the file (and the
// file is removed when nothing is left; Running then reports false); a
// dead controller's connection files go with its record, so that nobody
// waits on a controller that cannot answer. A missing file is
// ErrNoCluster.
func LoadCluster(ctx context.Context, opts ClusterOptions) (*Cluster, error) {
	enginesGiven := opts.Engines != ""
	c, err := NewCluster(opts)
	if err != nil {
		return nil, err
	}
	f, err := ReadClusterFile(c.File())
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: no cluster file %s", ErrNoCluster, c.File())
	}
	if err != nil {
		return nil, err
	}
	c.fillFrom(f, enginesGiven)
	snap, err := c.restore(f)
	if err != nil {
		return nil, err
	}
	c.controller, c.sets, c.meta = snap.controller, snap.sets, snap.meta
	c.controllerGone, c.stale = snap.controllerGone, snap.dropped
	if snap.dropped {
		if err := c.dropGone(ctx, f); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// fillFrom takes options not given explicitly from a cluster file: the
// engine launcher and settings of the newest set (or the launcher the
// cluster was started with, when it has no sets).
func (c *Cluster) fillFrom(f *ClusterFile, enginesGiven bool) {
	if f.Controller != nil && isDefaultLauncher(c.opts.Controller) {
		c.opts.Controller = f.Controller.Class
	}
	last, recorded := f.LastSet()
	if last == "" {
		last = f.Engines.Class
	}
	if !enginesGiven && last != "" {
		c.opts.Engines = last
	}
	if c.opts.EngineOptions == nil && last != "" && SameLauncher(last, c.opts.Engines) {
		c.opts.EngineOptions, _ = MergeOptions(last, recorded, nil, nil)
	}
	if len(c.opts.EngineCmd) == 0 {
		c.opts.EngineCmd = f.Cluster.EngineCmd
	}
	if c.opts.N == 0 {
		c.opts.N = f.Cluster.N
	}
	if c.opts.IP == "" {
		c.opts.IP = f.Cluster.ControllerIP
	}
	if c.opts.Location == "" {
		c.opts.Location = f.Cluster.ControllerLocation
	}
}

// SameLauncher reports whether two names (or aliases) are one launcher.
func SameLauncher(a, b string) bool {
	ea, err1 := Lookup(a)
	eb, err2 := Lookup(b)
	return err1 == nil && err2 == nil && ea.Name == eb.Name
}

// isDefaultLauncher is true for a launcher name the user did not choose.
func isDefaultLauncher(name string) bool { return name == "" || name == "local" }

// dropGone removes from the file the records of launchers found dead.
func (c *Cluster) dropGone(ctx context.Context, f *ClusterFile) error {
	c.mu.Lock()
	haveController := c.controller != nil
	live := maps.Clone(c.sets)
	c.mu.Unlock()
	return UpdateClusterFile(ctx, c.File(), func(cur *ClusterFile) (*ClusterFile, error) {
		if cur == nil {
			return nil, nil
		}
		if !haveController && f.Controller != nil && cur.Controller != nil &&
			string(cur.Controller.State) == string(f.Controller.State) {
			// Still the controller found dead (checked under the lock, so
			// a new controller's files are never taken for its).
			cur.Controller = nil
			if err := removeConnectionFiles(c.opts.ProfileDir, c.opts.ClusterID); err != nil {
				return nil, err
			}
		}
		for id, state := range f.Engines.Sets {
			if _, ok := live[id]; !ok && string(cur.Engines.Sets[id]) == string(state) {
				delete(cur.Engines.Sets, id)
			}
		}
		return cur, nil
	})
}

// adopt reattaches engine sets (and a controller) that other processes
// recorded in the cluster file since this Cluster last looked.
func (c *Cluster) adopt() error {
	f, err := ReadClusterFile(c.File())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	known := map[string]bool{}
	for id := range c.sets {
		known[id] = true
	}
	needController := c.controller == nil && f.Controller != nil
	c.mu.Unlock()
	sub := &ClusterFile{Cluster: f.Cluster, Engines: EngineSets{Class: f.Engines.Class, Sets: map[string]json.RawMessage{}}}
	if needController {
		sub.Controller = f.Controller
	}
	for id, st := range f.Engines.Sets {
		if !known[id] {
			sub.Engines.Sets[id] = st
		}
	}
	snap, err := c.restore(sub)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.controller == nil {
		c.controller = snap.controller
	}
	for id, l := range snap.sets {
		if _, ok := c.sets[id]; !ok {
			c.sets[id] = l
			c.meta[id] = snap.meta[id]
		}
	}
	return nil
}

// clusterSnap is a set of launchers.
type clusterSnap struct {
	controller Launcher
	sets       map[string]Launcher
	meta       map[string]setMeta
	dropped    bool // restore found a recorded launcher gone
	// controllerGone is why the recorded controller was dropped.
	controllerGone error
}

func (c *Cluster) snapshot() clusterSnap {
	return clusterSnap{controller: c.controller, sets: maps.Clone(c.sets), meta: maps.Clone(c.meta)}
}

func (s clusterSnap) controllerRunning() bool {
	return s.controller != nil && s.controller.Status().State != StateAfter
}

func (s clusterSnap) running() bool {
	if s.controller != nil && s.controller.Status().State != StateAfter {
		return true
	}
	for _, l := range s.sets {
		if l.Status().State != StateAfter {
			return true
		}
	}
	return false
}

func (s clusterSnap) pids() []int {
	var pids []int
	if p, ok := s.controller.(ProcessLister); ok {
		pids = append(pids, p.PIDs()...)
	}
	for _, id := range slices.Sorted(maps.Keys(s.sets)) {
		if p, ok := s.sets[id].(ProcessLister); ok {
			pids = append(pids, p.PIDs()...)
		}
	}
	return pids
}

// restore reattaches every launcher recorded in f. Launchers with nothing
// left are dropped (and reported through dropped); any other failure to
// restore is an error.
func (c *Cluster) restore(f *ClusterFile) (clusterSnap, error) {
	snap := clusterSnap{sets: map[string]Launcher{}, meta: map[string]setMeta{}}
	cfg := c.config()
	if f.Controller != nil {
		l, err := Restore(KindController, f.Controller.Class, cfg, f.Controller.State)
		switch {
		case errors.Is(err, ErrNotRunning):
			c.opts.Logger.Info("controller is no longer running", "detail", err)
			snap.dropped = true
			snap.controllerGone = err
		case err != nil:
			return snap, fmt.Errorf("restoring the controller from %s: %w", c.File(), err)
		default:
			snap.controller = l
		}
	}
	for id, state := range f.Engines.Sets {
		scfg := cfg
		scfg.EngineSetID = id
		m := readSetMeta(state, f.Engines.Class)
		var err error
		if scfg.Options, err = MergeOptions(m.Launcher, m.Options, nil, nil); err != nil {
			return snap, fmt.Errorf("restoring engine set %s from %s: %w", id, c.File(), err)
		}
		l, err := Restore(KindEngines, m.Launcher, scfg, state)
		snap.meta[id] = m
		switch {
		case errors.Is(err, ErrNotRunning):
			c.opts.Logger.Info("engine set is no longer running", "set", id, "detail", err)
			snap.dropped = true
		case err != nil:
			return snap, fmt.Errorf("restoring engine set %s from %s: %w", id, c.File(), err)
		default:
			snap.sets[id] = l
		}
	}
	return snap, nil
}

// removeConnectionFiles removes a cluster's two connection files, which a
// controller killed with SIGKILL leaves behind.
func removeConnectionFiles(profileDir, clusterID string) error {
	for _, p := range []string{wire.ClientFile(profileDir, clusterID), wire.EngineFile(profileDir, clusterID)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func marshalState(l Launcher) (json.RawMessage, error) {
	s, ok := l.(Stateful)
	if !ok {
		return nil, fmt.Errorf("launcher %T cannot save its state", l)
	}
	return s.MarshalState()
}

// alive names the launchers that still have a running process.
func (s clusterSnap) alive() []string {
	var left []string
	if s.controller != nil && s.controller.Status().Running > 0 {
		left = append(left, "controller")
	}
	for _, id := range slices.Sorted(maps.Keys(s.sets)) {
		if n := s.sets[id].Status().Running; n > 0 {
			left = append(left, fmt.Sprintf("engine set %s (%d processes)", id, n))
		}
	}
	return left
}

// setMeta is what the cluster file records about an engine set beside
// its launcher's handle (both are our keys; ipyparallel ignores them):
// which launcher started it, and with which settings.
type setMeta struct {
	Launcher string          `json:"launcher,omitempty"`
	Options  json.RawMessage `json:"options,omitempty"`
}

// readSetMeta reads a set's launcher and settings; sets written without
// them (by ipyparallel, or before sets recorded them) used the file's
// launcher and its defaults.
func readSetMeta(state json.RawMessage, class string) setMeta {
	var m setMeta
	_ = json.Unmarshal(state, &m)
	if m.Launcher == "" {
		m.Launcher = class
	}
	return m
}

func optionsJSON(o Options) json.RawMessage {
	if o == nil || reflect.ValueOf(o).IsNil() {
		return nil
	}
	b, err := json.Marshal(o)
	if err != nil {
		return nil
	}
	return b
}

// setState is an engine set's handle with its launcher and settings.
func (c *Cluster) setState(l Launcher, launcher string, o Options) (json.RawMessage, error) {
	return annotate(l, setMeta{Launcher: launcher, Options: optionsJSON(o)})
}

// annotate adds a set's meta keys to its launcher's handle.
func annotate(l Launcher, m setMeta) (json.RawMessage, error) {
	state, err := marshalState(l)
	if err != nil {
		return nil, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(state, &obj); err != nil {
		return nil, fmt.Errorf("launcher %T saved a handle that is not a JSON object: %w", l, err)
	}
	if m.Launcher != "" {
		obj["launcher"], _ = json.Marshal(m.Launcher)
	}
	if len(m.Options) > 0 {
		obj["options"] = m.Options
	}
	return json.Marshal(obj)
}
