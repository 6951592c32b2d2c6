package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ipp-hpc/ipp/controller"
	"github.com/ipp-hpc/ipp/engine"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// roleFlags are the profile and cluster flags of the roles, which fall
// back to the environment a launcher sets.
type roleFlags struct {
	ClusterFlags
	// clusterIDSet records that --cluster-id was given (even as "").
	clusterIDSet bool
}

// resolve fills the profile directory and cluster id from the flags, else
// IPP_PROFILE_DIR and IPP_CLUSTER_ID, else the defaults.
func (r *roleFlags) resolve() (dir, clusterID string, err error) {
	clusterID = r.ClusterID
	if !r.clusterIDSet {
		clusterID = os.Getenv(protocol.EnvClusterID)
	}
	if r.profileGiven() {
		dir, err = r.Dir()
		return dir, clusterID, err
	}
	if env := os.Getenv(protocol.EnvProfileDir); env != "" {
		return env, clusterID, nil
	}
	dir, err = r.Dir()
	return dir, clusterID, err
}

// roleContext is cancelled by SIGINT or SIGTERM.
func (f *Factory) roleContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx == nil {
		ctx = context.Background()
	}
	if f.Signals != nil {
		ctx, cancel := context.WithCancel(ctx)
		sigs, stop := f.Signals(ctx)
		go func() {
			select {
			case <-sigs:
				cancel()
			case <-ctx.Done():
			}
		}()
		return ctx, func() { stop(); cancel() }
	}
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

func lookupTransport(name string) (transport.Backend, error) {
	if name == "" {
		name = os.Getenv(protocol.EnvTransport)
	}
	if name == "" {
		return transport.Default(), nil
	}
	return transport.Lookup(name)
}

// errEngineNeedsLibzmq explains why an engine cannot run on backend: an
// engine's shell socket connects to three controller endpoints, and the
// pure-Go backend binds or connects a socket exactly once. Without this
// check the engine dies with that transport detail in its log, which does
// not tell a user that their binary is a client-only build.
func errEngineNeedsLibzmq(backend string) error {
	if slices.Contains(transport.Names(), "zmq") {
		return fmt.Errorf("engines need the libzmq transport, not %q: unset IPP_TRANSPORT (or set it to zmq)", backend)
	}
	return errors.New("engines need the libzmq transport, and this ipcluster was built without it " +
		"(CGO_ENABLED=0 or -tags nolibzmq): it runs client commands (list, exec, stop, engines --launcher slurm ...) " +
		"but not engines; build it with cgo and libzmq3-dev (make build) on the machine that runs engines")
}

// ControllerOptions are the options of `ipcluster controller`; they
// mirror controller.Config.
type ControllerOptions struct {
	F *Factory
	roleFlags
	IP, Location string
	// ClientIP is --client-ip: where the client-facing ports bind
	// ("" = IP).
	ClientIP string
	Scheme   string
	HWM      int
	// Burst is the --burst flag.
	Burst int
	// PingMS is the heartbeat period in milliseconds.
	PingMS int
	// HeartbeatMisses declares an engine dead after that many missed beats.
	HeartbeatMisses int
	// Transport is the socket backend name ("" = IPP_TRANSPORT or default).
	Transport string
	// CurveFlags are --curve and --no-curve.
	CurveFlags
	// LimitFlags are --max-message-size and the other resource limits.
	LimitFlags
	// DBFlags are --db and --db-max-records.
	DBFlags
	// Restore is --restore: take over the cluster of a controller that
	// died, from the connection files it left.
	Restore bool
}

// restoreHelp is the help of --restore on start and the controller role.
const restoreHelp = "take over the cluster of a controller that died (kill -9, lost node): same key, ports and engine ids, " +
	"from the connection files and engine table it left; running engines and clients find it again (see docs/controller.md)"

// NewCmdController builds the controller role. runF replaces
// controllerRun in tests.
func NewCmdController(f *Factory, runF func(*ControllerOptions) error) *cobra.Command {
	opts := &ControllerOptions{F: f}
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run a controller (the role launchers start)",
		Long: `Run the IPython Parallel controller in this process: bind its sockets, write
security/ipcontroller[-<cluster id>]-{client,engine}.json in the profile, and
serve until SIGINT or SIGTERM (or a client's shutdown request), then remove
the files and exit 0. The profile and cluster id come from the flags, else
from IPP_PROFILE_DIR and IPP_CLUSTER_ID as a launcher sets them; the session
key from IPP_SESSION_KEY when set. Logs go to standard error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.clusterIDSet = cmd.Flags().Changed("cluster-id")
			if runF != nil {
				return runF(opts)
			}
			return controllerRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	opts.ClusterFlags.bind(fs, true)
	fs.StringVar(&opts.IP, "ip", "", "address to bind, for engines and (without --client-ip) clients (default 127.0.0.1; '*' for all interfaces)")
	fs.StringVar(&opts.ClientIP, "client-ip", "", clientIPHelp)
	fs.StringVar(&opts.Location, "location", "", "host name written to the connection files (default: this host)")
	fs.StringVar(&opts.Scheme, "scheme", "leastload", "task scheduler: leastload, lru, plainrandom, twobin, weighted or pure")
	fs.IntVar(&opts.HWM, "hwm", 1, "outstanding tasks per engine (0: unlimited)")
	fs.IntVar(&opts.Burst, "burst", 16, "tasks an engine may hold while its tasks take under 2 ms each (0: strict --hwm, as ipyparallel)")
	fs.IntVar(&opts.PingMS, "ping", 3000, "heartbeat period in milliseconds")
	fs.IntVar(&opts.HeartbeatMisses, "heartbeat-misses", 10, "missed heartbeats before an engine is declared dead")
	fs.StringVar(&opts.Transport, "transport", "", "socket backend: zmq or gozmq (default $IPP_TRANSPORT, else zmq when built in)")
	opts.CurveFlags.bind(fs)
	opts.LimitFlags.bind(fs)
	opts.DBFlags.bind(fs)
	fs.BoolVar(&opts.Restore, "restore", false, restoreHelp)
	return cmd
}

// config builds the controller.Config the options describe.
func (o *ControllerOptions) config() (controller.Config, error) {
	dir, cid, err := o.resolve()
	if err != nil {
		return controller.Config{}, err
	}
	backend, err := lookupTransport(o.Transport)
	if err != nil {
		return controller.Config{}, err
	}
	if o.PingMS <= 0 {
		return controller.Config{}, fmt.Errorf("--ping must be positive, not %d", o.PingMS)
	}
	hwm := o.HWM
	if hwm == 0 {
		hwm = -1 // controller.Config: negative means unlimited
	}
	burst := o.Burst
	if burst == 0 {
		burst = -1 // controller.Config: negative turns it off
	}
	cfg := controller.Config{
		IP:              o.IP,
		ClientIP:        o.ClientIP,
		Location:        o.Location,
		ProfileDir:      dir,
		ClusterID:       cid,
		Scheme:          o.Scheme,
		HWM:             hwm,
		Burst:           burst,
		HeartbeatPeriod: time.Duration(o.PingMS) * time.Millisecond,
		HeartbeatMisses: o.HeartbeatMisses,
		Transport:       backend,
		Logger:          o.F.Logger(),
		Restore:         o.Restore,
	}
	if key := os.Getenv(protocol.EnvSessionKey); key != "" {
		cfg.Key = []byte(key)
	}
	if err := o.LimitFlags.apply(&cfg); err != nil {
		return controller.Config{}, err
	}
	if err := o.DBFlags.apply(&cfg); err != nil {
		return controller.Config{}, err
	}
	if cfg.Curve, err = o.CurveFlags.mode(); err != nil {
		return controller.Config{}, err
	}
	if cfg.CurveSecretKey, err = curveSecretFromEnv(); err != nil {
		return controller.Config{}, err
	}
	return cfg, nil
}

func controllerRun(ctx context.Context, o *ControllerOptions) error {
	cfg, err := o.config()
	if err != nil {
		return err
	}
	if err := ensureProfile(cfg.ProfileDir); err != nil {
		return err
	}
	ctl, err := controller.New(cfg)
	if err != nil {
		return err
	}
	if err := ctl.Start(); err != nil {
		return err
	}
	log := cfg.Logger
	ci := ctl.ClientInfo()
	curveNotices(o.F.IO.ErrOut, &ci.Common, &ctl.EngineInfo().Common)
	log.Info("controller running", "pid", os.Getpid(), "registration", ci.URL(ci.Registration),
		"client_file", wire.ClientFile(cfg.ProfileDir, cfg.ClusterID), "transport", cfg.Transport.Name())
	ctx, stop := o.F.roleContext(ctx)
	defer stop()
	select {
	case <-ctx.Done():
		log.Info("received a stop signal, shutting down")
	case <-ctl.Done():
		if err := ctl.Err(); err != nil {
			// A crashed loop: say what crashed, and exit non-zero so that
			// launchers and scripts see a failure, not a requested stop.
			log.Error("controller stopped on an internal error", "err", err)
			ctl.Close()
			return err
		}
		log.Info("controller shut down on request (a client's shutdown_request)")
	}
	return ctl.Close()
}

// EngineOptions are the options of `ipcluster engine`.
type EngineOptions struct {
	F *Factory
	roleFlags
	// File is the engine connection file (else IPP_CONNECTION_INFO, else
	// the profile's file).
	File string
	// ID requests an engine id (-1: any).
	ID int
	// Timeout bounds the wait for the registration reply.
	Timeout time.Duration
	// MPI is the --mpi flag (auto unless given).
	MPI engine.MPIMode
	// MPISize is --mpi-size, -1 when not given (then IPP_MPI_SIZE).
	MPISize int
	// ControllerTimeout is --controller-timeout; controllerTimeoutSet
	// records that it was given (else IPP_CONTROLLER_TIMEOUT, else the
	// default).
	ControllerTimeout    time.Duration
	controllerTimeoutSet bool
	// timeoutSet: --timeout was given (else $IPP_REGISTRATION_TIMEOUT).
	timeoutSet bool
}

// NewCmdEngine builds the engine role. runF replaces engineRun in tests.
func NewCmdEngine(f *Factory, runF func(*EngineOptions) error) *cobra.Command {
	opts := &EngineOptions{F: f}
	cmd := &cobra.Command{
		Use:   "engine",
		Short: "Run an engine (the role launchers start)",
		Long: `Run one IPython Parallel engine in this process. The controller's connection
info comes from --file, else IPP_CONNECTION_INFO, else the profile's
security/ipcontroller[-<cluster id>]-engine.json (waited for up to 10 s). Stops
cleanly (unregistering) on SIGINT or SIGTERM and exits 0; exits 1 when it
cannot register or loses the controller. A Go program of your own that calls
engine.Main() takes the same flags.

Under mpiexec or srun (or with --mpi) the engine initialises MPI, checks the
world size against --mpi-size (default IPP_MPI_SIZE, else the launcher's
count), requests engine id IPP_ENGINE_ID_BASE + rank unless --id is given,
reports rank, size, host and MPI flavour in its registration, and lets
snippets call package mpi without an import line. Otherwise, unless --id is
given, it requests IPP_ENGINE_ID_BASE + IPP_ENGINE_INDEX (0-based, set by
array jobs), else IPP_ENGINE_ID_BASE + SLURM_PROCID inside a Slurm step,
else IPP_ENGINE_ID_BASE when set, else lets the controller choose.

An engine whose controller stops sending heartbeats exits (status 1) after
--controller-timeout, so that a batch job does not hold its nodes for long
after its controller died. A controller restarted within that time
(ipcluster start --restore) is found again: the engine registers again with
its id and sends the replies the dead controller missed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.clusterIDSet = cmd.Flags().Changed("cluster-id")
			opts.controllerTimeoutSet = cmd.Flags().Changed("controller-timeout")
			opts.timeoutSet = cmd.Flags().Changed("timeout")
			if runF != nil {
				return runF(opts)
			}
			return engineRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	opts.ClusterFlags.bind(fs, true)
	fs.StringVar(&opts.File, "file", "", "engine connection file (ipcontroller-engine.json)")
	fs.IntVar(&opts.ID, "id", -1, "request this engine id (-1: let the controller choose)")
	fs.Var(newSecondsValue(&opts.Timeout, engine.DefaultRegistrationTimeout), "timeout", "how long to wait for the registration reply (default $"+protocol.EnvRegistrationTimeout+", else 5)")
	fs.Var(&opts.MPI, "mpi", "run as an MPI rank: true, false or auto (auto: when started by mpiexec, or srun with PMI)")
	// A bare --mpi means true, as for the flag package in engine.Main.
	fs.Lookup("mpi").NoOptDefVal = "true"
	fs.IntVar(&opts.MPISize, "mpi-size", -1, "world size the launcher asked for (default $"+protocol.EnvMPISize+", else the launcher's count)")
	fs.Var(newSecondsValue(&opts.ControllerTimeout, engine.DefaultControllerTimeout), "controller-timeout",
		"exit after this long without a heartbeat from the controller, waiting for it to be restored meanwhile (0: never; default $"+protocol.EnvControllerTimeout+", else 30)")
	return cmd
}

// config builds the engine.Config the options describe, all but the
// connection info: bad settings are reported before the engine waits for
// a connection file.
func (o *EngineOptions) config() (engine.Config, error) {
	backend, err := lookupTransport("")
	if err != nil {
		return engine.Config{}, err
	}
	if backend.Name() != "zmq" {
		return engine.Config{}, errEngineNeedsLibzmq(backend.Name())
	}
	cfg := engine.Config{
		Transport:   backend,
		Logger:      o.F.Logger(),
		RequestedID: o.ID,
	}
	if cfg.RegistrationTimeout, err = engine.RegistrationTimeout(o.Timeout, o.timeoutSet); err != nil {
		return engine.Config{}, err
	}
	if cfg.HeartbeatTimeout, err = engine.ControllerTimeout(o.ControllerTimeout, o.controllerTimeoutSet); err != nil {
		return engine.Config{}, err
	}
	if err := engine.ApplyMPIFlags(&cfg, o.MPI, o.MPISize); err != nil {
		return engine.Config{}, err
	}
	if err := engine.ApplyRequestedID(&cfg); err != nil {
		return engine.Config{}, err
	}
	return cfg, nil
}

func engineRun(ctx context.Context, o *EngineOptions) error {
	cfg, err := o.config()
	if err != nil {
		return err
	}
	// This process is the engine's own: idle engines should cost little.
	cfg.TrimMemory = true
	dir := ""
	if o.profileGiven() {
		if dir, err = o.Dir(); err != nil {
			return err
		}
	}
	cid := o.ClusterID
	if !o.clusterIDSet {
		cid = "" // LoadConnection then reads IPP_CLUSTER_ID
	}
	if cfg.Info, err = engine.LoadConnection(o.File, dir, cid, engine.DefaultConnectionWait); err != nil {
		return err
	}
	ctx, stop := o.F.roleContext(ctx)
	defer stop()
	return engine.Run(ctx, cfg)
}
