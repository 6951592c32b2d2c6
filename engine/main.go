package engine

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ipp-hpc/ipp/internal/transport"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// LoadConnection finds the controller's engine connection info, in this
// order: the file named by file; the JSON in $IPP_CONNECTION_INFO; the
// profile's security/ipcontroller[-<clusterID>]-engine.json, where an empty
// profileDir means $IPP_PROFILE_DIR or else the default profile, and an
// empty clusterID means $IPP_CLUSTER_ID. The profile file may not exist
// yet when engines start alongside their controller, so it is waited for
// up to wait; a file that exists but does not parse is retried as well,
// since a Python controller writes it in place.
func LoadConnection(file, profileDir, clusterID string, wait time.Duration) (*wire.EngineInfo, error) {
	if file != "" {
		return loadWaiting(file, wait)
	}
	if js := os.Getenv(protocol.EnvConnectionInfo); js != "" {
		return wire.ParseEngineInfo([]byte(js))
	}
	if profileDir == "" {
		profileDir = os.Getenv(protocol.EnvProfileDir)
	}
	if profileDir == "" {
		profileDir = wire.ProfileDir("")
	}
	if clusterID == "" {
		clusterID = os.Getenv(protocol.EnvClusterID)
	}
	return loadWaiting(wire.EngineFile(profileDir, clusterID), wait)
}

func loadWaiting(path string, wait time.Duration) (*wire.EngineInfo, error) {
	deadline := time.Now().Add(wait)
	for {
		info, err := wire.LoadEngineInfo(path)
		if err == nil {
			return info, nil
		}
		if time.Now().After(deadline) {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("engine: no connection file %s after waiting %s (is the controller running with this profile and cluster id?)", path, wait)
			}
			return nil, fmt.Errorf("engine: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// connectionWait is how long Main waits for the connection file; a
// variable so tests need not wait the full default.
var connectionWait = DefaultConnectionWait

// secondsOrDuration is a flag value that takes "5", "2.5" (seconds, as
// ipengine's --timeout) or a Go duration ("500ms").
type secondsOrDuration struct{ d *time.Duration }

func (s secondsOrDuration) String() string {
	if s.d == nil {
		return ""
	}
	return s.d.String()
}

func (s secondsOrDuration) Set(v string) error {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		*s.d = time.Duration(f * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("want seconds or a duration such as 500ms")
	}
	*s.d = d
	return nil
}

// Main runs an engine from the command line of the current process, for a
// user's own engine binary:
//
//	func main() {
//		engine.Register("simulate", simulate)
//		os.Exit(engine.Main())
//	}
//
// It takes the flags of `ipcluster engine` (--file, --profile,
// --profile-dir, --cluster-id, --id, --log-level, --timeout, --mpi,
// --mpi-size, --controller-timeout) and the IPP_* environment variables,
// stops cleanly (unregistering) on SIGINT or SIGTERM, and returns the
// process exit status: 0 after a requested stop, 1 on failure (a lost
// controller included), 2 for bad usage.
func Main() int {
	code := mainWithArgs(os.Args[0], os.Args[1:])
	// Run has closed its sockets; let libzmq deliver the unregistration it
	// may still hold before the process exits.
	transport.Shutdown()
	return code
}

func mainWithArgs(prog string, args []string) int {
	fset := flag.NewFlagSet(prog, flag.ContinueOnError)
	file := fset.String("file", "", "engine connection file (ipcontroller-engine.json)")
	profile := fset.String("profile", "", "IPython profile name (default: default)")
	profileDir := fset.String("profile-dir", "", "profile directory (overrides --profile; default $"+protocol.EnvProfileDir+")")
	clusterID := fset.String("cluster-id", "", "cluster id of the controller (default $"+protocol.EnvClusterID+")")
	id := fset.Int("id", -1, "request this engine id (-1: let the controller choose)")
	logLevel := fset.String("log-level", "info", "log level: debug, info, warn or error")
	timeout := DefaultRegistrationTimeout
	fset.Var(secondsOrDuration{&timeout}, "timeout", "how long to wait for the controller's registration reply (seconds or duration; default $"+protocol.EnvRegistrationTimeout+", else 5)")
	var mpiMode MPIMode
	fset.Var(&mpiMode, "mpi", "run as an MPI rank: true, false or auto (auto: when started by mpiexec or srun with PMI)")
	mpiSize := fset.Int("mpi-size", -1, "world size the launcher asked for (default $"+protocol.EnvMPISize+", else the launcher's count)")
	controllerTimeout := DefaultControllerTimeout
	fset.Var(secondsOrDuration{&controllerTimeout}, "controller-timeout",
		"exit after this long without a heartbeat from the controller (seconds or duration; 0: never; default $"+protocol.EnvControllerTimeout+", else 30)")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	timeoutGiven, regTimeoutGiven := false, false
	fset.Visit(func(f *flag.Flag) {
		timeoutGiven = timeoutGiven || f.Name == "controller-timeout"
		regTimeoutGiven = regTimeoutGiven || f.Name == "timeout"
	})
	if fset.NArg() > 0 {
		fmt.Fprintf(fset.Output(), "%s: unexpected arguments %q\n", prog, fset.Args())
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(strings.ToLower(*logLevel))); err != nil {
		fmt.Fprintf(fset.Output(), "%s: --log-level: %v\n", prog, err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	dir := *profileDir
	if dir == "" && *profile != "" {
		dir = wire.ProfileDir(*profile)
	}
	cfg := Config{
		Logger:              logger,
		RequestedID:         *id,
		RegistrationTimeout: timeout,
		TrimMemory:          true, // Main owns the process
	}
	// Settings first: a mistake is reported at once, not after the wait
	// for a connection file.
	var err error
	if cfg.RegistrationTimeout, err = RegistrationTimeout(timeout, regTimeoutGiven); err != nil {
		logger.Error("bad registration timeout", "err", err)
		return 2
	}
	if cfg.HeartbeatTimeout, err = ControllerTimeout(controllerTimeout, timeoutGiven); err != nil {
		logger.Error("bad controller timeout", "err", err)
		return 2
	}
	if err := ApplyMPIFlags(&cfg, mpiMode, *mpiSize); err != nil {
		logger.Error("bad MPI settings", "err", err)
		return 2
	}
	if err := ApplyRequestedID(&cfg); err != nil {
		logger.Error("bad engine id settings", "err", err)
		return 2
	}
	if cfg.Info, err = LoadConnection(*file, dir, *clusterID, connectionWait); err != nil {
		logger.Error("cannot find the controller", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = Run(ctx, cfg)
	if err != nil {
		logger.Error("engine stopped", "err", err)
		return 1
	}
	return 0
}
