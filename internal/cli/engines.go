package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/launchers"
)

// EnginesOptions are the options of `ipcluster engines`.
type EnginesOptions struct {
	F *Factory
	ClusterFlags
	// N is the number of engines to add.
	N int
	// NUnset says -n was not given: an engine launcher whose settings
	// name a count (--hosts host1:4,host2:8) then decides it.
	NUnset bool
	// Launcher is the engine launcher name ("" = the one of the
	// cluster's newest engine set, with its settings).
	Launcher string
	// EngineCmd replaces the engine program ("" = the cluster's).
	EngineCmd string
	// LauncherFlags are the launcher's own settings; those not given
	// are taken from the newest engine set of the same launcher.
	LauncherFlags
	// Daemonize returns once the engines are registered; without it the
	// command stays until the set ends, relaying signals to it.
	Daemonize bool
	// NoConnectionEnv makes engines read the connection file from the
	// profile (a filesystem shared with the compute nodes) instead of
	// receiving it in IPP_CONNECTION_INFO.
	NoConnectionEnv bool
	// WaitTimeout bounds the wait for the engines to register; 0 is the
	// default, which grows with the engine count (engineWaitTimeout).
	WaitTimeout time.Duration
	// StopGrace is the SIGTERM-to-SIGKILL delay.
	StopGrace time.Duration
	// remoteArgs are the flags given, for the remote ipcluster of --ssh.
	remoteArgs []string
}

// NewCmdEngines builds `ipcluster engines`. runF replaces enginesRun in
// tests.
func NewCmdEngines(f *Factory, runF func(*EnginesOptions) error) *cobra.Command {
	opts := &EnginesOptions{F: f}
	cmd := &cobra.Command{
		Use:   "engines",
		Short: "Add an engine set to a running cluster",
		Long: `Start N more engines for a running cluster and wait until they have
registered. The new engine set is merged into the cluster file, so
'ipcluster stop' stops it with the rest of the cluster. With
--daemonize=false the command stays in the foreground, relays SIGINT, SIGTERM,
SIGUSR1 and SIGUSR2 to the engines, and returns when they have all stopped.

With --ssh HOST, ipcluster on HOST adds the engines (to a cluster started
there, e.g. with 'start --ssh HOST') with its own launchers.

Exits with 12 if the cluster is not running.`,
		Example: `  ipcluster engines -n 4
  ipcluster engines -n 8 --cluster-id=big --engine-cmd ./mysim
  ipcluster engines --engines mpiexec -n 16 --mpi-args "-hostfile hosts"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.NUnset = !cmd.Flags().Changed("n")
			opts.remoteArgs = forwardFlags(cmd.Flags())
			if runF != nil {
				return runF(opts)
			}
			if opts.SSH != "" {
				return enginesRemote(cmd.Context(), opts)
			}
			return enginesRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	opts.ClusterFlags.bind(fs, true)
	opts.ClusterFlags.bindRemote(fs)
	fs.IntVarP(&opts.N, "n", "n", runtime.NumCPU(), "number of engines to add")
	fs.StringVar(&opts.Launcher, "launcher", "", "engine launcher (default: the one of the cluster's newest engine set)")
	fs.StringVar(&opts.Launcher, "engines", "", "alias of --launcher (ipyparallel's name)")
	fs.StringVar(&opts.EngineCmd, "engine-cmd", "", "engine program and arguments (default: the cluster's)")
	opts.LauncherFlags.bind(fs)
	fs.BoolVar(&opts.Daemonize, "daemonize", true, "return once the engines are up (false: stay and relay signals)")
	fs.BoolVar(&opts.NoConnectionEnv, "no-connection-env", false, "engines read the connection file from the profile's security dir (shared filesystem) instead of receiving it in $IPP_CONNECTION_INFO")
	fs.Var(newSecondsValue(&opts.WaitTimeout, 0), "wait-timeout", waitTimeoutHelp)
	fs.Var(newSecondsValue(&opts.StopGrace, 5*time.Second), "stop-grace", "how long a stopping process gets between SIGTERM and SIGKILL")
	return cmd
}

func enginesRun(ctx context.Context, o *EnginesOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.N < 1 {
		return fmt.Errorf("-n must be at least 1, not %d", o.N)
	}
	copts, err := clusterOptions(o.F, o.ClusterFlags, "", o.EngineCmd)
	if err != nil {
		return err
	}
	copts.StopGrace = o.StopGrace
	copts.NoConnectionEnv = o.NoConnectionEnv
	if err := o.LauncherFlags.environ(&copts); err != nil {
		return err
	}
	if copts.Engines, copts.EngineOptions, err = enginesLauncher(copts, o.Launcher, o.LauncherFlags.Options); err != nil {
		return err
	}
	if c, ok := copts.EngineOptions.(launchers.EngineCounter); ok && o.NUnset && c.DefaultEngines() > 0 {
		o.N = c.DefaultEngines()
	}
	c, err := launchers.LoadCluster(ctx, copts)
	if err != nil {
		return err
	}
	if c.Controller() == nil {
		return fmt.Errorf("%w: cluster %s has no running controller (start one with 'ipcluster start')", ErrNoCluster, clusterName(o.ClusterID))
	}
	if len(c.Options().EngineCmd) == 0 {
		// Neither given nor recorded: this program's engine role.
		if c, err = reloadWithEngineRole(ctx, o.F, copts); err != nil {
			return err
		}
	}
	log := copts.Logger
	timeout := engineWaitTimeout(o.WaitTimeout, o.N)
	wctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("engines did not register within %v", timeout))
	defer cancel()
	client, err := o.F.Connect(wctx, wire.ClientFile(c.Options().ProfileDir, c.Options().ClusterID))
	if err != nil {
		return fmt.Errorf("connecting to the controller: %w", err)
	}
	defer client.Close()
	want := len(client.IDs()) + o.N
	id, err := c.StartEnginesAt(wctx, o.N, nextEngineID(client.IDs()))
	if err != nil {
		return err
	}
	log.Info("started engines", "set", id, "n", o.N)
	if err := waitRegistered(wctx, o.F, c, client, want, id); err != nil {
		log.Error("engines failed to start; stopping them", "set", id)
		return errors.Join(err, c.StopEngines(context.Background(), id))
	}
	fmt.Fprintf(o.F.IO.ErrOut, "Added %d engines (set %s) to cluster %s: %d engines registered\n",
		o.N, id, clusterName(o.ClusterID), len(client.IDs()))
	if o.Daemonize {
		return nil
	}
	return relayUntilStopped(ctx, o.F, c, id, o.StopGrace)
}

func reloadWithEngineRole(ctx context.Context, f *Factory, copts launchers.ClusterOptions) (*launchers.Cluster, error) {
	cmd, err := f.roleCommand(launchers.EngineRole)
	if err != nil {
		return nil, err
	}
	copts.EngineCmd = cmd
	return launchers.LoadCluster(ctx, copts)
}

// relayUntilStopped forwards signals to engine set id until it ends.
func relayUntilStopped(ctx context.Context, f *Factory, c *launchers.Cluster, id string, grace time.Duration) error {
	set := c.EngineSets()[id]
	sigs, stop := f.signals(ctx)
	defer stop()
	done := make(chan struct{})
	go func() {
		_ = set.Wait(context.WithoutCancel(ctx))
		close(done)
	}()
	for {
		select {
		case sig := <-sigs:
			if err := set.Signal(sig.(syscall.Signal)); err != nil {
				c.Options().Logger.Warn("relaying signal", "signal", sig, "err", err)
			}
		case <-done:
			return c.StopEngines(context.Background(), id)
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 2*grace+30*time.Second)
			defer cancel()
			return c.StopEngines(sctx, id)
		}
	}
}

// enginesLauncher picks the launcher for new engines (given, else the
// newest set's) and its settings: the flags given, laid over what the
// newest set of the same launcher recorded.
func enginesLauncher(copts launchers.ClusterOptions, given string, flags *launchers.OptionsFlags) (string, launchers.Options, error) {
	var last string
	var recorded json.RawMessage
	if f, err := launchers.ReadClusterFile(wire.ClusterFile(copts.ProfileDir, copts.ClusterID)); err == nil {
		if last, recorded = f.LastSet(); last == "" {
			last = f.Engines.Class
		}
	}
	name := given
	if name == "" {
		name = last
	}
	if name == "" {
		name = "local"
	}
	if !launchers.SameLauncher(name, last) {
		recorded = nil
	}
	o, err := flags.Merged(name, recorded)
	return name, o, err
}
