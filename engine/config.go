package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ipp-hpc/ipp/internal/interp"
	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// Defaults used when the corresponding Config field is zero.
const (
	// DefaultRegistrationTimeout is how long to wait for registration_reply,
	// as ipyparallel's IPEngine.timeout.
	DefaultRegistrationTimeout = 5 * time.Second
	// DefaultStreamFlushInterval bounds how long printed output waits before
	// it is published, so long runs show progress.
	DefaultStreamFlushInterval = 50 * time.Millisecond
	// DefaultConnectionWait is how long LoadConnection waits by default for a
	// controller to write its engine connection file (IPEngine.wait_for_url_file).
	DefaultConnectionWait = 10 * time.Second
	// DefaultControllerTimeout is how long an engine started from the
	// command line (Main, `ipcluster engine`) goes without a heartbeat
	// before it exits: well under a minute, so that a batch job whose
	// controller died gives its nodes back soon. Programs calling Run
	// directly keep Config.HeartbeatTimeout's own default.
	DefaultControllerTimeout = 30 * time.Second
)

// Ready-probe timing. Probes start every probeInterval (TEAM-NOTES) and
// the interval doubles after each round up to probeBusyInterval: on an
// idle controller the second round (20 ms) completes the registration,
// while a controller that takes seconds to answer (1,000 engines
// starting at once on two cores) would otherwise receive 200 probes per
// engine per second exactly when it can least afford them. When the
// controller did not acknowledge ready_probe, probing backs off after
// probeFastPhase to at most probeSlowInterval: it may be a Python
// controller, which logs an error for every probe.
const (
	probeInterval     = 20 * time.Millisecond
	probeBusyInterval = 320 * time.Millisecond
	probeFastPhase    = 250 * time.Millisecond
	probeSlowInterval = 500 * time.Millisecond
)

// Config configures Run.
type Config struct {
	// Info is the controller's engine connection information (required).
	Info *wire.EngineInfo
	// Transport creates the sockets; nil means transport.Default().
	Transport transport.Backend
	// Logger receives the engine's logs; nil means slog.Default().
	Logger *slog.Logger
	// RequestedID asks the controller for this engine id; -1 asks for none.
	// Note that the zero value requests id 0.
	RequestedID int
	// RegistrationTimeout bounds the wait for registration_reply; zero means
	// DefaultRegistrationTimeout.
	RegistrationTimeout time.Duration
	// Functions are the native functions apply requests may call; nil means
	// DefaultRegistry().
	Functions *Registry

	// HeartbeatTimeout is how long the engine goes without a heartbeat ping
	// before it decides the controller is gone, unregisters and returns
	// ErrControllerLost. Until then it waits for a controller restarted on
	// the same ports (reconnect.go): after a silence of three heartbeat
	// periods it registers again, under its uuid and id, once pings
	// resume. Zero means 50 × (hb_period + 500 ms), the same
	// budget as ipyparallel's max_heartbeat_misses (175 s with the
	// controller's 3 s period); negative disables it. The command lines
	// set it from --controller-timeout (DefaultControllerTimeout).
	HeartbeatTimeout time.Duration
	// StreamFlushInterval is the longest printed output is held before it is
	// published on IOPub while a request runs; zero means
	// DefaultStreamFlushInterval.
	StreamFlushInterval time.Duration
	// Meta supplies what the engine cannot know about itself for its
	// registration metadata: the MPI fields, and Host when the hostname is
	// not the right name. ID, UUID, PID and Language are always filled in.
	Meta protocol.EngineInfo
	// Interp configures the namespace snippets run in (Preload,
	// Unrestricted, Env, Stdin); its Stdout and Stderr are replaced by the
	// engine's capture, which publishes them on IOPub.
	Interp interp.Options
	// Sandbox keeps yaegi's sandbox on (no os/exec, a hidden environment,
	// os.Exit refused). Off by default: like a Python engine, a Go engine
	// runs the user's code with the user's rights, and HPC code needs the
	// job's environment (SLURM_*, OMPI_*) and subprocesses.
	Sandbox bool
	// TrimMemory says the process is this engine's own (ipcluster engine,
	// Main): once registration is complete, it gives back what start-up
	// used and an idle engine does not need (trim_linux.go), so that
	// hundreds of idle engines on a node cost little. Leave it off when
	// Run is one part of a larger program.
	TrimMemory bool
	// Setup, when set, is called once with the new namespace, e.g. to Use
	// the symbols of the user's own packages (and Import them) so snippets
	// can call them. What Use and Import add survives clear_request;
	// variables set with Set do not.
	Setup func(ns *interp.Namespace) error

	// MPI makes the engine an MPI rank: Run calls mpi.Init (an error when
	// the binary was built without MPI), checks the world size against
	// MPIExpectedSize, reports rank, size, flavour and MPI processor name
	// in Meta, requests engine id MPIIDBase + rank unless RequestedID is
	// set, pre-imports package mpi in the namespace (no import line
	// needed), and finalises MPI when it returns.
	//
	// Snippets are not run inside mpi.Run, nor on the MPI goroutine: the
	// interpreter executes each snippet on a goroutine of its own (so it
	// can be interrupted), and goroutines the snippet starts may call MPI
	// too. Package mpi asks for MPI_THREAD_SERIALIZED, under which a
	// snippet's calls go to MPI from its own thread, under a mutex, at
	// about the cost of the C call (see mpi's doc.go); only a library that
	// provides less hands each call to the MPI goroutine (µs per call).
	MPI bool
	// MPIExpectedSize is the world size the launcher asked for; a
	// different size from MPI is an error. Zero means unknown.
	MPIExpectedSize int
	// MPIIDBase is added to the rank to form the requested engine id.
	MPIIDBase int
}

func (c *Config) withDefaults() (Config, error) {
	out := *c
	if out.Info == nil {
		return out, errors.New("engine: Config.Info (the engine connection info) is required")
	}
	if len(out.Info.Broadcast) == 0 {
		return out, errors.New("engine: connection info has no broadcast ports; is it an engine file?")
	}
	if out.Transport == nil {
		out.Transport = transport.Default()
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	if out.RegistrationTimeout <= 0 {
		out.RegistrationTimeout = DefaultRegistrationTimeout
	}
	if out.Functions == nil {
		out.Functions = defaultRegistry
	}
	if out.StreamFlushInterval <= 0 {
		out.StreamFlushInterval = DefaultStreamFlushInterval
	}
	return out, nil
}

// curveClient is the CURVE client setting for a controller whose public
// key is serverKey (nil when it has none), with this process's own key
// pair from $IPP_CURVE_SECRETKEY and $IPP_CURVE_PUBLICKEY as in
// ipyparallel, else one generated pair.
func curveClient(serverKey string) (*transport.Curve, error) {
	pub, sec := wire.CurveKeysFromEnv()
	c, err := transport.CurveClient(serverKey, pub, sec)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	return c, nil
}
