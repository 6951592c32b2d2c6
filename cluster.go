package ipp

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"time"

	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/launchers"
)

// ClusterOptions configure NewCluster (ipyparallel's Cluster traits).
type ClusterOptions struct {
	// N is how many engines Start starts.
	N int
	// Profile names a profile under $IPYTHONDIR ("" means "default");
	// ProfileDir, when set, is used instead.
	Profile    string
	ProfileDir string
	// ClusterID namespaces the cluster's files within the profile. Empty
	// picks "<unix time>-<4 random chars>" as ipp.Cluster() does; use
	// ClusterFromFile or ConnectProfile for ipcluster's default id "".
	ClusterID string
	// Launcher is the engine launcher's catalog name ("" = "local");
	// ControllerLauncher the controller's.
	Launcher           string
	ControllerLauncher string
	// LauncherOptions and ControllerLauncherOptions are the launchers'
	// own settings, of the type each names (&launchers.BatchOptions{Queue:
	// "debug", Walltime: "1:00:00"} for "slurm", *launchers.MPIExecOptions
	// for "mpiexec"); nil means the defaults.
	LauncherOptions           launchers.Options
	ControllerLauncherOptions launchers.Options
	// IPCluster is the path of this project's ipcluster, whose controller
	// and engine roles are started. Empty means $IPP_IPCLUSTER, else this
	// program when it is ipcluster, else ipcluster in PATH; whichever it
	// is must be ours (Debian's python3-ipyparallel puts Python's
	// ipcluster in PATH), or NewCluster fails saying so.
	IPCluster string
	// ControllerCmd and EngineCmd replace the programs started (default:
	// ipcluster's controller and engine roles).
	ControllerCmd []string
	EngineCmd     []string
	// ControllerArgs are extra controller arguments; ControllerIP and
	// ControllerLocation become --ip and --location.
	ControllerArgs     []string
	ControllerIP       string
	ControllerLocation string
	// Env holds extra environment variables for every process.
	Env map[string]string
	// NoConnectionEnv makes engines read the connection file from the
	// profile (which must then be on a filesystem the compute nodes
	// share) instead of receiving it in IPP_CONNECTION_INFO.
	NoConnectionEnv bool
	// EngineDelay separates engine starts.
	EngineDelay time.Duration
	// EngineTimeout bounds StartAndConnect's wait for the engines
	// (default 60 s).
	EngineTimeout time.Duration
	// ClientOptions are passed to Connect.
	ClientOptions []Option
	// Logger receives the launchers' progress (default slog.Default()).
	Logger *slog.Logger

	// SSH, when set, runs the cluster on that host (a login node, as
	// ~/.ssh/config names it) through the system ssh: ipcluster there
	// starts the controller and engines with its own launchers (Launcher
	// "slurm" submits to its queue), the client connection file comes back
	// into ProfileDir with its `ssh` field set so clients tunnel, and Stop
	// stops it there and checks that its batch jobs left the queue. Profile
	// names the profile on both hosts; ProfileDir is this host's only.
	// IPCluster, ControllerCmd and EngineCmd are paths on the remote host.
	SSH string
	// SSHIPCluster is the ipcluster command on the SSH host, as words
	// (environment assignments may come first: ssh passes none). Empty
	// means $IPP_SSH_IPCLUSTER, else "ipcluster" on the remote PATH.
	SSHIPCluster []string
}

// Cluster starts and stops a controller and engine sets through the
// launchers package and connects clients to them. The cluster file
// (security/cluster-<id>.json) records what runs, so another process can
// take it over with ClusterFromFile.
type Cluster struct {
	opts ClusterOptions
	lc   *launchers.Cluster
	// rem is set for a cluster on another host (ClusterOptions.SSH);
	// lc is nil then.
	rem *remoteCluster
}

// NewCluster prepares a cluster; nothing starts until Start.
func NewCluster(opts ClusterOptions) (*Cluster, error) {
	if opts.ProfileDir == "" {
		opts.ProfileDir = wire.ProfileDir(opts.Profile)
	}
	dir, err := filepath.Abs(opts.ProfileDir)
	if err != nil {
		return nil, err
	}
	opts.ProfileDir = dir
	if opts.ClusterID == "" {
		opts.ClusterID = newClusterID(time.Now())
	}
	if opts.EngineTimeout <= 0 {
		opts.EngineTimeout = 60 * time.Second
	}
	if opts.SSH != "" {
		return newRemoteCluster(opts)
	}
	if len(opts.ControllerCmd) == 0 || len(opts.EngineCmd) == 0 {
		if opts.IPCluster == "" {
			if opts.IPCluster, err = launchers.FindIPCluster(); err != nil {
				return nil, fmt.Errorf("ipp: %w", err)
			}
		} else if err := launchers.CheckIPCluster(opts.IPCluster); err != nil {
			return nil, fmt.Errorf("ipp: ClusterOptions.IPCluster: %w", err)
		}
		if len(opts.ControllerCmd) == 0 {
			opts.ControllerCmd = []string{opts.IPCluster, launchers.ControllerRole}
		}
		if len(opts.EngineCmd) == 0 {
			opts.EngineCmd = []string{opts.IPCluster, launchers.EngineRole}
		}
	}
	lc, err := launchers.NewCluster(opts.launcherOptions())
	if err != nil {
		return nil, fmt.Errorf("ipp: %w", err)
	}
	return &Cluster{opts: opts, lc: lc}, nil
}

func (o ClusterOptions) launcherOptions() launchers.ClusterOptions {
	return launchers.ClusterOptions{
		ProfileDir:        o.ProfileDir,
		ClusterID:         o.ClusterID,
		Controller:        o.ControllerLauncher,
		Engines:           o.Launcher,
		EngineOptions:     o.LauncherOptions,
		ControllerOptions: o.ControllerLauncherOptions,
		ControllerCmd:     o.ControllerCmd,
		EngineCmd:         o.EngineCmd,
		ControllerArgs:    o.ControllerArgs,
		IP:                o.ControllerIP,
		Location:          o.ControllerLocation,
		N:                 o.N,
		Env:               o.Env,
		EngineDelay:       o.EngineDelay,
		Logger:            o.Logger,
	}
}

// newClusterID makes ipyparallel's default id, e.g. "1795661217-jb8d".
func newClusterID(now time.Time) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [4]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return strconv.FormatInt(now.Unix(), 10) + "-" + string(b[:])
}

// ClusterFromFile reattaches to a running cluster from its cluster file,
// as `ipcluster stop` does; path "" means the default cluster of the
// default profile (security/cluster-.json).
func ClusterFromFile(ctx context.Context, path string) (*Cluster, error) {
	if path == "" {
		path = wire.ClusterFile(wire.ProfileDir(""), "")
	}
	opts := ClusterOptions{
		// security/cluster-<id>.json: the profile is two levels up.
		ProfileDir: filepath.Dir(filepath.Dir(path)),
		ClusterID:  launchers.ClusterIDFromFile(path),
	}
	if f, err := launchers.ReadClusterFile(path); err == nil {
		if f.Cluster.ProfileDir != "" {
			opts.ProfileDir = f.Cluster.ProfileDir
		}
		opts.ClusterID = f.Cluster.ClusterID
		opts.N = f.Cluster.N
	} else if c, ok := remoteFromRecord(opts); ok {
		return c, nil
	}
	lc, err := launchers.LoadCluster(ctx, opts.launcherOptions())
	if err != nil {
		return nil, fmt.Errorf("ipp: %w", err)
	}
	o := lc.Options()
	opts.N = o.N
	opts.Launcher, opts.ControllerLauncher = o.Engines, o.Controller
	opts.EngineTimeout = 60 * time.Second
	return &Cluster{opts: opts, lc: lc}, nil
}

// ProfileDir is the cluster's profile directory.
func (c *Cluster) ProfileDir() string { return c.opts.ProfileDir }

// ClusterID is the cluster's id.
func (c *Cluster) ClusterID() string { return c.opts.ClusterID }

// File is the path of the cluster file.
func (c *Cluster) File() string {
	if c.rem != nil {
		return c.rem.file()
	}
	return c.lc.File()
}

// Running reports whether the controller or any engine set runs.
// For a cluster on another host, it reports whether this program's record
// of it exists (started and not stopped), without asking the host.
func (c *Cluster) Running() bool {
	if c.rem != nil {
		return c.rem.running()
	}
	return c.lc.Running()
}

// String describes the cluster like ipyparallel's repr.
func (c *Cluster) String() string {
	if c.rem != nil {
		return fmt.Sprintf("<Cluster(cluster_id=%q, profile_dir=%q, ssh=%q)>", c.opts.ClusterID, c.opts.ProfileDir, c.opts.SSH)
	}
	ctl := "None"
	if c.lc.Controller() != nil {
		ctl = "<" + string(c.lc.Controller().Status().State) + ">"
	}
	var sets []string
	for id := range c.lc.EngineSets() {
		sets = append(sets, id)
	}
	return fmt.Sprintf("<Cluster(cluster_id=%q, profile_dir=%q, controller=%s, engine_sets=%q)>",
		c.opts.ClusterID, c.opts.ProfileDir, ctl, sets)
}

// StartController starts the controller.
func (c *Cluster) StartController(ctx context.Context) error {
	if c.rem != nil {
		return c.rem.start(ctx, c.opts, 0)
	}
	if err := c.lc.StartController(ctx); err != nil {
		return fmt.Errorf("ipp: starting the controller: %w", err)
	}
	return nil
}

// StartEngines starts an engine set of n engines (n <= 0: ClusterOptions.N)
// and returns its id. On another host (SSH) the remote ipcluster names the
// set and the id returned is "".
func (c *Cluster) StartEngines(ctx context.Context, n int) (string, error) {
	if c.rem != nil {
		return "", c.rem.engines(ctx, c.opts, n)
	}
	id, err := c.lc.StartEngines(ctx, n)
	if err != nil {
		return "", fmt.Errorf("ipp: starting engines: %w", err)
	}
	return id, nil
}

// Start starts the controller (unless already started) and N engines.
func (c *Cluster) Start(ctx context.Context) error {
	if c.rem != nil {
		// One remote start for both: every ssh round trip counts.
		return c.rem.start(ctx, c.opts, c.opts.N)
	}
	if c.lc.Controller() == nil {
		if err := c.StartController(ctx); err != nil {
			return err
		}
	}
	if c.opts.N > 0 {
		if _, err := c.StartEngines(ctx, c.opts.N); err != nil {
			return err
		}
	}
	return nil
}

// Connect waits for the controller's connection file and connects a
// client to it.
func (c *Cluster) Connect(ctx context.Context) (*Client, error) {
	if c.rem != nil {
		return c.rem.connect(ctx, c.opts)
	}
	conn, err := c.lc.Connection(ctx)
	if err != nil {
		return nil, fmt.Errorf("ipp: waiting for the controller: %w", err)
	}
	opts := c.opts.ClientOptions
	if c.opts.Logger != nil {
		opts = append([]Option{WithLogger(c.opts.Logger)}, opts...)
	}
	return ConnectInfo(ctx, conn.Client, opts...)
}

// StartAndConnect starts the cluster, connects, and waits up to
// EngineTimeout for its N engines. It fails early if every process of an
// engine set has exited, or if an engine unregisters while waiting.
func (c *Cluster) StartAndConnect(ctx context.Context) (*Client, error) {
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	client, err := c.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.waitForEngines(ctx, client, c.opts.N); err != nil {
		client.Close()
		return nil, err
	}
	return client, nil
}

// errEngineSetEnded is the cause when an engine set ends while waiting.
var errEngineSetEnded = errors.New("ipp: an engine set stopped before its engines registered")

func (c *Cluster) waitForEngines(ctx context.Context, client *Client, n int) error {
	if n <= 0 {
		return nil
	}
	if c.rem != nil {
		// The remote start has waited for its engines already.
		wctx, cancel := context.WithTimeout(ctx, c.opts.EngineTimeout)
		defer cancel()
		return client.WaitForEngines(wctx, n)
	}
	wctx, cancel := context.WithTimeoutCause(ctx, c.opts.EngineTimeout,
		fmt.Errorf("ipp: %d engines did not register within %v", n, c.opts.EngineTimeout))
	defer cancel()
	sctx, stop := context.WithCancelCause(wctx)
	defer stop(nil)
	for id, set := range c.lc.EngineSets() {
		go func() {
			// Wait returns nil once every process of the set has ended.
			if set.Wait(sctx) == nil {
				st := set.Status()
				detail := ""
				if st.Detail != "" {
					detail = " (" + st.Detail + ")"
				}
				stop(fmt.Errorf("%w: set %s, exit code %d%s; see the engine logs in %s",
					errEngineSetEnded, id, st.ExitCode, detail, wire.LogDir(c.opts.ProfileDir)))
			}
		}()
	}
	if err := client.WaitForEngines(sctx, n); err != nil {
		if cause := context.Cause(sctx); cause != nil && sctx.Err() != nil {
			return cause
		}
		return err
	}
	return nil
}

// StopEngines stops one engine set.
// Not available for a cluster on another host: stop it whole with Stop.
func (c *Cluster) StopEngines(ctx context.Context, setID string) error {
	if c.rem != nil {
		return fmt.Errorf("ipp: StopEngines: not available for a cluster on %s (Stop stops it)", c.opts.SSH)
	}
	return c.lc.StopEngines(ctx, setID)
}

// Stop stops every engine set and the controller and removes the cluster
// file. Clients connected to the cluster see their engines unregister and
// the controller vanish; close them first.
func (c *Cluster) Stop(ctx context.Context) error {
	if c.rem != nil {
		return c.rem.stop(ctx, c.opts)
	}
	if err := c.lc.Stop(ctx); err != nil {
		return fmt.Errorf("ipp: stopping the cluster: %w", err)
	}
	return nil
}
