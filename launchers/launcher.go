package launchers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ipp-hpc/ipp/internal/protocol"
	"github.com/ipp-hpc/ipp/internal/wire"
)

// Launcher starts and stops one group of processes: a controller, or one
// set of engines.
type Launcher interface {
	// Start requests n processes (controller launchers accept n <= 1). It
	// may return before they run; Status and Wait follow them afterwards.
	Start(ctx context.Context, n int) error
	// Stop stops every process the launcher started and returns once they
	// are gone or ctx is done. Stopping a stopped launcher is a no-op.
	Stop(ctx context.Context) error
	// Signal delivers sig to every process the launcher started.
	Signal(sig syscall.Signal) error
	// Status reports the launcher's current view of its processes.
	Status() Status
	// Wait blocks until every process has ended or ctx is done.
	Wait(ctx context.Context) error
}

// State is the life-cycle stage of a launcher, with ipyparallel's names.
type State string

// The launcher states.
const (
	StateBefore  State = "before"
	StateRunning State = "running"
	StateAfter   State = "after"
)

// Status describes what a launcher knows about its processes.
type Status struct {
	// State is before, running or after.
	State State `json:"state"`
	// Running is how many processes are alive; Total how many were started.
	Running int `json:"running"`
	Total   int `json:"total"`
	// ExitCode is the first non-zero exit code once processes have ended
	// on their own, 0 when they all succeeded, -1 when unknown.
	ExitCode int `json:"exit_code"`
	// Exited is how many of the Total have ended (a batch engine waiting
	// in the queue is neither running nor exited).
	Exited int `json:"exited"`
	// Detail is free text for people (e.g. a batch job's pending reason).
	Detail string `json:"detail,omitempty"`
	// Jobs are a batch launcher's jobs as last polled.
	Jobs []JobStatus `json:"jobs,omitempty"`
}

// Stateful is a launcher whose state can be saved and reattached to from
// another process with the catalog entry's Restore function.
type Stateful interface {
	// MarshalState returns the launcher's handle: a JSON object with a
	// "version" field, stored under "state" in the cluster file.
	MarshalState() (json.RawMessage, error)
}

// ConnectionInfo is what a controller publishes for clients and engines.
type ConnectionInfo struct {
	Client *wire.ClientInfo
	Engine *wire.EngineInfo
	// EngineJSON is the engine file's content, handed to engines in
	// IPP_CONNECTION_INFO.
	EngineJSON []byte
}

// ConnectionWaiter is a controller launcher that can wait for the
// controller's connection files.
type ConnectionWaiter interface {
	// WaitConnection returns once both connection files are readable, and
	// fails early if the controller exits first.
	WaitConnection(ctx context.Context) (*ConnectionInfo, error)
}

// ProcessLister is a launcher whose processes run on this host.
type ProcessLister interface {
	// PIDs lists the process ids the launcher started (alive or not).
	PIDs() []int
}

// OutputReader is a launcher that keeps its processes' output.
type OutputReader interface {
	// Output returns up to the last maxLines lines of each process's
	// output, keyed by the file or process it came from.
	Output(maxLines int) map[string]string
}

// Kind says which role a launcher plays.
type Kind string

// The two launcher kinds.
const (
	KindController Kind = "controller"
	KindEngines    Kind = "engines"
)

// Config is what every launcher is built from.
type Config struct {
	// ProfileDir and ClusterID locate the cluster's files; both reach the
	// processes through IPP_PROFILE_DIR and IPP_CLUSTER_ID.
	ProfileDir string
	ClusterID  string
	// Command is the program and its arguments. Empty means this binary
	// (or ipcluster from PATH) with the "controller" or "engine" role.
	Command []string
	// Args are appended to Command.
	Args []string
	// Env holds extra environment variables for the processes.
	Env map[string]string
	// EngineSetID names an engine set within the cluster.
	EngineSetID string
	// ConnectionInfo is the engine connection JSON passed to engines in
	// IPP_CONNECTION_INFO; empty makes engines read the profile's file.
	ConnectionInfo []byte
	// WorkDir is the processes' working directory ("" = inherit).
	WorkDir string
	// StopGrace is how long Stop waits after SIGTERM before SIGKILL
	// (default 5 s).
	StopGrace time.Duration
	// Delay separates the start of consecutive engines (default none).
	Delay time.Duration
	// Options are the launcher's own settings: a pointer to the type its
	// catalog entry names (*MPIExecOptions, *BatchOptions); nil means the
	// defaults.
	Options Options
	// EngineIDBase is the engine id the first engine of this set should
	// get; engines of an MPI launch ask for EngineIDBase + rank.
	EngineIDBase int
	// Runner runs every external program (default OSRunner).
	Runner Runner
	// Logger receives progress messages (default slog.Default()).
	Logger *slog.Logger
}

func (c *Config) runner() Runner {
	if c.Runner == nil {
		return OSRunner{}
	}
	return c.Runner
}

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.Default()
	}
	return c.Logger
}

// Environ is this process's environment with the cluster's variables
// (IPP_CLUSTER_ID, IPP_PROFILE_DIR), Config.Env and extra layered on top,
// later ones winning, sorted after the inherited ones. Every launcher
// builds its processes' environment here, so it is also where every
// process we start gets glibc.malloc.hugetlb=1 added to GLIBC_TUNABLES
// (withHugePages) unless that tunable is set already.
func (c *Config) Environ(extra map[string]string) []string {
	return c.environ(extra, nil)
}

// rankVariables are what MPI launchers and Slurm steps tell each rank
// about its place. Engines started on their own (the local launcher) by
// an ipcluster that itself runs as a rank or a step task must not
// inherit them, or they would all take themselves for that rank.
var rankVariables = []string{"OMPI_COMM_WORLD_", "OMPI_UNIVERSE_SIZE", "PMI_", "PMIX_", "MPI_LOCALRANKID", "MPI_LOCALNRANKS",
	"SLURM_STEP_", "SLURM_PROCID", "SLURM_LOCALID", "SLURM_NODEID", protocol.EnvEngineIndex, protocol.EnvMPISize}

func isRankVariable(k string) bool {
	for _, p := range rankVariables {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// environ is Environ without the inherited variables drop selects.
func (c *Config) environ(extra map[string]string, drop func(string) bool) []string {
	set := map[string]string{
		protocol.EnvClusterID:  c.ClusterID,
		protocol.EnvProfileDir: c.ProfileDir,
	}
	maps.Copy(set, c.Env)
	maps.Copy(set, extra)
	if t, ok := set[tunablesVar]; ok {
		set[tunablesVar] = withHugePages(t)
	} else {
		set[tunablesVar] = withHugePages(os.Getenv(tunablesVar))
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; !ok && (drop == nil || !drop(k)) {
			env = append(env, kv)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(set)) {
		env = append(env, k+"="+set[k])
	}
	return env
}

// engineEnv is what every engine launcher adds for its engines: the
// connection file's content when the cluster hands it over.
func (c *Config) engineEnv() map[string]string {
	extra := map[string]string{}
	if len(c.ConnectionInfo) > 0 {
		extra[protocol.EnvConnectionInfo] = string(c.ConnectionInfo)
	}
	return extra
}

func (c *Config) stopGrace() time.Duration {
	if c.StopGrace <= 0 {
		return 5 * time.Second
	}
	return c.StopGrace
}

// Errors shared by launchers and the cluster file.
var (
	// ErrNotRunning means a saved launcher has no process left.
	ErrNotRunning = errors.New("not running")
	// ErrAlreadyStarted means a cluster with this id is already running.
	ErrAlreadyStarted = errors.New("cluster already running")
	// ErrNoCluster means there is no cluster file (or nothing in it runs).
	ErrNoCluster = errors.New("no such cluster")
	// ErrUnknownLauncher means a launcher name is not in the catalog.
	ErrUnknownLauncher = errors.New("unknown launcher")
)

// restored fills in what a saved handle knows and the caller did not say:
// the profile and engine set, and the command the processes were started
// with (used to recognise them, never run again; "ipcluster" when none
// was saved).
func (c *Config) restored(profileDir, setID string, cmd []string) {
	if c.ProfileDir == "" {
		c.ProfileDir = profileDir
	}
	if c.EngineSetID == "" {
		c.EngineSetID = setID
	}
	c.Command, c.Args = cmd, nil
	if len(c.Command) == 0 {
		c.Command = []string{"ipcluster"}
	}
}

// decodeState unmarshals a saved launcher handle into v, refusing one
// written by a newer program. what names the launcher in errors.
func decodeState(what string, state json.RawMessage, v any) error {
	var head struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(state, &head); err != nil {
		return fmt.Errorf("%s state: %w", what, err)
	}
	if head.Version > StateVersion {
		return fmt.Errorf("%s state version %d is newer than this program (%d)", what, head.Version, StateVersion)
	}
	if err := json.Unmarshal(state, v); err != nil {
		return fmt.Errorf("%s state: %w", what, err)
	}
	return nil
}

// stopProcess is the one way launchers stop a local process: SIGTERM to
// its process group, SIGKILL when it outlives grace, and a final SIGKILL
// sweep of the group so that nothing it started survives it. onEscalate
// runs before SIGKILL (mpiexec's launcher records the ranks then).
func stopProcess(ctx context.Context, log *slog.Logger, what string, p Process, grace time.Duration, onEscalate func()) error {
	if p.Alive() {
		log.Debug("sending SIGTERM", "to", what)
		if err := p.Signal(syscall.SIGTERM); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		graceCtx, cancel := context.WithTimeout(ctx, grace)
		err := p.Wait(graceCtx)
		cancel()
		if err != nil {
			if onEscalate != nil {
				onEscalate()
			}
			log.Warn("process ignored SIGTERM; sending SIGKILL", "process", what, "grace", grace)
			if err := p.Signal(syscall.SIGKILL); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			if err := p.Wait(ctx); err != nil {
				return fmt.Errorf("%s survived SIGKILL: %w", what, err)
			}
		}
	}
	_ = p.Signal(syscall.SIGKILL)
	return nil
}

// pythonEngineWords are the words that make a command line an ipyparallel
// engine: the module forms and the console script.
var pythonEngineWords = []string{"ipyparallel.engine", "ipyparallel.apps.ipengineapp", "ipyparallel.engine.app"}

// IsPythonEngine reports whether argv starts Python ipyparallel's engine
// (`python3 -m ipyparallel.engine`, `ipengine`, ...). Such engines (7.x)
// read their profile and cluster id from their command line only, never
// from IPP_PROFILE_DIR, IPP_CLUSTER_ID or IPP_CONNECTION_INFO.
func IsPythonEngine(argv []string) bool {
	for _, w := range argv {
		if slices.Contains(pythonEngineWords, w) || path.Base(w) == "ipengine" {
			return true
		}
	}
	return false
}

// withClusterArgs is argv with `--profile-dir=<profileDir>` and
// `--cluster-id=<id>` appended when argv is a Python engine that was not
// given them (or --file) already: what ipyparallel's own launchers add to
// every engine command. Without them a Python engine looks in its default
// profile for the unnamed cluster's file and waits forever. Other
// commands are left alone: ours read the environment, and a user's
// program may not accept the flags.
func withClusterArgs(argv []string, profileDir, clusterID string) []string {
	if !IsPythonEngine(argv) {
		return argv
	}
	given := func(flag string) bool {
		return slices.ContainsFunc(argv, func(a string) bool { return a == flag || strings.HasPrefix(a, flag+"=") })
	}
	if given("--file") || given("--url-file") {
		return argv
	}
	out := slices.Clone(argv)
	if !given("--profile-dir") && profileDir != "" {
		out = append(out, "--profile-dir="+profileDir)
	}
	if !given("--cluster-id") && clusterID != "" {
		out = append(out, "--cluster-id="+clusterID)
	}
	return out
}
