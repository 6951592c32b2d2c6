package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/launchers"
)

// StartOptions are the options of `ipcluster start`.
type StartOptions struct {
	F *Factory
	ClusterFlags
	// N is the number of engines (default: the number of CPUs).
	N int
	// NUnset says -n was not given: an engine launcher whose settings
	// name a count (--hosts host1:4,host2:8) then decides it.
	NUnset bool
	// Daemonize returns once the engines are registered, leaving the
	// cluster running.
	Daemonize bool
	// IP and Location are the controller's --ip and --location.
	IP, Location string
	// ClientIP is the controller's --client-ip ("" = IP).
	ClientIP string
	// Controller and Launcher are the controller's and the engines'
	// launcher names (--controller, --launcher or its alias --engines).
	Controller, Launcher string
	// ControllerCmd and EngineCmd replace the programs started for the
	// two roles (shell-like words).
	ControllerCmd, EngineCmd string
	// LauncherFlags are the launchers' own settings.
	LauncherFlags
	// ControllerArgs are extra controller arguments (after --).
	ControllerArgs []string
	// NoConnectionEnv makes engines read the connection file from the
	// profile (a filesystem shared with the compute nodes) instead of
	// receiving it in IPP_CONNECTION_INFO.
	NoConnectionEnv bool
	// WaitTimeout bounds the wait for the engines to register; 0 is the
	// default, which grows with the engine count (engineWaitTimeout).
	WaitTimeout time.Duration
	// StopGrace is the SIGTERM-to-SIGKILL delay when stopping.
	StopGrace time.Duration
	// CurveFlags are passed on to the controller.
	CurveFlags
	// LimitFlags are passed on to the controller.
	LimitFlags
	// DBFlags are passed on to the controller.
	DBFlags
	// Restore is --restore: restart the controller of a cluster whose
	// controller died, keeping its engines.
	Restore bool
	// AutoRestore is --auto-restore: how many times a foreground
	// ipcluster restarts a controller that died, with --restore.
	AutoRestore int
	// remoteArgs are the flags given, for the remote ipcluster of --ssh.
	remoteArgs []string
}

// NewCmdStart builds `ipcluster start`. runF replaces startRun in tests.
func NewCmdStart(f *Factory, runF func(*StartOptions) error) *cobra.Command {
	opts := &StartOptions{F: f}
	cmd := &cobra.Command{
		Use:   "start [flags] [-- controller args...]",
		Short: "Start a controller and engines",
		Long: `Start a cluster: the controller, then N engines, and wait until the engines
have registered. With --daemonize, return then and leave the cluster running
(stop it with 'ipcluster stop'); otherwise stay in the foreground until
Ctrl-C or SIGTERM, or until the controller exits, and then stop everything.
Arguments after -- are passed to the controller.

Exits with 10 if the cluster is already running: its controller process is
alive (what 'ipcluster list' shows as RUNNING True). The files of a cluster
whose controller died (kill -9) are replaced, after stopping any engines it
left behind.

With --ssh HOST, ipcluster on HOST (--ssh-ipcluster, default
$IPP_SSH_IPCLUSTER, else ipcluster on its PATH) starts the cluster there with
its own launchers and the other flags given here, always daemonized; the client
connection file comes back into this profile (its ssh field set to HOST, so
clients tunnel), with a record that lets 'ipcluster stop' stop it there and
check its batch jobs left the queue. See docs/laptop.md.`,
		Example: `  ipcluster start -n 4 --daemonize
  ipcluster start -n 64 --ip='*' --cluster-id=big
  ipcluster start -n 2 --engine-cmd ./mysim   # a Go program built with engine.Main()
  ipcluster start --engines mpiexec -n 8 --mpiexec mpiexec.openmpi --mpi-args "--bind-to core"
  ipcluster start --ssh login.hpc --launcher slurm -n 64 --walltime 1:00:00   # runs on the login node`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dash := cmd.ArgsLenAtDash(); dash >= 0 {
				opts.ControllerArgs = args[dash:]
				args = args[:dash]
			}
			if len(args) > 0 {
				return fmt.Errorf("unexpected arguments %q (controller arguments go after --)", args)
			}
			opts.NUnset = !cmd.Flags().Changed("n")
			if opts.AutoRestore > 0 && opts.Daemonize {
				return errors.New("--auto-restore needs ipcluster in the foreground (without --daemonize) to watch the controller; restart a daemonized cluster's controller with 'ipcluster start --restore'")
			}
			if opts.Restore && !opts.NUnset {
				return errors.New("--restore starts only the controller: the engines of the cluster register again with it (add more later with 'ipcluster engines')")
			}
			opts.remoteArgs = forwardFlags(cmd.Flags())
			if runF != nil {
				return runF(opts)
			}
			if opts.SSH != "" {
				return startRemote(cmd.Context(), opts)
			}
			return startRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	opts.ClusterFlags.bind(fs, true)
	opts.ClusterFlags.bindRemote(fs)
	fs.IntVarP(&opts.N, "n", "n", runtime.NumCPU(), "number of engines (0: only the controller; add engines with 'ipcluster engines')")
	fs.BoolVar(&opts.Daemonize, "daemonize", false, "return once the engines are up, leaving the cluster running")
	fs.BoolVar(&opts.Restore, "restore", false, restoreHelp)
	fs.IntVar(&opts.AutoRestore, "auto-restore", 0, "in the foreground (no --daemonize): restart a controller that dies (crash, kill -9) up to this many times, with --restore, over the running engines")
	fs.StringVar(&opts.IP, "ip", "", "controller address to bind, for engines and (without --client-ip) clients (default 127.0.0.1; '*' for all interfaces)")
	fs.StringVar(&opts.ClientIP, "client-ip", "", clientIPHelp)
	fs.StringVar(&opts.Location, "location", "", "controller host name written to the connection files")
	fs.StringVar(&opts.Controller, "controller", "local", "controller launcher ("+strings.Join(launchers.Names(launchers.KindController), ", ")+")")
	fs.StringVar(&opts.Launcher, "launcher", "local", "engine launcher ("+strings.Join(launchers.Names(launchers.KindEngines), ", ")+")")
	fs.StringVar(&opts.Launcher, "engines", "local", "alias of --launcher (ipyparallel's name)")
	fs.StringVar(&opts.ControllerCmd, "controller-cmd", "", "controller program and arguments (default: this program's 'controller' role)")
	fs.StringVar(&opts.EngineCmd, "engine-cmd", "", "engine program and arguments (default: this program's 'engine' role)")
	opts.LauncherFlags.bind(fs)
	opts.CurveFlags.bind(fs)
	opts.LimitFlags.bind(fs)
	opts.DBFlags.bind(fs)
	fs.BoolVar(&opts.NoConnectionEnv, "no-connection-env", false, "engines read the connection file from the profile's security dir (shared filesystem) instead of receiving it in $IPP_CONNECTION_INFO")
	fs.Var(newSecondsValue(&opts.WaitTimeout, 0), "wait-timeout", waitTimeoutHelp)
	fs.Var(newSecondsValue(&opts.StopGrace, 5*time.Second), "stop-grace", "how long a stopping process gets between SIGTERM and SIGKILL")
	return cmd
}

// clusterOptions turns command options into launcher options.
func clusterOptions(f *Factory, flags ClusterFlags, controllerCmd, engineCmd string) (launchers.ClusterOptions, error) {
	dir, err := flags.Dir()
	if err != nil {
		return launchers.ClusterOptions{}, err
	}
	opts := launchers.ClusterOptions{
		ProfileDir: dir,
		ClusterID:  flags.ClusterID,
		Runner:     f.Runner,
		Logger:     f.Logger(),
	}
	if opts.ControllerCmd, err = commandOrRole(f, controllerCmd, launchers.ControllerRole); err != nil {
		return opts, err
	}
	if engineCmd != "" {
		if opts.EngineCmd, err = splitCommand(engineCmd); err != nil {
			return opts, fmt.Errorf("--engine-cmd: %w", err)
		}
	}
	return opts, nil
}

func commandOrRole(f *Factory, line, role string) ([]string, error) {
	if line == "" {
		return f.roleCommand(role)
	}
	words, err := splitCommand(line)
	if err != nil {
		return nil, fmt.Errorf("--%s-cmd: %w", role, err)
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("--%s-cmd is empty", role)
	}
	return words, nil
}

func startRun(ctx context.Context, o *StartOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.N < 0 {
		return fmt.Errorf("-n must be 0 (controller only) or more, not %d", o.N)
	}
	if err := o.CurveFlags.check(); err != nil {
		return err
	}
	if err := o.LimitFlags.check(); err != nil {
		return err
	}
	if err := o.DBFlags.check(); err != nil {
		return err
	}
	copts, err := clusterOptions(o.F, o.ClusterFlags, o.ControllerCmd, o.EngineCmd)
	if err != nil {
		return err
	}
	if len(copts.EngineCmd) == 0 {
		if copts.EngineCmd, err = o.F.roleCommand(launchers.EngineRole); err != nil {
			return err
		}
	}
	copts.Controller, copts.Engines = o.Controller, o.Launcher
	if copts.ControllerOptions, err = o.LauncherFlags.Options.For(o.Controller); err != nil {
		return err
	}
	if copts.EngineOptions, err = o.LauncherFlags.Options.For(o.Launcher); err != nil {
		return err
	}
	if c, ok := copts.EngineOptions.(launchers.EngineCounter); ok && o.NUnset && c.DefaultEngines() > 0 {
		o.N = c.DefaultEngines()
	}
	// Ours first: arguments after -- come later and win. --client-ip
	// travels with them (and so into the cluster file's controller_args),
	// like --curve.
	copts.ControllerArgs = append(append(o.CurveFlags.args(), append(o.LimitFlags.args(), o.DBFlags.args()...)...), o.ControllerArgs...)
	if o.ClientIP != "" {
		copts.ControllerArgs = append([]string{"--client-ip=" + o.ClientIP}, copts.ControllerArgs...)
	}
	copts.IP, copts.Location = o.IP, o.Location
	copts.N = o.N
	copts.StopGrace = o.StopGrace
	copts.NoConnectionEnv = o.NoConnectionEnv
	if err := o.LauncherFlags.environ(&copts); err != nil {
		return err
	}
	if err := ensureProfile(copts.ProfileDir); err != nil {
		return err
	}
	c, err := launchers.NewCluster(copts)
	if err != nil {
		return err
	}
	log := copts.Logger

	// Signals stop the cluster from here on, also while it starts.
	sigs, stopSignals := o.F.signals(ctx)
	defer stopSignals()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		for {
			select {
			case sig := <-sigs:
				if slices.Contains(relayedSignals, sig) {
					relaySignal(log, c, sig.(syscall.Signal))
					continue
				}
				cancel(fmt.Errorf("received %v", sig))
			case <-ctx.Done():
				return
			}
		}
	}()

	bringUp := bringUpEngines
	if o.N == 0 {
		bringUp = controllerOnly
	}
	if o.Restore {
		log.Info("restarting the controller of the cluster", "profile_dir", copts.ProfileDir, "cluster_id", clusterName(copts.ClusterID))
		if err := c.RestartController(ctx); err != nil {
			return err
		}
		bringUp = waitRestored
	} else {
		log.Info("starting controller", "profile_dir", copts.ProfileDir, "cluster_id", clusterName(copts.ClusterID))
		if err := c.StartController(ctx); err != nil {
			return err
		}
	}
	if err := bringUp(ctx, o.F, c, o.N, engineWaitTimeout(o.WaitTimeout, o.N)); err != nil {
		log.Error("cluster start failed; stopping it", "err", err)
		return errors.Join(err, stopCluster(c, o.StopGrace))
	}
	if o.Daemonize {
		fmt.Fprintf(o.F.IO.ErrOut, "Leaving cluster running: %s\n", c.File())
		fmt.Fprintf(o.F.IO.ErrOut, "Stop it with: ipcluster stop%s\n", stopFlags(o.ClusterFlags))
		return nil
	}
	if o.Restore {
		fmt.Fprintf(o.F.IO.ErrOut, "Cluster %s restored (%s). Press Ctrl-C to stop it.\n", clusterName(copts.ClusterID), c.File())
	} else {
		fmt.Fprintf(o.F.IO.ErrOut, "Cluster %s running with %d engines (%s). Press Ctrl-C to stop it.\n",
			clusterName(copts.ClusterID), o.N, c.File())
	}
	var restart func() error
	if o.AutoRestore > 0 {
		restart = func() error {
			if err := c.RestartController(ctx); err != nil {
				return err
			}
			return waitRestored(ctx, o.F, c, 0, engineWaitTimeout(o.WaitTimeout, 0))
		}
	}
	return foreground(ctx, log, c, o.StopGrace, o.AutoRestore, restart)
}

// waitRestored waits until the restored controller answers a client,
// failing early with its output if it exits (nothing to restore, a port
// still taken). Its connection files exist from the start (the dead
// controller's), so only an answer shows it is up.
func waitRestored(ctx context.Context, f *Factory, c *launchers.Cluster, _ int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("the restored controller did not answer within %v", timeout))
	defer cancel()
	file := wire.ClientFile(c.Options().ProfileDir, c.Options().ClusterID)
	for {
		if err := deadProcesses(c, ""); err != nil {
			return err
		}
		actx, acancel := context.WithTimeout(ctx, time.Second)
		client, err := f.Connect(actx, file)
		acancel()
		if err == nil {
			n := len(client.IDs())
			client.Close()
			c.Options().Logger.Info("controller restored; the cluster's engines register again as they notice it", "engines_now", n, "engine_sets", len(c.EngineSets()))
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", context.Cause(ctx), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// clientIPHelp is the help of --client-ip on start and the controller role.
const clientIPHelp = "address for client connections (default: --ip); with --ip '*' for remote engines, " +
	"--client-ip 127.0.0.1 keeps clients on this host or an ssh tunnel, unencrypted loopback, " +
	"so pure-Go clients (CGO_ENABLED=0 builds) can connect"

// clientCommon is the client file's common part, or nil when the
// controller launcher did not report it.
func clientCommon(conn *launchers.ConnectionInfo) *wire.Common {
	if conn.Client == nil {
		return nil
	}
	return &conn.Client.Common
}

// controllerOnly waits for the controller's connection files, for
// `ipcluster start -n 0`: engine sets come later with ipcluster engines.
func controllerOnly(ctx context.Context, f *Factory, c *launchers.Cluster, _ int, _ time.Duration) error {
	conn, err := c.Connection(ctx)
	if err != nil {
		return err
	}
	c.Options().Logger.Info("controller is up; no engines requested (add them with 'ipcluster engines')", "registration", conn.Engine.URL(conn.Engine.Registration))
	curveNotices(f.IO.ErrOut, clientCommon(conn), &conn.Engine.Common)
	return nil
}

// bringUpEngines waits for the controller's files, starts n engines and
// waits for them to register, failing early if the controller or an
// engine dies first.
func bringUpEngines(ctx context.Context, f *Factory, c *launchers.Cluster, n int, timeout time.Duration) error {
	conn, err := c.Connection(ctx)
	if err != nil {
		return err
	}
	log := c.Options().Logger
	log.Info("controller is up", "registration", conn.Engine.URL(conn.Engine.Registration))
	curveNotices(f.IO.ErrOut, clientCommon(conn), &conn.Engine.Common)
	wctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("engines did not register within %v", timeout))
	defer cancel()
	client, err := f.Connect(wctx, wire.ClientFile(c.Options().ProfileDir, c.Options().ClusterID))
	if err != nil {
		return fmt.Errorf("connecting to the controller: %w", err)
	}
	defer client.Close()
	want := len(client.IDs()) + n
	id, err := c.StartEnginesAt(wctx, n, nextEngineID(client.IDs()))
	if err != nil {
		if cause := context.Cause(wctx); cause != nil && !errors.Is(cause, context.Canceled) {
			// Out of time while still starting them: say which limit.
			return fmt.Errorf("%w (still starting engines: %v)", cause, err)
		}
		return err
	}
	log.Info("started engines", "set", id, "n", n)
	return waitRegistered(wctx, f, c, client, want, id)
}

// waitRegistered waits for want engines while watching the controller
// and engine set id: a process that dies fails the wait with its output.
func waitRegistered(ctx context.Context, f *Factory, c *launchers.Cluster, client Client, want int, id string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if err := deadProcesses(c, id); err != nil {
				cancel(err)
				return
			}
		}
	}()
	var status func() string
	if set := c.EngineSets()[id]; set != nil {
		status = func() string {
			if st := set.Status(); len(st.Jobs) > 0 {
				return st.Detail
			}
			return ""
		}
	}
	err := client.WaitForEngines(ctx, want, f.IO.ErrOut, status)
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	if err != nil && status != nil {
		// deadProcesses' errors already carry it.
		if s := status(); s != "" && !strings.Contains(err.Error(), s) {
			// A timeout says nothing without the queue's view: "job 17
			// PENDING (PartitionConfig)" is the actual answer.
			err = fmt.Errorf("%w (%s)", err, s)
		}
	}
	return err
}

// deadProcesses reports the controller or an engine of set id that has
// exited, with the end of its output.
func deadProcesses(c *launchers.Cluster, id string) error {
	if ctl := c.Controller(); ctl != nil && ctl.Status().State == launchers.StateAfter {
		return fmt.Errorf("the controller exited%s", outputTail(ctl))
	}
	set := c.EngineSets()[id]
	if set == nil {
		return nil
	}
	st := set.Status()
	if len(st.Jobs) > 0 {
		// A batch job that ended (failed, cancelled, timed out, or just
		// gone from the queue) will bring no engine.
		if st.Exited > 0 {
			return fmt.Errorf("%d of %d engines ended before registering: %s%s", st.Exited, st.Total, st.Detail, outputTail(set))
		}
		return nil
	}
	if st.Exited > 0 {
		return fmt.Errorf("%d of %d engines exited before registering (engines on other hosts need the controller started with --ip='*' or an address they can reach)%s",
			st.Exited, st.Total, outputTail(set))
	}
	return nil
}

// outputTail is the end of a launcher's logs, for error messages.
func outputTail(l launchers.Launcher) string {
	r, ok := l.(launchers.OutputReader)
	if !ok {
		return ""
	}
	out := r.Output(15)
	paths := make([]string, 0, len(out))
	for p := range out {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var b strings.Builder
	for _, p := range paths {
		if strings.TrimSpace(out[p]) == "" {
			continue
		}
		fmt.Fprintf(&b, "\n--- %s ---\n%s", p, strings.TrimRight(out[p], "\n"))
		if b.Len() > 8000 {
			break
		}
	}
	return b.String()
}

// foreground keeps the cluster until ctx is cancelled (a signal) or the
// controller exits, recording engine sets that end on their own, then
// stops everything. With restart, a controller that did not exit cleanly
// (a client's shutdown request exits 0) is restarted, up to restarts
// times, instead.
func foreground(ctx context.Context, log *slog.Logger, c *launchers.Cluster, grace time.Duration, restarts int, restart func() error) error {
	watch := func() chan struct{} {
		done := make(chan struct{})
		ctl := c.Controller()
		go func() {
			_ = ctl.Wait(context.WithoutCancel(ctx))
			close(done)
		}()
		return done
	}
	ctlDone := watch()
	restarted := 0
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	ended := map[string]bool{}
	var result error
loop:
	for {
		select {
		case <-ctx.Done():
			log.Info("stopping the cluster", "reason", context.Cause(ctx))
			break loop
		case <-ctlDone:
			if st := c.Controller().Status(); st.ExitCode != 0 && restart != nil && restarted < restarts && ctx.Err() == nil {
				restarted++
				log.Warn("the controller died; restarting it over the running engines (--auto-restore)",
					"exit_code", st.ExitCode, "restart", restarted, "of", restarts, "output", outputTail(c.Controller()))
				if err := restart(); err != nil {
					result = fmt.Errorf("restarting the controller: %w", err)
					break loop
				}
				log.Info("controller restored")
				ctlDone = watch()
				continue
			}
			if st := c.Controller().Status(); st.ExitCode > 0 {
				result = fmt.Errorf("the controller exited with status %d%s", st.ExitCode, outputTail(c.Controller()))
			}
			log.Warn("controller stopped; stopping the cluster")
			break loop
		case <-tick.C:
			changed := false
			for id, set := range c.EngineSets() {
				if !ended[id] && set.Status().State == launchers.StateAfter {
					ended[id] = true
					changed = true
					log.Warn("engine set stopped", "set", id, "exit_code", set.Status().ExitCode)
				}
			}
			if changed {
				if err := c.Save(ctx); err != nil {
					log.Warn("updating the cluster file", "err", err)
				}
			}
		}
	}
	return errors.Join(result, stopCluster(c, grace))
}

// stopCluster stops everything with a deadline that leaves room for
// SIGKILL after the grace period.
func stopCluster(c *launchers.Cluster, grace time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*grace+30*time.Second)
	defer cancel()
	return c.Stop(ctx)
}

// relaySignal forwards a signal to every engine set.
func relaySignal(log *slog.Logger, c *launchers.Cluster, sig syscall.Signal) {
	for id, set := range c.EngineSets() {
		if err := set.Signal(sig); err != nil {
			log.Warn("relaying signal", "signal", sig, "set", id, "err", err)
		}
	}
}

// stopFlags repeats the profile and cluster flags for a hint.
func stopFlags(c ClusterFlags) string {
	var b strings.Builder
	if c.ProfileDir != "" {
		fmt.Fprintf(&b, " --profile-dir=%s", c.ProfileDir)
	} else if c.Profile != "" {
		fmt.Fprintf(&b, " --profile=%s", c.Profile)
	}
	if c.ClusterID != "" {
		fmt.Fprintf(&b, " --cluster-id=%s", c.ClusterID)
	}
	return b.String()
}
