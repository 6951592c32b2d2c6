package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/ipp-hpc/ipp/internal/transport"
	"github.com/ipp-hpc/ipp/mpi"

	"github.com/spf13/cobra"

	"github.com/ipp-hpc/ipp/launchers"
)

// Version is the program version; release builds set it with
// -ldflags "-X github.com/ipp-hpc/ipp/internal/cli.Version=v1.2.3".
var Version = ""

// Exit codes of ipcluster (ipyparallel's values).
const (
	ExitOK             = 0
	ExitError          = 1
	ExitAlreadyStarted = 10
	ExitAlreadyStopped = 11
	ExitNoCluster      = 12
	// ExitTimeout: exec's --timeout expired (as timeout(1) exits).
	ExitTimeout = 124
	// ExitInterrupted: exec was interrupted with Ctrl-C (128+SIGINT).
	ExitInterrupted = 130
)

// Errors that select an exit code; commands wrap them with details.
var (
	// ErrAlreadyStopped: stop found no running cluster.
	ErrAlreadyStopped = errors.New("cluster not running")
	// ErrNoCluster: engines (or exec) found no running cluster.
	ErrNoCluster = errors.New("no running cluster")
	// ErrTimeout: exec's --timeout expired before every engine answered.
	ErrTimeout = errors.New("timed out")
	// ErrInterrupted: exec was interrupted with Ctrl-C.
	ErrInterrupted = errors.New("interrupted")
	// errSilent carries an exit code whose message was already printed.
	errSilent = errors.New("")
)

// ExitCode maps an error returned by a command to the process exit status.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, launchers.ErrAlreadyStarted):
		return ExitAlreadyStarted
	case errors.Is(err, ErrAlreadyStopped):
		return ExitAlreadyStopped
	case errors.Is(err, ErrNoCluster), errors.Is(err, launchers.ErrNoCluster):
		return ExitNoCluster
	case errors.Is(err, ErrTimeout):
		return ExitTimeout
	case errors.Is(err, ErrInterrupted):
		return ExitInterrupted
	}
	return ExitError
}

// IOStreams are a command's standard streams.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// Factory supplies what commands need from the outside world; tests
// replace its parts.
type Factory struct {
	IO IOStreams
	// Executable is the program that plays the controller and engine
	// roles (default: this executable).
	Executable func() (string, error)
	// Runner runs every process the launchers start.
	Runner launchers.Runner
	// Connect opens a client on a cluster's client connection file.
	Connect func(ctx context.Context, clientFile string) (Client, error)
	// Signals delivers the signals a foreground command reacts to (SIGINT,
	// SIGTERM, SIGUSR1, SIGUSR2); nil uses os/signal.
	Signals func(ctx context.Context) (<-chan os.Signal, func())

	logLevel slog.Level
}

// NewFactory is the Factory of the real program.
func NewFactory() *Factory {
	f := &Factory{
		IO:         IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr},
		Executable: os.Executable,
		Runner:     launchers.OSRunner{},
	}
	f.Connect = f.connectIPP
	return f
}

// Logger is the slog logger user commands log to (standard error).
func (f *Factory) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(f.IO.ErrOut, &slog.HandlerOptions{Level: f.logLevel}))
}

// roleCommand is the command line that runs this program in role.
func (f *Factory) roleCommand(role string) ([]string, error) {
	exe, err := f.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this program for the %s role: %w", role, err)
	}
	return []string{exe, role}, nil
}

// Main runs ipcluster with os.Args and returns the exit status.
func Main() int {
	if stop := startProfile(); stop != nil {
		defer stop()
	}
	f := NewFactory()
	root := NewRootCmd(f)
	err := root.Execute()
	if err != nil && !errors.Is(err, errSilent) {
		fmt.Fprintln(f.IO.ErrOut, "ipcluster:", err)
	}
	// Every role has closed its sockets by now; let libzmq deliver what it
	// still holds (an engine's unregistration) before the process exits.
	transport.Shutdown()
	return ExitCode(err)
}

// NewRootCmd builds the ipcluster command tree.
func NewRootCmd(f *Factory) *cobra.Command {
	var logLevel string
	var debugFlag bool
	root := &cobra.Command{
		Use:   "ipcluster",
		Short: "Start, stop and use IPython Parallel clusters (controller and engines)",
		Long: `ipcluster manages IPython Parallel clusters: a controller and engine sets
started by launchers, recorded in $IPYTHONDIR/profile_<name>/security/cluster-<id>.json
(compatible with ipyparallel's files). The same binary is the controller
(ipcluster controller) and the engines (ipcluster engine).

Exit codes: 0 ok, 1 error, 10 already running, 11 nothing to stop (no
cluster file), 12 no running cluster (engines, exec; also when the
controller died), 124 exec --timeout expired, 130 exec interrupted with
Ctrl-C.`,
		Version:       programVersion() + " (" + buildFeatures() + ")",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if debugFlag {
				logLevel = "debug"
			}
			return f.logLevel.UnmarshalText([]byte(strings.ToLower(logLevel)))
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			// Like ipcluster: no subcommand lists them and fails.
			cmd.SetOut(f.IO.ErrOut)
			_ = cmd.Usage()
			return errSilent
		},
	}
	root.SetIn(f.IO.In)
	root.SetOut(f.IO.Out)
	root.SetErr(f.IO.ErrOut)
	root.PersistentFlags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().BoolVar(&debugFlag, "debug", false, "log at debug level")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w\nSee '%s --help'", err, cmd.CommandPath())
	})
	root.AddCommand(
		NewCmdStart(f, nil),
		NewCmdStop(f, nil),
		NewCmdList(f, nil),
		NewCmdEngines(f, nil),
		NewCmdClean(f, nil),
		NewCmdExec(f, nil),
		NewCmdConsole(f, nil),
		NewCmdSignal(f, nil),
		NewCmdController(f, nil),
		NewCmdEngine(f, nil),
		NewCmdTemplates(f, nil),
	)
	return root
}

// buildFeatures says what this binary can do, so that `ipcluster
// --version` answers "why does my laptop build refuse engines": a build
// without cgo has only the pure-Go transport (client commands, no engines,
// no CURVE) and no MPI.
func buildFeatures() string {
	parts := []string{runtime.GOOS + "/" + runtime.GOARCH}
	if slices.Contains(transport.Names(), "zmq") {
		parts = append(parts, "libzmq transport")
	} else {
		parts = append(parts, "pure-Go transport only: client commands, no engines, no CURVE (built without cgo)")
	}
	if f := mpi.Flavor(); f != "" {
		parts = append(parts, "MPI "+f)
	} else {
		parts = append(parts, "no MPI")
	}
	return strings.Join(parts, ", ")
}

func programVersion() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
