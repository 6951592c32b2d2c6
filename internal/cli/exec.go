package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/ipp-hpc/ipp/internal/wire"
	"github.com/ipp-hpc/ipp/launchers"
)

// ExecOptions are the options of `ipcluster exec`.
type ExecOptions struct {
	F *Factory
	ClusterFlags
	// Code is the Go source to run ("-" reads it from standard input).
	Code string
	// Targets are engine ids; nil means all engines.
	Targets []int
	// Timeout bounds the whole execution.
	Timeout time.Duration
}

// NewCmdExec builds `ipcluster exec`. runF replaces execRun in tests.
func NewCmdExec(f *Factory, runF func(*ExecOptions) error) *cobra.Command {
	opts := &ExecOptions{F: f}
	var targets string
	cmd := &cobra.Command{
		Use:   "exec [flags] CODE",
		Short: "Run Go code on the engines and show their output",
		Long: `Run Go code on the engines of a running cluster (like %px in IPython) and
print what each engine wrote: standard output under [stdout:N], standard error
under [stderr:N], the value of a trailing expression as Out[N:k], and each
engine's error. CODE "-" reads the code from standard input.

Exits with 1 if the code failed on any engine, 12 if the cluster is not
running. A cluster whose controller died (kill -9) is found out at once from
its cluster file (the controller's pid is checked) instead of waiting for the
connection to time out; a controller that dies during the run is reported
within a few seconds, also with 12.`,
		Example: `  ipcluster exec 'fmt.Println(6*7)'
  ipcluster exec --targets 0,2-3 'import "os"; fmt.Println(os.Getpid())'
  ipcluster exec - < setup.go`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Code = args[0]
			var err error
			if opts.Targets, err = parseTargets(targets); err != nil {
				return fmt.Errorf("--targets: %w", err)
			}
			if runF != nil {
				return runF(opts)
			}
			return execRun(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	opts.ClusterFlags.bind(fs, true)
	opts.ClusterFlags.bindRemote(fs)
	fs.StringVarP(&targets, "targets", "t", "all", "engine ids: all, or a list such as 0,2,4-7")
	fs.Var(newSecondsValue(&opts.Timeout, 0), "timeout", "give up after this long (default: no limit)")
	return cmd
}

// parseTargets reads "all" (nil) or ids and ranges: "0,2,4-7".
func parseTargets(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "all") {
		return nil, nil
	}
	var ids []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("bad engine id %q", part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("bad engine range %q", part)
			}
		}
		for i := a; i <= b; i++ {
			ids = append(ids, i)
		}
	}
	return ids, nil
}

func execRun(ctx context.Context, o *ExecOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	code := o.Code
	if code == "-" {
		data, err := io.ReadAll(o.F.IO.In)
		if err != nil {
			return err
		}
		code = string(data)
	}
	path, err := o.F.clusterClientFile(ctx, o.ClusterFlags)
	if err != nil {
		return err
	}
	client, err := o.F.Connect(ctx, path)
	if err != nil {
		return fmt.Errorf("connecting to cluster %s: %w", clusterName(o.ClusterID), err)
	}
	defer client.Close()
	if len(client.IDs()) == 0 {
		return errors.New("no engines registered (add some with 'ipcluster engines -n N')")
	}
	// Errors are printed the moment they arrive: a dead engine is reported
	// at once, not when the slowest engine finishes.
	var mu sync.Mutex
	shown := map[int]bool{}
	results, err := client.Execute(ctx, code, o.Targets, func(engine int, e *RemoteError) {
		mu.Lock()
		defer mu.Unlock()
		shown[engine] = true
		printError(o.F.IO.ErrOut, engine, e)
	})
	if err != nil {
		return err
	}
	if failed := printResults(o.F.IO, results, shown); failed > 0 {
		return fmt.Errorf("the code failed on %d of %d engines", failed, len(results))
	}
	return nil
}

// checkControllerAlive fails with ErrNoCluster when the cluster file
// records a controller that is gone, so that exec does not wait for the
// connect timeout on connection files a killed controller left behind. A
// cluster without a cluster file (a controller started by hand) is left to
// the connection attempt.
func checkControllerAlive(ctx context.Context, f *Factory, flags ClusterFlags, dir string) error {
	id := flags.ClusterID
	if _, err := os.Stat(wire.ClusterFile(dir, id)); err != nil {
		return nil
	}
	// The error below tells what LoadCluster would log at info level.
	log := f.Logger()
	if f.logLevel == slog.LevelInfo {
		log = slog.New(slog.NewTextHandler(f.IO.ErrOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	c, err := launchers.LoadCluster(ctx, launchers.ClusterOptions{ProfileDir: dir, ClusterID: id, Runner: f.Runner, Logger: log})
	switch {
	case errors.Is(err, launchers.ErrNoCluster):
		return nil
	case err != nil:
		return err
	case c.ControllerRunning():
		return nil
	}
	next := "its stale files were removed"
	if c.Running() {
		next = fmt.Sprintf("'ipcluster stop%s' stops the engines it left", stopFlags(flags))
	}
	return fmt.Errorf("%w: cluster %s is not running (%s); %s", ErrNoCluster, clusterName(id), deathNote(c), next)
}

// printResults shows results the way %px does, grouped by kind: every
// engine's stdout, then every stderr, then results, then errors (except
// those of engines in shown, printed already). It returns the number of
// engines that failed.
func printResults(s IOStreams, results []ExecResult, shown map[int]bool) int {
	for _, r := range results {
		printStream(s.Out, fmt.Sprintf("[stdout:%d]", r.Engine), r.Stdout)
	}
	for _, r := range results {
		printStream(s.ErrOut, fmt.Sprintf("[stderr:%d]", r.Engine), r.Stderr)
	}
	for _, r := range results {
		if r.Result != "" {
			fmt.Fprintf(s.Out, "Out[%d:%d]: %s\n", r.Engine, r.ExecutionCount, strings.TrimRight(r.Result, "\n"))
		}
	}
	failed := 0
	for _, r := range results {
		if r.Err == nil {
			continue
		}
		failed++
		if !shown[r.Engine] {
			printError(s.ErrOut, r.Engine, r.Err)
		}
	}
	return failed
}

// printError shows one engine's error: a header line, then the traceback
// without a repeat of the header's "name: value".
func printError(w io.Writer, engine int, e *RemoteError) {
	head := e.Name + ": " + e.Value
	fmt.Fprintf(w, "[%d:execute] %s\n", engine, head)
	for i, line := range e.Traceback {
		line = strings.TrimRight(line, "\n")
		if i == 0 && line == head {
			continue
		}
		fmt.Fprintln(w, line)
	}
}

// printStream writes a header line and the text under it.
func printStream(w io.Writer, header, text string) {
	if text == "" {
		return
	}
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	fmt.Fprintf(w, "%s\n%s", header, text)
}
