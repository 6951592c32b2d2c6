package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// SignalOptions are the options of `ipcluster signal`.
type SignalOptions struct {
	F *Factory
	ClusterFlags
	// Signal is what the user typed: a name ("SIGINT", "int") or a number.
	Signal string
	// Targets are engine ids; nil means all engines.
	Targets []int
	// Timeout bounds the wait for the engines' acknowledgements.
	Timeout time.Duration
}

// NewCmdSignal builds `ipcluster signal`. runF replaces signalRun in tests.
func NewCmdSignal(f *Factory, runF func(*SignalOptions) error) *cobra.Command {
	opts := &SignalOptions{F: f}
	var targets string
	cmd := &cobra.Command{
		Use:   "signal [flags] SIGNAL",
		Short: "Send a signal to the engines (SIGINT interrupts what they run)",
		Long: `Send a signal to the engines of a running cluster and wait for each to
acknowledge it. SIGINT interrupts the code an engine is running (the run
fails with an Interrupted error; the engine stays up and answers the next
request); other signals are delivered to the engine processes.

SIGNAL is a name, with or without SIG and in any case (SIGINT, int, TERM), or
a number. SIGHUP, SIGINT, SIGQUIT, SIGABRT, SIGKILL, SIGALRM and SIGTERM have
the same number everywhere and are sent as numbers (Python engines accept
them too); other names (SIGUSR1, SIGUSR2, SIGCONT, SIGSTOP, SIGTSTP) are sent
by name, so that an engine on another platform uses its own number. A number
is sent as it is.

Exits with 1, naming the engines, if some did not acknowledge the signal
within --timeout, and with 12 if the cluster is not running.`,
		Example: `  ipcluster signal SIGINT
  ipcluster signal --targets 0,2-3 int
  ipcluster signal --cluster-id big TERM`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if opts.Signal, err = normalizeSignal(args[0]); err != nil {
				return err
			}
			if opts.Targets, err = parseTargets(targets); err != nil {
				return fmt.Errorf("--targets: %w", err)
			}
			if runF != nil {
				return runF(opts)
			}
			return signalRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	opts.ClusterFlags.bind(fs, true)
	opts.ClusterFlags.bindRemote(fs)
	fs.StringVarP(&targets, "targets", "t", "all", "engine ids: all, or a list such as 0,2,4-7")
	fs.Var(newSecondsValue(&opts.Timeout, 10*time.Second), "timeout", "how long to wait for the engines to acknowledge")
	return cmd
}

// portableSignals have the same number on Linux, macOS and the BSDs.
var portableSignals = map[string]int{
	"SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGABRT": 6, "SIGKILL": 9, "SIGALRM": 14, "SIGTERM": 15,
}

// namedSignals are known to Go engines by name only: their numbers differ
// between platforms.
var namedSignals = []string{"SIGUSR1", "SIGUSR2", "SIGCONT", "SIGSTOP", "SIGTSTP"}

// normalizeSignal turns what the user typed into what is sent: a number
// for portable signals and numbers, else the canonical name.
func normalizeSignal(s string) (string, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 {
			return "", fmt.Errorf("bad signal number %d", n)
		}
		return strconv.Itoa(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if n, ok := portableSignals[name]; ok {
		return strconv.Itoa(n), nil
	}
	for _, known := range namedSignals {
		if name == known {
			return name, nil
		}
	}
	return "", fmt.Errorf("unknown signal %q (want a number or one of SIGHUP, SIGINT, SIGQUIT, SIGABRT, SIGKILL, SIGALRM, SIGTERM, %s)",
		s, strings.Join(namedSignals, ", "))
}

// signalLabel names a normalized signal in messages.
func signalLabel(sig string) string {
	if n, err := strconv.Atoi(sig); err == nil {
		for name, m := range portableSignals {
			if m == n {
				return name
			}
		}
		return "signal " + sig
	}
	return sig
}

func signalRun(ctx context.Context, o *SignalOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	client, err := connectCluster(ctx, o.F, o.ClusterFlags)
	if err != nil {
		return err
	}
	defer client.Close()
	targets := o.Targets
	if targets == nil {
		targets = client.IDs()
	}
	if err := client.Signal(ctx, o.Signal, targets); err != nil {
		return err
	}
	fmt.Fprintf(o.F.IO.Out, "%s sent to engine(s) %s\n", signalLabel(o.Signal), joinIDs(targets))
	return nil
}
